//! Per-series models: three baselines scored on one scale, with a noise floor that depends on
//! what kind of value the series holds.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::models::{Assessment, Baseline, Ewma, LevelShift, Seasonal, calibrate};
use crate::signals::{DetectorName, Direction, Kind, Measure, Point};

/// Settings shared by every series model.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    /// EWMA smoothing.
    pub alpha: f64,
    /// Points before the EWMA judges.
    pub warm_up: u64,
    /// Points in the level-shift detector's recent median.
    pub shift_recent: usize,
    /// Points in its reference window.
    pub shift_reference: usize,
    /// Season length (a day), in ns.
    pub season_ns: i64,
    /// Season slot (5 minutes), in ns.
    pub season_slot_ns: i64,
    /// Seasons kept.
    pub season_keep: usize,
    /// Seasons needed before the seasonal baseline judges.
    pub season_min: usize,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            alpha: 0.05,
            warm_up: 30,
            shift_recent: 6,
            shift_reference: 30,
            season_ns: 86_400 * 1_000_000_000,
            season_slot_ns: 300 * 1_000_000_000,
            season_keep: 7,
            season_min: 2,
        }
    }
}

/// An anomalous value: how anomalous, by which baseline, against what band.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// Score in 0..1.
    pub score: f64,
    /// The baseline that found it.
    pub detector: crate::signals::DetectorName,
    /// What was compared (the value, or a recent median), in the series' units.
    pub observed: f64,
    /// The forecast.
    pub expected: f64,
    /// Lower end of the normal band (3 spreads).
    pub lower: f64,
    /// Upper end.
    pub upper: f64,
}

/// The model of one derived series.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeriesModel {
    kind: Kind,
    direction: Direction,
    /// Start of the last bucket seen.
    pub last_ns: i64,
    ewma: Ewma,
    shift: LevelShift,
    seasonal: Option<Seasonal>,
}

/// Values are compared on this scale (log for latencies: their noise is multiplicative).
fn forward(kind: Kind, v: f64) -> f64 {
    match kind {
        Kind::Latency => v.max(1e-3).ln(),
        _ => v,
    }
}

fn inverse(kind: Kind, v: f64) -> f64 {
    match kind {
        Kind::Latency => v.exp(),
        Kind::Count | Kind::Ratio => v.max(0.0),
        Kind::Gauge => v,
    }
}

/// The smallest spread a series is assumed to have at `expected` (on the compared scale), so a
/// series that never moved does not alarm on a tiny change: Poisson for counts, binomial for
/// ratios, 10 % for latencies, 2 % for gauges.
fn noise_floor(kind: Kind, expected: f64, weight: f64) -> f64 {
    match kind {
        Kind::Count => expected.max(1.0).sqrt() + 0.05 * expected.abs(),
        Kind::Ratio => {
            let p = expected.clamp(0.01, 0.99);
            (p * (1.0 - p) / weight.max(1.0)).sqrt() + 0.005
        }
        Kind::Latency => 0.1,
        Kind::Gauge => 0.02 * expected.abs() + 1e-9,
    }
}

impl SeriesModel {
    /// Whether it has history enough to judge its own values.
    pub fn is_warm(&self) -> bool {
        self.ewma.is_warm()
    }

    /// A fresh model for a series of `kind` where `direction` matters.
    pub fn new(kind: Kind, direction: Direction, config: &ModelConfig) -> Self {
        let seasonal = matches!(kind, Kind::Count | Kind::Gauge).then(|| {
            Seasonal::new(
                config.season_ns,
                config.season_slot_ns,
                config.season_keep,
                config.season_min,
            )
        });
        Self {
            kind,
            direction,
            last_ns: 0,
            ewma: Ewma::new(config.alpha, config.warm_up),
            shift: LevelShift::new(config.shift_recent, config.shift_reference),
            seasonal,
        }
    }

    /// Scores the point, then learns from it. `None` while warming up or when nothing scored.
    pub fn observe(&mut self, p: &Point) -> Option<Finding> {
        if !p.value.is_finite() || (p.kind == Kind::Ratio && p.weight <= 0.0) {
            return None;
        }
        let (t, x) = (p.bucket_ns, forward(self.kind, p.value));
        let mut best: Option<(f64, Assessment, f64, crate::signals::DetectorName)> = None;
        {
            let baselines: [Option<&dyn Baseline>; 3] = [
                Some(&self.ewma),
                Some(&self.shift),
                self.seasonal.as_ref().map(|s| s as &dyn Baseline),
            ];
            for b in baselines.into_iter().flatten() {
                let Some(a) = b.assess(t, x) else { continue };
                let floor = noise_floor(self.kind, a.expected, p.weight);
                let z = match self.direction {
                    Direction::Up => a.z(floor).max(0.0),
                    Direction::Both => a.z(floor).abs(),
                };
                if best.is_none_or(|(bz, ..)| z > bz) {
                    best = Some((z, a, a.scale.max(floor), b.name()));
                }
            }
        }
        self.ewma.update(t, x);
        self.shift.update(t, x);
        if let Some(s) = &mut self.seasonal {
            s.update(t, x);
        }
        self.last_ns = t;
        let (z, a, spread, detector) = best?;
        let score = calibrate(z);
        (score > 0.0).then(|| Finding {
            score,
            detector,
            observed: inverse(self.kind, a.observed),
            expected: inverse(self.kind, a.expected),
            lower: inverse(self.kind, a.expected - 3.0 * spread),
            upper: inverse(self.kind, a.expected + 3.0 * spread),
        })
    }
}

