//! Multivariate detection: a PCA model (linfa) of a service's series taken together, scoring
//! each new vector by its reconstruction error (squared prediction error, SPE).
//!
//! Features are standardised by the training window's mean and standard deviation (floored,
//! so a feature that never moved does not turn noise into alarms). The model keeps the
//! components that explain `variance` of the training data; a vector whose residual off that
//! subspace exceeds the training residuals' 99th percentile is unusual as a whole even when
//! each series alone looks plausible (e.g. latency up while traffic is flat). It is retrained
//! every `retrain` vectors on the last `window` vectors that were not flagged.

use std::collections::VecDeque;

use linfa::DatasetBase;
use linfa::traits::Fit;
use linfa_reduction::Pca as LinfaPca;
use ndarray::{Array1, Array2, Axis};
use serde::{Deserialize, Serialize};

use super::{Assessment, calibrate};

/// The fitted part (not persisted: rebuilt from the training window).
#[derive(Debug, Clone)]
struct Fitted {
    mean: Array1<f64>,
    std: Array1<f64>,
    components: Array2<f64>,
    spe_q99: f64,
}

/// PCA reconstruction-error model over fixed-length vectors.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pca {
    dims: usize,
    window: usize,
    retrain: usize,
    min_train: usize,
    variance: f64,
    floor: f64,
    train: VecDeque<Vec<f64>>,
    since_fit: usize,
    #[serde(skip)]
    fitted: Option<Fitted>,
}

impl Pca {
    /// A model of `dims`-long vectors trained on the last `window` normal ones, once
    /// `min_train` are there, refitted every `retrain`.
    pub fn new(dims: usize, window: usize, retrain: usize, min_train: usize) -> Self {
        Self {
            dims,
            window: window.max(min_train),
            retrain: retrain.max(1),
            min_train: min_train.max(dims + 2),
            variance: 0.9,
            floor: 0.05,
            train: VecDeque::new(),
            since_fit: 0,
            fitted: None,
        }
    }

    /// Compares `x` with the model: `observed` is the distance in "robust standard
    /// deviations" (3 at the training 99th percentile), `expected` 0; `None` while training.
    pub fn assess(&mut self, x: &[f64]) -> Option<Assessment> {
        if x.len() != self.dims || x.iter().any(|v| !v.is_finite()) {
            return None;
        }
        if self.fitted.is_none() || self.since_fit >= self.retrain {
            self.fit();
        }
        let f = self.fitted.as_ref()?;
        let spe = spe(f, x);
        Some(Assessment {
            observed: 3.0 * (spe / f.spe_q99.max(1e-12)).sqrt(),
            expected: 0.0,
            scale: 1.0,
        })
    }

    /// Adds `x` to the training window unless it was flagged (`anomalous`).
    pub fn update(&mut self, x: &[f64], anomalous: bool) {
        if x.len() != self.dims || anomalous || x.iter().any(|v| !v.is_finite()) {
            return;
        }
        self.train.push_back(x.to_vec());
        while self.train.len() > self.window {
            self.train.pop_front();
        }
        self.since_fit += 1;
    }

    /// Score of `x` on the common scale, for tests and callers without a noise floor.
    pub fn score(&mut self, x: &[f64]) -> Option<f64> {
        self.assess(x).map(|a| calibrate(a.z(0.0)))
    }

    /// Index of the feature that is furthest off the model (largest standardised residual).
    pub fn top_feature(&self, x: &[f64]) -> Option<usize> {
        let f = self.fitted.as_ref()?;
        if x.len() != self.dims {
            return None;
        }
        let z = (Array1::from_vec(x.to_vec()) - &f.mean) / &f.std;
        let residual = &z - &f.components.t().dot(&f.components.dot(&z));
        residual
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
            .map(|(i, _)| i)
    }

    fn fit(&mut self) {
        self.since_fit = 0;
        if self.train.len() < self.min_train {
            return;
        }
        let n = self.train.len();
        let flat: Vec<f64> = self.train.iter().flatten().copied().collect();
        let raw = Array2::from_shape_vec((n, self.dims), flat).expect("rows have dims values");
        let mean = raw.mean_axis(Axis(0)).expect("n > 0");
        let std = raw.std_axis(Axis(0), 0.0).mapv(|s| s.max(self.floor));
        let z = (&raw - &mean) / &std;
        let Ok(full) = LinfaPca::params(self.dims).fit(&DatasetBase::from(z.clone())) else {
            return;
        };
        let ratios = full.explained_variance_ratio();
        let mut keep = 0;
        let mut acc = 0.0;
        while keep < self.dims - 1 && acc < self.variance {
            acc += ratios[keep];
            keep += 1;
        }
        let components = full.components().slice(ndarray::s![..keep, ..]).to_owned();
        let mut fitted = Fitted {
            mean,
            std,
            components,
            spe_q99: 0.0,
        };
        let mut spes: Vec<f64> = self.train.iter().map(|x| spe(&fitted, x)).collect();
        spes.sort_unstable_by(f64::total_cmp);
        // Never below one (floored) standard deviation of one feature: a near-perfect fit would
        // otherwise make ordinary noise look huge.
        fitted.spe_q99 = spes[(spes.len() * 99 / 100).min(spes.len() - 1)].max(1.0);
        self.fitted = Some(fitted);
    }
}

/// Squared distance of standardised `x` from the model's principal subspace.
fn spe(f: &Fitted, x: &[f64]) -> f64 {
    let z = (Array1::from_vec(x.to_vec()) - &f.mean) / &f.std;
    let projected = f.components.dot(&z);
    let reconstructed = f.components.t().dot(&projected);
    (&z - &reconstructed).mapv(|v| v * v).sum()
}

#[cfg(test)]
mod tests {
    use super::super::synthetic::Noise;
    use super::*;

    /// Traffic and latency that move together (load); the anomaly breaks the relation.
    fn vector(noise: &mut Noise, load: f64) -> Vec<f64> {
        vec![
            load + 0.05 * noise.normal(),
            2.0 * load + 0.05 * noise.normal(),
            0.01 * noise.normal(),
        ]
    }

    #[test]
    fn broken_correlation_is_found_and_normal_load_changes_are_not() {
        let mut noise = Noise::new(5);
        let mut pca = Pca::new(3, 200, 50, 60);
        let mut normal_max: f64 = 0.0;
        for i in 0..400 {
            let load = 1.0 + (i as f64 / 30.0).sin();
            let x = vector(&mut noise, load);
            if let Some(s) = pca.score(&x) {
                normal_max = normal_max.max(s);
            }
            pca.update(&x, false);
        }
        // Latency doubles while traffic stays: each value alone stays within its range.
        let broken = vec![0.0, 3.9, 0.0];
        let s = pca.score(&broken).unwrap();
        assert!(s > 0.5, "broken {s}");
        assert!(normal_max < 0.5, "normal {normal_max}");
    }
}
