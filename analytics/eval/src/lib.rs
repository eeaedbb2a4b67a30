//! scry's measurements, kept out of the daemon's libraries: evaluation harnesses on public
//! labelled data ([`nab`], [`loghub`], [`rca`] simulated and replayed) and benchmarks
//! ([`bench`](mod@bench)). Each drives the daemon's own code: `rca` runs the same
//! [`DetectionLoop`](scry_pipeline::DetectionLoop) as `scry serve`, on a manual clock.
//!
//! This is a command-line crate: its entry points take clap arguments and report with `anyhow`.

pub mod bench;
pub mod command;
pub mod folds;
pub mod loghub;
pub mod nab;
pub mod rca;

pub use command::{EvalCommand, run};
