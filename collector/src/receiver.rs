//! OTLP receivers: gRPC (tonic) and HTTP (axum), both feeding [`Ingest`](crate::ingest::Ingest).

pub mod grpc;
pub mod http;

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};

use crate::ingest::ExportOutcome;

/// The trace export response; `partial_success` only when something was rejected.
pub fn trace_response(o: ExportOutcome) -> ExportTraceServiceResponse {
    let partial_success = (o.rejected > 0).then_some(ExportTracePartialSuccess {
        rejected_spans: o.rejected,
        error_message: o.error_message,
    });
    ExportTraceServiceResponse { partial_success }
}

/// The logs export response; `partial_success` only when something was rejected.
pub fn logs_response(o: ExportOutcome) -> ExportLogsServiceResponse {
    let partial_success = (o.rejected > 0).then_some(ExportLogsPartialSuccess {
        rejected_log_records: o.rejected,
        error_message: o.error_message,
    });
    ExportLogsServiceResponse { partial_success }
}

/// The metrics export response; `partial_success` only when something was rejected.
pub fn metrics_response(o: ExportOutcome) -> ExportMetricsServiceResponse {
    let partial_success = (o.rejected > 0).then_some(ExportMetricsPartialSuccess {
        rejected_data_points: o.rejected,
        error_message: o.error_message,
    });
    ExportMetricsServiceResponse { partial_success }
}

/// Limits applied by both receivers.
#[derive(Debug, Clone, Copy)]
pub struct ReceiverLimits {
    /// Largest request body accepted, counted after decompression.
    pub max_request_bytes: usize,
}

impl Default for ReceiverLimits {
    fn default() -> Self {
        Self {
            max_request_bytes: 16 << 20,
        }
    }
}
