//! Routes of the API: `/api/v1/query`, `/api/v1/status`, `/api/v1/admin/flush`, `/healthz`,
//! `/readyz` and `/metrics`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use scry_analytics::{QueryOutput, QueryService};
use scry_collector::{Store, Telemetry};
use serde::Deserialize;

use crate::error::ApiError;

/// Media type of Arrow IPC stream responses.
pub const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// The SQL service.
    pub query: Arc<QueryService>,
    /// The store, for status and flushes.
    pub store: Store,
    /// Self-metrics.
    pub telemetry: Arc<Telemetry>,
    /// Whether the daemon is ready to serve (false while starting and shutting down).
    pub ready: Arc<AtomicBool>,
}

/// The API router.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/v1/query", post(query))
        .route("/api/v1/status", get(status))
        .route("/api/v1/admin/flush", post(flush))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .with_state(state)
}

async fn not_found(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route for {} {}", req.method(), req.uri().path()),
    )
}

async fn readyz(State(s): State<ApiState>) -> Response {
    if s.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "starting or shutting down",
        )
        .into_response()
    }
}

async fn metrics(State(s): State<ApiState>) -> Response {
    let body = s.telemetry.encode();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

#[derive(Deserialize)]
struct QueryRequest {
    sql: String,
}

async fn query(
    State(s): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: QueryRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("expected JSON {{\"sql\": \"...\"}}: {e}"),
        )
    })?;
    let started = Instant::now();
    let out = s.query.query(&req.sql).await?;
    let wants_arrow = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains(ARROW_STREAM));
    if wants_arrow {
        let bytes = to_arrow_ipc(&out.schema, &out.batches)?;
        return Ok(([(header::CONTENT_TYPE, ARROW_STREAM)], bytes).into_response());
    }
    let body = to_json(&out, started.elapsed().as_secs_f64() * 1e3)?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

fn internal(what: &str) -> impl FnOnce(arrow::error::ArrowError) -> ApiError + '_ {
    move |e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "encoding_failed",
            format!("{what}: {e}"),
        )
    }
}

/// Encodes batches as an Arrow IPC stream.
pub fn to_arrow_ipc(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Vec<u8>, ApiError> {
    let mut buf = Vec::new();
    let mut w = arrow::ipc::writer::StreamWriter::try_new(&mut buf, schema)
        .map_err(internal("Arrow IPC"))?;
    for b in batches {
        w.write(b).map_err(internal("Arrow IPC"))?;
    }
    w.finish().map_err(internal("Arrow IPC"))?;
    drop(w);
    Ok(buf)
}

/// `{"columns": [...], "rows": [{...}], "row_count": n, "elapsed_ms": t}`; rows are written by
/// arrow-json straight into the body rather than through an intermediate JSON tree.
fn to_json(out: &QueryOutput, elapsed_ms: f64) -> Result<Vec<u8>, ApiError> {
    let columns: Vec<_> = out
        .schema
        .fields()
        .iter()
        .map(|f| serde_json::json!({"name": f.name(), "type": f.data_type().to_string()}))
        .collect();
    let mut body = Vec::with_capacity(1024);
    body.extend_from_slice(b"{\"columns\":");
    serde_json::to_writer(&mut body, &columns).expect("plain JSON");
    body.extend_from_slice(b",\"rows\":");
    {
        let mut w = arrow::json::WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, arrow::json::writer::JsonArray>(&mut body);
        let refs: Vec<&RecordBatch> = out.batches.iter().collect();
        w.write_batches(&refs).map_err(internal("JSON"))?;
        w.finish().map_err(internal("JSON"))?;
    }
    if out.num_rows() == 0 && body.ends_with(b"\"rows\":") {
        body.extend_from_slice(b"[]");
    }
    body.extend_from_slice(
        format!(
            ",\"row_count\":{},\"elapsed_ms\":{elapsed_ms:.3}}}",
            out.num_rows()
        )
        .as_bytes(),
    );
    Ok(body)
}

async fn status(State(s): State<ApiState>) -> Response {
    let tables: serde_json::Map<String, serde_json::Value> = s
        .store
        .row_counts()
        .into_iter()
        .map(|(t, mem, files)| {
            (
                t.name().to_string(),
                serde_json::json!({"rows_in_memory": mem, "rows_in_parquet": files}),
            )
        })
        .collect();
    axum::Json(serde_json::json!({
        "tables": tables,
        "buffered_bytes": s.store.buffered_bytes(),
        "data_dir": s.store.data_dir().display().to_string(),
    }))
    .into_response()
}

async fn flush(State(s): State<ApiState>) -> Result<Response, ApiError> {
    let report = s.store.flush().await.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "flush_failed",
            e.to_string(),
        )
    })?;
    Ok(axum::Json(serde_json::json!({"flushed": report})).into_response())
}
