//! scry's HTTP API on the API/UI port: SQL queries, health and readiness, self-metrics and
//! operator actions. The embedded web app will be served from here too.

pub mod api;
pub mod clock;
pub mod error;
pub mod graph;
pub mod incidents;

pub use api::{ApiState, router};
pub use error::ApiError;
