//! scry's query engine: the DataFusion catalog over stored telemetry (memtables and Parquet files
//! of the collector's [`Store`](scry_collector::Store)) and the read-only SQL service with limits,
//! timeouts and cancellation.

pub mod cancel;
pub mod catalog;
pub mod error;
pub mod map_exec;
pub mod query;

pub use catalog::ScryTable;
pub use error::QueryError;
pub use query::{QueryConfig, QueryOutput, QueryService};
