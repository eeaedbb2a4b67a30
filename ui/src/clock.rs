//! `POST /api/v1/admin/clock`: drives a daemon started with a manual clock (`--clock manual`),
//! as a replay of recorded telemetry does: it sets the time and runs one detection cycle there,
//! answering with what the cycle announced.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::ApiState;
use crate::error::ApiError;

#[derive(Deserialize)]
struct Advance {
    now_ns: i64,
}

/// Sets the manual clock to `now_ns` and runs one cycle; 409 on a wall clock.
pub async fn advance(State(s): State<ApiState>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let req: Advance = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("expected JSON {{\"now_ns\": <UTC ns>}}: {e}"),
        )
    })?;
    let cycle = s.detection.advance(req.now_ns).await?;
    let events: Vec<Value> = cycle.events.iter().map(|e| e.summary()).collect();
    Ok(Json(json!({
        "now_ns": cycle.at_ns,
        "report": cycle.report,
        "events": events,
    })))
}
