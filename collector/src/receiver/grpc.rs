//! OTLP/gRPC receiver: TraceService, LogsService and MetricsService `Export`, gzip accepted.

use std::future::Future;

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};

use super::ReceiverLimits;
use crate::error::Error;
use crate::ingest::Ingest;

/// The gRPC services, sharing one [`Ingest`].
#[derive(Clone)]
pub struct OtlpGrpc {
    ingest: Ingest,
}

/// Maps a storage error to the gRPC status OTLP exporters expect (UNAVAILABLE is retried).
pub fn status_of(err: &Error) -> Status {
    match err {
        Error::Overloaded { .. } | Error::Unavailable(_) => Status::unavailable(err.to_string()),
        other => Status::internal(other.to_string()),
    }
}

#[tonic::async_trait]
impl TraceService for OtlpGrpc {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let outcome = self.ingest.traces(request.get_ref()).await;
        Ok(Response::new(super::trace_response(
            outcome.map_err(|e| status_of(&e))?,
        )))
    }
}

#[tonic::async_trait]
impl LogsService for OtlpGrpc {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        let outcome = self.ingest.logs(request.get_ref()).await;
        Ok(Response::new(super::logs_response(
            outcome.map_err(|e| status_of(&e))?,
        )))
    }
}

#[tonic::async_trait]
impl MetricsService for OtlpGrpc {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        let outcome = self.ingest.metrics(request.get_ref()).await;
        Ok(Response::new(super::metrics_response(
            outcome.map_err(|e| status_of(&e))?,
        )))
    }
}

/// tonic's status codes for bad requests differ from what OTLP clients expect: an oversized
/// uncompressed message gets OUT_OF_RANGE (RESOURCE_EXHAUSTED expected, as tonic already answers for
/// gzip bodies) and undecodable protobuf gets INTERNAL (INVALID_ARGUMENT expected: the client must not
/// retry it). Both are trailers-only responses, so the status is in the headers.
fn otlp_status_codes<B>(mut resp: http::Response<B>) -> http::Response<B> {
    let status = resp
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let message = resp
        .headers()
        .get("grpc-message")
        .and_then(|m| m.to_str().ok())
        .unwrap_or("")
        .replace("%20", " ");
    let code = match status {
        "11" if message.contains("message length too large") => Some("8"),
        "13" if message.contains("failed to decode Protobuf message") => Some("3"),
        _ => None,
    };
    if let Some(code) = code {
        resp.headers_mut()
            .insert("grpc-status", http::HeaderValue::from_static(code));
    }
    resp
}

/// Serves the three OTLP gRPC services on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    ingest: Ingest,
    limits: ReceiverLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let svc = OtlpGrpc { ingest };
    let max = limits.max_request_bytes;
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    tonic::transport::Server::builder()
        .layer(tower::util::MapResponseLayer::new(otlp_status_codes))
        .add_service(
            TraceServiceServer::new(svc.clone())
                .accept_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(max),
        )
        .add_service(
            LogsServiceServer::new(svc.clone())
                .accept_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(max),
        )
        .add_service(
            MetricsServiceServer::new(svc)
                .accept_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(max),
        )
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}
