//! Exponentially weighted moving average and variance: a forecast that follows slow drift.
//!
//! Updates are winsorized at `clip` standard deviations, so a spike moves the baseline only a
//! little and a sustained shift is absorbed over about `1 / alpha` points rather than at once.

use serde::{Deserialize, Serialize};

use super::{Assessment, Baseline};

/// EWMA forecast with residual scale.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ewma {
    alpha: f64,
    clip: f64,
    warm_up: u64,
    n: u64,
    mean: f64,
    var: f64,
}

impl Ewma {
    /// Smoothing `alpha` (0..1), assessments after `warm_up` points.
    pub fn new(alpha: f64, warm_up: u64) -> Self {
        Self {
            alpha,
            clip: 3.0,
            warm_up: warm_up.max(2),
            n: 0,
            mean: 0.0,
            var: 0.0,
        }
    }

    /// Whether it has seen enough points to judge.
    pub fn is_warm(&self) -> bool {
        self.n >= self.warm_up
    }
}

impl Baseline for Ewma {
    fn name(&self) -> crate::signals::DetectorName {
        crate::signals::DetectorName::Ewma
    }

    fn assess(&self, _time_ns: i64, value: f64) -> Option<Assessment> {
        (self.n >= self.warm_up).then(|| Assessment {
            observed: value,
            expected: self.mean,
            scale: self.var.sqrt(),
        })
    }

    fn update(&mut self, _time_ns: i64, value: f64) {
        self.n += 1;
        if self.n == 1 {
            self.mean = value;
            return;
        }
        // Plain averaging while young, so the start does not dominate.
        let alpha = self.alpha.max(1.0 / self.n as f64);
        let sd = self.var.sqrt();
        let mut r = value - self.mean;
        if self.n > self.warm_up && sd > 0.0 {
            r = r.clamp(-self.clip * sd, self.clip * sd);
        }
        self.mean += alpha * r;
        self.var = (1.0 - alpha) * (self.var + alpha * r * r);
    }
}

#[cfg(test)]
mod tests {
    use super::super::synthetic::{flat, max_score};
    use super::super::{Detector, Scored};
    use super::*;

    #[test]
    fn spike_scores_high_and_clean_twin_does_not() {
        let clean = flat(400, 100.0, 5.0, 7);
        let mut spiked = clean.clone();
        spiked[300] += 60.0;
        let score = |v: &[f64]| max_score(&mut Scored::new(Ewma::new(0.05, 30)), v, 290, 310);
        assert!(score(&spiked) > 0.8, "{}", score(&spiked));
        assert!(score(&clean) < 0.3, "{}", score(&clean));
    }

    #[test]
    fn variance_increase_is_found_and_clean_twin_is_quiet() {
        let clean = flat(600, 20.0, 1.0, 5);
        let wild = flat(600, 0.0, 6.0, 9);
        let changed: Vec<f64> = clean
            .iter()
            .zip(&wild)
            .enumerate()
            .map(|(i, (c, w))| if i >= 400 { c + w } else { *c })
            .collect();
        let score = |v: &[f64]| max_score(&mut Scored::new(Ewma::new(0.05, 30)), v, 400, 430);
        assert!(score(&changed) > 0.5, "{}", score(&changed));
        assert!(score(&clean) < 0.3, "{}", score(&clean));
    }

    #[test]
    fn warms_up_first() {
        let mut d = Scored::new(Ewma::new(0.05, 30));
        assert!(d.observe(1.0).warming_up);
    }
}
