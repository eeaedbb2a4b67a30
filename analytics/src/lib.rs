//! scry's analytics: the DataFusion catalog over stored telemetry and the SQL query service;
//! log template mining; derived series, detectors and continuous anomaly detection; and the
//! evaluation harnesses; incidents with ranked root causes.

pub mod anomaly;
pub mod cancel;
pub mod catalog;
pub mod detect;
pub mod error;
pub mod eval;
pub mod incident;
pub mod logs;
pub mod query;
pub mod signals;

pub use catalog::ScryTable;
pub use error::QueryError;
pub use query::{QueryConfig, QueryOutput, QueryService};
