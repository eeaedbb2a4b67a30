//! Workloads for scry: OTLP request builders ([`otlp`]), the simulated ten-service system with
//! its fault catalogue that `scry demo` and `scry eval rca` run ([`system`]), and the OTLP/gRPC
//! load generator of `scry bench ingest` ([`loadgen`]). Nothing here depends on scry's own
//! crates, so any of them can use it in tests.

pub mod demo;
pub mod loadgen;
pub mod otlp;
pub mod system;

pub use system::{Batch, Fault, FaultKind, System};
