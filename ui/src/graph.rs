//! `GET /api/v1/services` and `GET /api/v1/service-graph`: who is there and who calls whom,
//! computed from the stored spans with SQL at request time (so always current).
//!
//! An edge is a parent span and its child span of the same trace in different services (a client
//! span and the server span it caused, or a producer and its consumer). Its stats are the callee
//! side's: calls, errors, mean and p99 duration.

use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;

use crate::api::{ApiState, since_ns, sql_json};
use crate::error::ApiError;

/// `?since=` of both endpoints.
#[derive(Deserialize)]
pub(crate) struct Window {
    /// RFC 3339 time, or a duration back from now such as `15m` [default: 1h].
    since: Option<String>,
}

/// The SQL of the service list: every service seen in any table, with span stats and anomalies.
pub fn services_sql(since: i64) -> String {
    let t = format!("time >= to_timestamp_nanos({since})");
    format!(
        "WITH names AS (SELECT DISTINCT service_name FROM spans WHERE {t} \
           UNION SELECT DISTINCT service_name FROM logs WHERE {t} \
           UNION SELECT DISTINCT service_name FROM metrics WHERE {t}), \
         s AS (SELECT service_name, count(*) AS spans, \
           sum(CASE WHEN status_code = 'ERROR' THEN 1 ELSE 0 END) AS errors, \
           approx_percentile_cont(duration_ns, 0.99) / 1e6 AS p99_ms FROM spans WHERE {t} \
           GROUP BY service_name), \
         a AS (SELECT service_name, count(*) AS anomalies, max(score) AS max_score FROM anomalies \
           WHERE {t} GROUP BY service_name) \
         SELECT n.service_name, coalesce(s.spans, 0) AS spans, coalesce(s.errors, 0) AS errors, \
           s.p99_ms, coalesce(a.anomalies, 0) AS anomalies, a.max_score \
         FROM names n LEFT JOIN s ON n.service_name = s.service_name \
           LEFT JOIN a ON n.service_name = a.service_name ORDER BY n.service_name"
    )
}

/// `GET /api/v1/service-graph?since=`: rows of (caller, callee, calls, errors, avg_ms, p99_ms).
pub(crate) async fn service_graph(
    State(s): State<ApiState>,
    Query(w): Query<Window>,
) -> Result<Response, ApiError> {
    let since = since_ns(w.since.as_deref())?;
    sql_json(&s, &scry_incident::edges_sql(since)).await
}

/// `GET /api/v1/services?since=`: rows of (service_name, spans, errors, p99_ms, anomalies,
/// max_score).
pub(crate) async fn services(
    State(s): State<ApiState>,
    Query(w): Query<Window>,
) -> Result<Response, ApiError> {
    let since = since_ns(w.since.as_deref())?;
    sql_json(&s, &services_sql(since)).await
}
