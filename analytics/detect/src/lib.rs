//! scry's detection: derived series folded from stored batches ([`signals`]), the statistical and
//! linfa models that judge them ([`models`]), the engine that turns closed buckets into
//! [`Anomaly`] rows ([`anomaly`]), and log template mining ([`logs`]).
//!
//! No query engine here: the crate builds and tests in seconds. Time is always passed in (the
//! caller's clock), never read from the wall.

pub mod anomaly;
pub mod logs;
pub mod models;
pub mod signals;

pub use anomaly::{Anomaly, CycleReport, DetectionConfig, Engine};
pub use signals::{DetectorName, Measure, SeriesKey, Signal};
