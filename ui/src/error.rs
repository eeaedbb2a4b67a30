//! API errors, always answered as `{"error": {"code": "...", "message": "..."}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use scry_pipeline::HandleError;
use scry_query::QueryError;

/// An error answered by the API.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Machine-readable code.
    pub code: &'static str,
    /// Human-readable message.
    pub message: String,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        let status = match &e {
            QueryError::NotAllowed(_) | QueryError::Invalid(_) => StatusCode::BAD_REQUEST,
            QueryError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            QueryError::ResourcesExhausted(_) => StatusCode::SERVICE_UNAVAILABLE,
            QueryError::TooLarge(_) => StatusCode::UNPROCESSABLE_ENTITY,
            QueryError::Execution(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.code(), e.to_string())
    }
}

impl From<HandleError> for ApiError {
    fn from(e: HandleError) -> Self {
        let (status, code) = match &e {
            HandleError::NotManual => (StatusCode::CONFLICT, "clock_not_manual"),
            HandleError::Backwards { .. } => (StatusCode::BAD_REQUEST, "clock_backwards"),
            HandleError::Stopped => (StatusCode::SERVICE_UNAVAILABLE, "stopping"),
            HandleError::Cycle(_) => (StatusCode::INTERNAL_SERVER_ERROR, "cycle_failed"),
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        (self.status, Json(body)).into_response()
    }
}
