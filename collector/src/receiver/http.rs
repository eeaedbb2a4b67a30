//! OTLP/HTTP receiver: `POST /v1/traces`, `/v1/logs`, `/v1/metrics` with protobuf or JSON bodies,
//! optionally gzip-compressed; the response uses the request's encoding.

use std::io::Read;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures::StreamExt;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::ReceiverLimits;
use crate::error::Error;
use crate::ingest::{ExportOutcome, Ingest};

#[derive(Clone)]
struct HttpState {
    ingest: Ingest,
    limits: ReceiverLimits,
}

/// The OTLP/HTTP routes.
pub fn router(ingest: Ingest, limits: ReceiverLimits) -> Router {
    Router::new()
        .route("/v1/traces", post(export::<Traces>))
        .route("/v1/logs", post(export::<Logs>))
        .route("/v1/metrics", post(export::<Metrics>))
        // We enforce our own limit while reading (and while decompressing).
        .layer(DefaultBodyLimit::disable())
        .with_state(HttpState { ingest, limits })
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Encoding {
    Protobuf,
    Json,
}

/// A `google.rpc.Status`, the body OTLP/HTTP uses for errors.
#[derive(Clone, PartialEq, Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// An error answered to an OTLP/HTTP client.
#[derive(Debug)]
struct HttpError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl HttpError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn grpc_code(&self) -> i32 {
        match self.status {
            StatusCode::PAYLOAD_TOO_LARGE => 8,
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS => 14,
            StatusCode::INTERNAL_SERVER_ERROR => 13,
            _ => 3,
        }
    }

    fn into_response(self, encoding: Encoding) -> Response {
        let mut resp = match encoding {
            Encoding::Protobuf => {
                let body = RpcStatus {
                    code: self.grpc_code(),
                    message: self.message,
                }
                .encode_to_vec();
                (
                    self.status,
                    [(header::CONTENT_TYPE, "application/x-protobuf")],
                    body,
                )
                    .into_response()
            }
            Encoding::Json => {
                let body = serde_json::json!({
                    "code": self.grpc_code(),
                    "message": self.message,
                    "error": {"code": self.code, "message": self.message},
                });
                (self.status, axum::Json(body)).into_response()
            }
        };
        if matches!(
            self.status,
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS
        ) {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}

impl From<Error> for HttpError {
    fn from(e: Error) -> Self {
        match e {
            Error::Overloaded { .. } | Error::Unavailable(_) => HttpError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                e.to_string(),
            ),
            other => HttpError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                other.to_string(),
            ),
        }
    }
}

/// One OTLP signal as the HTTP receiver sees it.
trait Signal {
    type Request: Message + Default + DeserializeOwned + Send + Sync;
    type Response: Message + Serialize;
    const NAME: &'static str;
    fn ingest(
        ingest: &Ingest,
        req: &Self::Request,
    ) -> impl std::future::Future<Output = Result<ExportOutcome, Error>> + Send;
    fn response(outcome: ExportOutcome) -> Self::Response;
}

struct Traces;
struct Logs;
struct Metrics;

impl Signal for Traces {
    type Request = ExportTraceServiceRequest;
    type Response = ExportTraceServiceResponse;
    const NAME: &'static str = "traces";
    async fn ingest(ingest: &Ingest, req: &Self::Request) -> Result<ExportOutcome, Error> {
        ingest.traces(req).await
    }
    fn response(o: ExportOutcome) -> Self::Response {
        super::trace_response(o)
    }
}

impl Signal for Logs {
    type Request = ExportLogsServiceRequest;
    type Response = ExportLogsServiceResponse;
    const NAME: &'static str = "logs";
    async fn ingest(ingest: &Ingest, req: &Self::Request) -> Result<ExportOutcome, Error> {
        ingest.logs(req).await
    }
    fn response(o: ExportOutcome) -> Self::Response {
        super::logs_response(o)
    }
}

impl Signal for Metrics {
    type Request = ExportMetricsServiceRequest;
    type Response = ExportMetricsServiceResponse;
    const NAME: &'static str = "metrics";
    async fn ingest(ingest: &Ingest, req: &Self::Request) -> Result<ExportOutcome, Error> {
        ingest.metrics(req).await
    }
    fn response(o: ExportOutcome) -> Self::Response {
        super::metrics_response(o)
    }
}

async fn export<S: Signal>(
    State(state): State<HttpState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let encoding = match content_encoding(&headers) {
        Ok(e) => e,
        Err(e) => return e.into_response(Encoding::Json),
    };
    match handle::<S>(&state, &headers, encoding, body).await {
        Ok(resp) => resp,
        Err(e) => {
            tracing::debug!(signal = S::NAME, status = %e.status, message = %e.message, "OTLP/HTTP request refused");
            e.into_response(encoding)
        }
    }
}

