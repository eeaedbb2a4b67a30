//! Anomaly detectors.
//!
//! Two shapes share one score scale (0..1, comparable across detectors and series):
//! - a [`Detector`] keeps the state of one series and scores every new value online (using no
//!   later values), saying when it has too little history to judge ([`NovelExtremes`], the NAB
//!   detector);
//! - a [`Baseline`] forecasts what a series should be now and how far it may stray
//!   ([`Ewma`], [`LevelShift`], [`Seasonal`]); [`calibrate`] turns the distance from the forecast
//!   into a score. The daemon's per-series models combine baselines (see `anomaly::model`).
//! - [`Pca`] scores a vector of a service's series at once (multivariate).

pub mod ewma;
pub mod extremes;
pub mod level_shift;
pub mod pca;
pub mod seasonal;
pub mod statements;

pub use ewma::Ewma;
pub use extremes::{NovelExtremes, NovelExtremesConfig};
pub use level_shift::LevelShift;
pub use pca::Pca;
pub use seasonal::Seasonal;
pub use statements::{StatementConfig, StatementFinding, StatementModel};

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

/// A baseline's view of one value: what it compared, what it expected and the spread.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Assessment {
    /// What was compared with the forecast (the value, or e.g. a recent median).
    pub observed: f64,
    /// The forecast.
    pub expected: f64,
    /// The spread around the forecast (one robust standard deviation of `observed`).
    pub scale: f64,
}

impl Assessment {
    /// Distance from the forecast in units of `max(scale, floor)`; signed.
    pub fn z(&self, floor: f64) -> f64 {
        (self.observed - self.expected) / self.scale.max(floor).max(f64::MIN_POSITIVE)
    }
}

/// A forecast of a series from its history.
pub trait Baseline {
    /// Name used in the `anomalies.detector` column.
    fn name(&self) -> crate::signals::DetectorName;
    /// Compares the value at `time_ns` with the forecast; `None` while warming up.
    fn assess(&self, time_ns: i64, value: f64) -> Option<Assessment>;
    /// Adds the value at `time_ns` to the history.
    fn update(&mut self, time_ns: i64, value: f64);
}

/// Distances (in robust standard deviations) below this score 0.
pub const Z_START: f64 = 3.0;
/// Each further this many standard deviations multiply the remaining distance to 1 by 1/e.
pub const Z_SOFTNESS: f64 = 3.0;

/// Maps a distance from the forecast (in standard deviations) to the 0..1 score: 0 up to
/// [`Z_START`], 0.5 at about 5.1, 0.9 at about 9.9.
pub fn calibrate(z: f64) -> f64 {
    1.0 - (-(z.abs() - Z_START).max(0.0) / Z_SOFTNESS).exp()
}

/// Scores a series with one [`Baseline`] (both directions, no noise floor): the generic
/// [`Detector`] form of a baseline, used by the evaluation and tests.
#[derive(Debug, Clone)]
pub struct Scored<B> {
    /// The baseline.
    pub baseline: B,
    t: i64,
}

impl<B: Baseline> Scored<B> {
    /// Wraps `baseline`.
    pub fn new(baseline: B) -> Self {
        Self { baseline, t: 0 }
    }
}

impl<B: Baseline> Detector for Scored<B> {
    fn observe(&mut self, value: f64) -> Observation {
        self.t += 1;
        let out = match self.baseline.assess(self.t, value) {
            Some(a) => Observation {
                score: calibrate(a.z(0.0)),
                warming_up: false,
            },
            None => Observation {
                score: 0.0,
                warming_up: true,
            },
        };
        self.baseline.update(self.t, value);
        out
    }
}

/// Median of `values` (which it sorts); NaN when empty.
pub(crate) fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_unstable_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// Median and 1.4826 × median absolute deviation (a robust standard deviation) of `values`.
pub(crate) fn median_and_mad(values: &[f64]) -> (f64, f64) {
    let mut v = values.to_vec();
    let m = median(&mut v);
    for x in v.iter_mut() {
        *x = (*x - m).abs();
    }
    (m, 1.4826 * median(&mut v))
}

#[cfg(test)]
pub(crate) mod synthetic {
    //! Synthetic series with known anomalies, shared by the detectors' tests.

    /// A deterministic pseudo-random generator (xorshift) so tests are reproducible.
    pub struct Noise(u64);

    impl Noise {
        pub fn new(seed: u64) -> Self {
            Self(seed.max(1))
        }

        /// Roughly standard normal (sum of uniforms).
        pub fn normal(&mut self) -> f64 {
            let mut s = 0.0;
            for _ in 0..12 {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                s += (self.0 >> 11) as f64 / (1u64 << 53) as f64;
            }
            s - 6.0
        }
    }

    /// `n` points of `level + sd * noise`.
    pub fn flat(n: usize, level: f64, sd: f64, seed: u64) -> Vec<f64> {
        let mut noise = Noise::new(seed);
        (0..n).map(|_| level + sd * noise.normal()).collect()
    }

    /// Highest score of `detector` over `values[from..to]`, feeding all of `values` in order.
    pub fn max_score<D: super::Detector>(d: &mut D, values: &[f64], from: usize, to: usize) -> f64 {
        let mut best: f64 = 0.0;
        for (i, v) in values.iter().enumerate() {
            let o = d.observe(*v);
            if (from..to).contains(&i) {
                best = best.max(o.score);
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_is_monotone_and_bounded() {
        assert_eq!(calibrate(2.0), 0.0);
        assert!(calibrate(5.0) > 0.4 && calibrate(5.0) < 0.5);
        assert!(calibrate(-20.0) > 0.99 && calibrate(1e9) <= 1.0);
    }

    #[test]
    fn median_and_mad_of_a_small_set() {
        let (m, s) = median_and_mad(&[1.0, 2.0, 3.0, 4.0, 100.0]);
        assert_eq!(m, 3.0);
        assert!((s - 1.4826).abs() < 1e-9);
    }
}
