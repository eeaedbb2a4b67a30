//! scry's analytics: the DataFusion catalog over stored telemetry and the SQL query service.
//! Log template mining and its evaluation; detectors, the service graph, incidents and RCA will
//! live here too.

pub mod cancel;
pub mod catalog;
pub mod detect;
pub mod error;
pub mod eval;
pub mod logs;
pub mod query;

pub use catalog::ScryTable;
pub use error::QueryError;
pub use query::{QueryConfig, QueryOutput, QueryService};
