//! Routes of the API: `/api/v1/query`, `/api/v1/anomalies`, `/api/v1/services`,
//! `/api/v1/service-graph` (in [`crate::graph`]), `/api/v1/incidents` (in [`crate::incidents`]),
//! `/api/v1/status`,
//! `/api/v1/admin/flush`, `/healthz`, `/readyz` and `/metrics`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use scry_collector::{Store, Telemetry};
use scry_incident::IncidentStore;
use scry_pipeline::LoopHandle;
use scry_query::{QueryOutput, QueryService};
use serde::Deserialize;

use crate::error::ApiError;

/// Media type of Arrow IPC stream responses.
pub const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// The SQL service.
    pub query: Arc<QueryService>,
    /// Incidents and their timelines.
    pub incidents: Arc<IncidentStore>,
    /// The store, for status and flushes.
    pub store: Store,
    /// Self-metrics.
    pub telemetry: Arc<Telemetry>,
    /// Whether the daemon is ready to serve (false while starting and shutting down).
    pub ready: Arc<AtomicBool>,
    /// The detection loop: its events, and its clock when that is manual.
    pub detection: LoopHandle,
}

/// The API router.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/v1/query", post(query))
        .route("/api/v1/anomalies", get(anomalies))
        .route("/api/v1/services", get(crate::graph::services))
        .route("/api/v1/incidents", get(crate::incidents::list))
        .route("/api/v1/incidents/{id}", get(crate::incidents::get))
        .route("/api/v1/service-graph", get(crate::graph::service_graph))
        .route("/api/v1/status", get(status))
        .route("/api/v1/admin/flush", post(flush))
        .route("/api/v1/admin/clock", post(crate::clock::advance))
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

/// Filters of `GET /api/v1/anomalies`.
#[derive(Deserialize)]
struct AnomalyFilter {
    /// Only this service.
    service: Option<String>,
    /// Only this signal (`traces`, `logs`, `metrics`).
    signal: Option<String>,
    /// RFC 3339 time, or a duration back from now such as `15m` [default: 1h].
    since: Option<String>,
    /// Lowest score [default: 0].
    min_score: Option<f64>,
    /// Most rows [default: 1000].
    limit: Option<usize>,
}

fn bad_filter(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_filter", message)
}

/// `since` as ns since the epoch: an RFC 3339 time or a duration back from now.
pub(crate) fn since_ns(since: Option<&str>) -> Result<i64, ApiError> {
    let now = chrono::Utc::now();
    let at = match since.map(str::trim) {
        None | Some("") => now - chrono::Duration::hours(1),
        Some(text) => match chrono::DateTime::parse_from_rfc3339(text) {
            Ok(t) => t.with_timezone(&chrono::Utc),
            Err(_) => {
                let back = humantime::parse_duration(text).map_err(|_| {
                    bad_filter(format!(
                        "since: {text:?} is neither an RFC 3339 time nor a duration like 15m"
                    ))
                })?;
                now - chrono::Duration::from_std(back)
                    .map_err(|_| bad_filter(format!("since: {text:?} is too far back")))?
            }
        },
    };
    Ok(at.timestamp_nanos_opt().unwrap_or(i64::MIN))
}

/// SQL string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

async fn anomalies(
    State(s): State<ApiState>,
    Query(f): Query<AnomalyFilter>,
) -> Result<Response, ApiError> {
    let since = since_ns(f.since.as_deref())?;
    let min_score = f.min_score.unwrap_or(0.0);
    if !min_score.is_finite() {
        return Err(bad_filter("min_score must be a number".into()));
    }
    let limit = f.limit.unwrap_or(1000).min(100_000);
    let mut sql = format!(
        "SELECT time, service_name, signal, measure, scope, series, observed, expected, lower, \
         upper, score, detector, width_ns, trace_ids, template_ids, evidence FROM anomalies \
         WHERE time >= to_timestamp_nanos({since}) AND score >= {min_score}"
    );
    if let Some(service) = f.service.as_deref().filter(|v| !v.is_empty()) {
        sql.push_str(&format!(" AND service_name = {}", literal(service)));
    }
    if let Some(signal) = f.signal.as_deref().filter(|v| !v.is_empty()) {
        sql.push_str(&format!(" AND signal = {}", literal(signal)));
    }
    sql.push_str(&format!(" ORDER BY time DESC, score DESC LIMIT {limit}"));
    sql_json(&s, &sql).await
}

/// Runs `sql` and answers with its JSON result (the shape of `/api/v1/query`).
pub(crate) async fn sql_json(s: &ApiState, sql: &str) -> Result<Response, ApiError> {
    let started = Instant::now();
    let out = s.query.query(sql).await?;
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
