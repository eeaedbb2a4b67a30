//! `GET /api/v1/incidents` and `GET /api/v1/incidents/{id}`, read from the incident store.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use scry_incident::{IncidentStore, StoreError};

use crate::api::ApiState;
use crate::error::ApiError;

/// `?status=open|resolved&limit=` of the list.
#[derive(Deserialize)]
pub(crate) struct ListFilter {
    status: Option<String>,
    limit: Option<usize>,
}

fn store_error(e: impl ToString) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "incident_store",
        e.to_string(),
    )
}

/// Runs a store call on a blocking thread (SQLite calls block).
async fn blocking<T: Send + 'static>(
    s: &ApiState,
    call: impl FnOnce(&IncidentStore) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    let store = std::sync::Arc::clone(&s.incidents);
    tokio::task::spawn_blocking(move || call(&store))
        .await
        .map_err(store_error)?
        .map_err(store_error)
}

/// Incidents, newest first: id, status, times, services, top root cause.
pub(crate) async fn list(
    State(s): State<ApiState>,
    Query(f): Query<ListFilter>,
) -> Result<Json<Value>, ApiError> {
    let open = match f.status.as_deref() {
        None | Some("") | Some("all") => None,
        Some("open") => Some(true),
        Some("resolved") => Some(false),
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_filter",
                format!("status: {other:?} is not open, resolved or all"),
            ));
        }
    };
    let limit = f.limit.unwrap_or(100).min(10_000);
    let rows = blocking(&s, move |store| store.list(open, limit)).await?;
    Ok(Json(json!({ "incidents": rows })))
}

/// One incident: ranking with evidence, timeline, anomalies.
pub(crate) async fn get(
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id: u64 = id.parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_id",
            format!("incident id {id:?} is not a number"),
        )
    })?;
    let found = blocking(&s, move |store| store.get(id)).await?;
    found.map(Json).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no incident {id}"),
        )
    })
}
