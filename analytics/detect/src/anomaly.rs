//! Continuous anomaly detection in the daemon, and anomalies as data.
//!
//! The [`Engine`] sees every stored batch (it is the ingest [`Observer`](scry_collector::Observer)),
//! folds it into derived series ([`crate::signals`]), and on each cycle scores the closed
//! buckets with per-series models ([`model`]): EWMA, level shift and seasonal baselines per
//! series, a PCA model per service across its RED series, and novelties (first templates, first
//! error codes), and log statements per span of each operation
//! ([`crate::models::statements`]). Findings become rows of the `anomalies` table ([`rows`]).
//! Model state is saved to the data dir and restored on start ([`engine`]).

pub mod engine;
pub mod model;
pub mod rows;

pub use engine::{CycleReport, DetectionConfig, Engine};
pub use model::{Finding, ModelConfig, Peers, SeriesModel};
pub use rows::{Anomaly, to_batch};