/// One baseline per measure over the series of every service, for measures that mean the same
/// physical thing whatever the service (the call gap: time on the network and in queues, in ms).
/// A series too young to judge against its own history is judged against its peers', so a pod
/// whose calls suddenly wait two seconds is found even when it is called too rarely to have a
/// history. Judged upwards only, like latencies: a young series below its peers is normal.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Peers {
    by_measure: HashMap<Measure, Ewma>,
}

impl Peers {
    /// Whether `measure`'s series are comparable across services.
    pub fn applies(measure: &Measure) -> bool {
        measure.is_call_gap()
    }

    /// Judges `p` against its peers when `own_warm` is false, then learns from it.
    pub fn observe(&mut self, p: &Point, own_warm: bool, config: &ModelConfig) -> Option<Finding> {
        if !p.value.is_finite() {
            return None;
        }
        let x = forward(p.kind, p.value);
        let peers = self
            .by_measure
            .entry(p.key.measure.clone())
            .or_insert_with(|| Ewma::new(config.alpha, config.warm_up));
        let finding = (!own_warm)
            .then(|| peers.assess(p.bucket_ns, x))
            .flatten()
            .and_then(|a| {
                let spread = a.scale.max(noise_floor(p.kind, a.expected, p.weight));
                let score = calibrate(a.z(spread).max(0.0));
                (score > 0.0).then(|| Finding {
                    score,
                    detector: DetectorName::Peers,
                    observed: inverse(p.kind, a.observed),
                    expected: inverse(p.kind, a.expected),
                    lower: inverse(p.kind, a.expected - 3.0 * spread),
                    upper: inverse(p.kind, a.expected + 3.0 * spread),
                })
            });
        peers.update(p.bucket_ns, x);
        finding
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::synthetic::Noise;
    use crate::signals::{Evidence, SeriesKey, Signal};

    fn point(kind: Kind, i: i64, value: f64, weight: f64) -> Point {
        Point {
            key: SeriesKey {
                service: "s".into(),
                signal: Signal::Traces,
                measure: crate::signals::Measure::Metric("m".into()),
                scope: String::new(),
            },
            kind,
            direction: Direction::Up,
            bucket_ns: i * 10_000_000_000,
            value,
            weight,
            evidence: Evidence::default(),
        }
    }

    fn run(kind: Kind, values: &[(f64, f64)]) -> Vec<f64> {
        let mut m = SeriesModel::new(kind, Direction::Up, &ModelConfig::default());
        values
            .iter()
            .enumerate()
            .map(|(i, (v, w))| {
                m.observe(&point(kind, i as i64, *v, *w))
                    .map_or(0.0, |f| f.score)
            })
            .collect()
    }

    #[test]
    fn latency_spike_is_found_and_steady_latency_is_quiet() {
        let mut noise = Noise::new(3);
        let clean: Vec<(f64, f64)> = (0..200)
            .map(|_| (100.0 * (1.0 + 0.05 * noise.normal()), 50.0))
            .collect();
        let mut spiked = clean.clone();
        spiked[150].0 = 400.0;
        assert!(run(Kind::Latency, &spiked)[150] > 0.9);
        assert!(run(Kind::Latency, &clean).iter().all(|s| *s < 0.5));
    }

    #[test]
    fn a_single_error_in_a_few_requests_is_not_an_anomaly_but_a_burst_is() {
        let mut values = vec![(0.0, 20.0); 100];
        values.push((1.0 / 5.0, 5.0)); // one failure of five requests
        values.push((0.5, 40.0)); // half of forty requests fail
        let scores = run(Kind::Ratio, &values);
        assert!(scores[100] < 0.5, "{}", scores[100]);
        assert!(scores[101] > 0.9, "{}", scores[101]);
    }

    #[test]
    fn a_constant_gauge_does_not_alarm_on_a_tiny_change() {
        let mut values = vec![(1000.0, 1.0); 100];
        values.push((1001.0, 1.0));
        assert_eq!(run(Kind::Gauge, &values)[100], 0.0);
    }
}
