//! scry's collector: OTLP receivers (gRPC and HTTP), OTLP → Arrow conversion, and the storage
//! engine beneath them — write-ahead log, memtables and Parquet files under one data dir.
//!
//! Data flows `receiver` → [`Ingest`] → [`otlp`] conversion → [`Store`] (WAL group commit, then
//! memtable) → [`persist`] (Parquet, by table and hour). Queries read [`Store::snapshot`].

pub mod clock;
pub mod error;
pub mod ingest;
pub mod memtable;
pub mod otlp;
pub mod persist;
pub mod receiver;
pub mod schema;
pub mod store;
pub mod telemetry;
pub mod wal;

pub use clock::{Clock, ManualClock, SharedClock, WallClock};
pub use error::{Error, Result};
pub use ingest::{Enricher, ExportOutcome, Ingest, Observer};
pub use receiver::ReceiverLimits;
pub use schema::Table;
pub use store::{FlushReport, Store, StoreConfig, TableSnapshot};
pub use telemetry::Telemetry;

/// Re-exported so that dependents name the same versions of the OTLP types.
pub use opentelemetry_proto;
