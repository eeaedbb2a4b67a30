//! OTLP receivers: gRPC (tonic) and HTTP (axum), both feeding [`Ingest`](crate::ingest::Ingest).

pub mod grpc;
pub mod http;

/// Limits applied by both receivers.
#[derive(Debug, Clone, Copy)]
pub struct ReceiverLimits {
    /// Largest request body accepted, counted after decompression.
    pub max_request_bytes: usize,
}

impl Default for ReceiverLimits {
    fn default() -> Self {
        Self { max_request_bytes: 16 << 20 }
    }
}