async fn handle<S: Signal>(
    state: &HttpState,
    headers: &HeaderMap,
    encoding: Encoding,
    body: Body,
) -> Result<Response, HttpError> {
    let limit = state.limits.max_request_bytes;
    let raw = read_limited(body, limit).await?;
    let bytes = decompress(headers, raw, limit)?;
    let request: S::Request = match encoding {
        Encoding::Protobuf => S::Request::decode(bytes.as_slice()).map_err(|e| {
            HttpError::new(
                StatusCode::BAD_REQUEST,
                "invalid_protobuf",
                format!("malformed {} protobuf: {e}", S::NAME),
            )
        })?,
        Encoding::Json => serde_json::from_slice(&bytes).map_err(|e| {
            HttpError::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                format!("malformed OTLP/JSON {}: {e}", S::NAME),
            )
        })?,
    };
    let outcome = S::ingest(&state.ingest, &request).await?;
    let response = S::response(outcome);
    Ok(match encoding {
        Encoding::Protobuf => (
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            response.encode_to_vec(),
        )
            .into_response(),
        Encoding::Json => axum::Json(response).into_response(),
    })
}

fn content_encoding(headers: &HeaderMap) -> Result<Encoding, HttpError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "application/x-protobuf" | "application/protobuf" => Ok(Encoding::Protobuf),
        "application/json" => Ok(Encoding::Json),
        _ => Err(HttpError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "content type {ct:?} is not supported; use application/x-protobuf or application/json"
            ),
        )),
    }
}

fn too_large(limit: usize) -> HttpError {
    HttpError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("request body exceeds the limit of {limit} bytes"),
    )
}

async fn read_limited(body: Body, limit: usize) -> Result<Vec<u8>, HttpError> {
    let mut out = Vec::new();
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            HttpError::new(
                StatusCode::BAD_REQUEST,
                "body_read_failed",
                format!("could not read request body: {e}"),
            )
        })?;
        if out.len() + chunk.len() > limit {
            return Err(too_large(limit));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Gunzips when asked to, counting output so a small compressed bomb cannot exceed the limit.
fn decompress(headers: &HeaderMap, raw: Vec<u8>, limit: usize) -> Result<Vec<u8>, HttpError> {
    let enc = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity");
    match enc.trim().to_ascii_lowercase().as_str() {
        "" | "identity" => Ok(raw),
        "gzip" | "x-gzip" => {
            let mut out = Vec::with_capacity(raw.len() * 4);
            let mut decoder =
                flate2::read::MultiGzDecoder::new(raw.as_slice()).take(limit as u64 + 1);
            decoder.read_to_end(&mut out).map_err(|e| {
                HttpError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_gzip",
                    format!("could not gunzip request body: {e}"),
                )
            })?;
            if out.len() > limit {
                return Err(too_large(limit));
            }
            Ok(out)
        }
        other => Err(HttpError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_encoding",
            format!("content encoding {other:?} is not supported; use gzip or none"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_bomb_is_cut_at_the_limit() {
        use flate2::{Compression, write::GzEncoder};
        use std::io::Write;
        let mut enc = GzEncoder::new(Vec::new(), Compression::best());
        enc.write_all(&vec![0u8; 10 << 20]).unwrap();
        let bomb = enc.finish().unwrap();
        assert!(bomb.len() < 64 * 1024);
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        let err = decompress(&headers, bomb, 1 << 20).unwrap_err();
        assert_eq!(err.status, StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[test]
    fn content_types() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        assert_eq!(content_encoding(&h).unwrap(), Encoding::Json);
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert_eq!(
            content_encoding(&h).unwrap_err().status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
    }

    #[test]
    fn otlp_json_decodes_with_hex_ids_and_string_ints() {
        let body = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc"}}]},
            "scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",
            "name":"GET /x","kind":2,"startTimeUnixNano":"1544712660000000000","endTimeUnixNano":1544712661000000000,
            "attributes":[{"key":"n","value":{"intValue":"7"}}]}]}]}]}"#;
        let req: ExportTraceServiceRequest = serde_json::from_str(body).unwrap();
        let span = &req.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(span.trace_id.len(), 16);
        assert_eq!(
            span.end_time_unix_nano - span.start_time_unix_nano,
            1_000_000_000
        );
        let out = crate::otlp::traces::convert(&req);
        assert_eq!(out.accepted(), 1);
    }
}
