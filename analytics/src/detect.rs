//! Anomaly detectors. Each keeps the state of one series and scores every new value online (using
//! no later values), on a common 0..1 scale, and says when it has too little history to judge.

pub mod extremes;

pub use extremes::{NovelExtremes, NovelExtremesConfig};

/// What a detector says about one value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    /// Anomaly score in 0..1; comparable across detectors and series.
    pub score: f64,
    /// The detector has not seen enough history yet; `score` is 0 and means nothing.
    pub warming_up: bool,
}

/// An online detector over one series.
pub trait Detector {
    /// Scores the next value of the series.
    fn observe(&mut self, value: f64) -> Observation;
}
