//! "Novel extremes": how far a value, or the median of the last few values, goes beyond
//! everything the series did in its recent history, as a share of that history's range.
//!
//! Features are the value and its rolling medians over `scales` points. Each feature is
//! compared with the minimum and maximum of its own values over rows `t - history ..= t - gap`
//! (monotonic deques, amortised O(1) per point). The excess beyond that range, divided by the
//! range, is maximised over features and mapped to 0..1 with `1 - exp(-excess / softness)`.
//! After an alert (score at or above `alert`), further scores are held at 0 for `cooldown`
//! points: one anomaly, one alert. The raw value catches spikes; the medians ignore isolated
//! spikes, so their range stays narrow and a sustained change of level inside the raw range
//! still makes a new extreme. Measured on NAB in docs/analytics.md.

use std::collections::VecDeque;

use super::{Detector, Observation};

/// Settings of [`NovelExtremes`].
#[derive(Debug, Clone)]
pub struct NovelExtremesConfig {
    /// Window lengths (in points) whose medians are the features (1: the value itself).
    pub scales: Vec<usize>,
    /// A feature is compared with its own values up to `gap` rows back (the last `gap - 1`
    /// rows are left out, so a slow ramp still builds up excess).
    pub gap: usize,
    /// Points of history the extremes are taken over.
    pub history: usize,
    /// Points before any score is given.
    pub warm_up: usize,
    /// Excess (as a share of the range) that maps to a score of 1 - 1/e.
    pub softness: f64,
    /// Score at which an alert is raised (and the cooldown starts).
    pub alert: f64,
    /// Points after an alert during which scores are held at 0.
    pub cooldown: usize,
}

impl Default for NovelExtremesConfig {
    fn default() -> Self {
        Self {
            scales: vec![1, 8, 24],
            gap: 6,
            history: 4000,
            warm_up: 150,
            softness: 0.2,
            alert: 0.10,
            cooldown: 25,
        }
    }
}

/// Sliding maximum (or minimum) of the last `window` pushed values.
#[derive(Debug)]
struct Extreme {
    window: usize,
    max: bool,
    queue: VecDeque<(usize, f64)>,
}

impl Extreme {
    fn new(window: usize, max: bool) -> Self {
        Self {
            window,
            max,
            queue: VecDeque::new(),
        }
    }

    fn push(&mut self, t: usize, v: f64) {
        let dominated = |q: f64| if self.max { q <= v } else { q >= v };
        while self.queue.back().is_some_and(|(_, q)| dominated(*q)) {
            self.queue.pop_back();
        }
        self.queue.push_back((t, v));
    }

    /// The extreme over values pushed at times `t - window ..= t - 1`.
    fn get(&mut self, t: usize) -> Option<f64> {
        while self
            .queue
            .front()
            .is_some_and(|(at, _)| *at + self.window < t)
        {
            self.queue.pop_front();
        }
        self.queue.front().map(|(_, v)| *v)
    }
}

/// Median of the last `k` values (of all so far while fewer): a FIFO plus a sorted copy.
#[derive(Debug)]
struct RollingMedian {
    k: usize,
    fifo: VecDeque<f64>,
    sorted: Vec<f64>,
}

impl RollingMedian {
    fn new(k: usize) -> Self {
        Self {
            k: k.max(1),
            fifo: VecDeque::with_capacity(k),
            sorted: Vec::with_capacity(k),
        }
    }

    fn push(&mut self, x: f64) -> f64 {
        self.fifo.push_back(x);
        let at = self.sorted.partition_point(|v| *v < x);
        self.sorted.insert(at, x);
        if self.fifo.len() > self.k {
            let old = self.fifo.pop_front().expect("longer than k");
            let at = self.sorted.partition_point(|v| *v < old);
            self.sorted.remove(at);
        }
        let n = self.sorted.len();
        if n % 2 == 1 {
            self.sorted[n / 2]
        } else {
            (self.sorted[n / 2 - 1] + self.sorted[n / 2]) / 2.0
        }
    }
}

/// One feature's reference range: its values at rows `t - history ..= t - gap`.
#[derive(Debug)]
struct Reference {
    gap: usize,
    pending: VecDeque<(usize, f64)>,
    high: Extreme,
    low: Extreme,
}

impl Reference {
    fn new(history: usize, gap: usize) -> Self {
        Self {
            gap: gap.max(1),
            pending: VecDeque::new(),
            high: Extreme::new(history, true),
            low: Extreme::new(history, false),
        }
    }

    /// Excess of `f` (the feature at row `t`) beyond the reference range, as a share of it.
    fn excess(&mut self, t: usize, f: f64) -> f64 {
        while self.pending.front().is_some_and(|(s, _)| s + self.gap <= t) {
            let (s, v) = self.pending.pop_front().expect("checked non-empty");
            self.high.push(s, v);
            self.low.push(s, v);
        }
        let e = match (self.high.get(t), self.low.get(t)) {
            (Some(hi), Some(lo)) => {
                let range = hi - lo + 1e-9 * (hi.abs() + lo.abs() + 1.0);
                (f - hi).max(lo - f).max(0.0) / range
            }
            _ => 0.0,
        };
        self.pending.push_back((t, f));
        e
    }
}

/// The detector's state for one series.
#[derive(Debug)]
pub struct NovelExtremes {
    config: NovelExtremesConfig,
    medians: Vec<RollingMedian>,
    references: Vec<Reference>,
    t: usize,
    last_alert: Option<usize>,
}

impl NovelExtremes {
    /// A fresh series.
    pub fn new(config: NovelExtremesConfig) -> Self {
        let medians = config
            .scales
            .iter()
            .map(|k| RollingMedian::new(*k))
            .collect();
        let references = config
            .scales
            .iter()
            .map(|_| Reference::new(config.history, config.gap))
            .collect();
        Self {
            config,
            medians,
            references,
            t: 0,
            last_alert: None,
        }
    }

    fn excess(&mut self, value: f64) -> f64 {
        let t = self.t;
        let mut raw: f64 = 0.0;
        for (median, reference) in self.medians.iter_mut().zip(&mut self.references) {
            let f = median.push(value);
            raw = raw.max(reference.excess(t, f));
        }
        if t >= self.config.warm_up { raw } else { 0.0 }
    }
}

impl Detector for NovelExtremes {
    fn observe(&mut self, value: f64) -> Observation {
        let raw = self.excess(value);
        let mut score = 1.0 - (-raw / self.config.softness).exp();
        let t = self.t;
        if self
            .last_alert
            .is_some_and(|a| t - a <= self.config.cooldown)
        {
            score = 0.0;
        } else if score >= self.config.alert {
            self.last_alert = Some(t);
        }
        self.t += 1;
        Observation {
            score,
            warming_up: t < self.config.warm_up,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scores(series: &[f64]) -> Vec<f64> {
        let mut d = NovelExtremes::new(NovelExtremesConfig::default());
        series.iter().map(|v| d.observe(*v).score).collect()
    }

    fn noisy(n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| 10.0 + ((i * 7919) % 13) as f64 * 0.1 + (i as f64 / 20.0).sin())
            .collect()
    }

    #[test]
    fn spike_and_level_shift_alert_clean_twin_does_not() {
        let clean = noisy(1000);
        assert!(
            scores(&clean).iter().all(|s| *s < 0.1),
            "clean series alerted"
        );
        let mut spike = clean.clone();
        spike[600] += 10.0;
        let s = scores(&spike);
        assert!(s[600] > 0.5, "spike score {}", s[600]);
        let mut shift = clean.clone();
        for v in &mut shift[700..] {
            *v += 3.0;
        }
        let s = scores(&shift);
        assert!(
            s[700..730].iter().any(|x| *x >= 0.1),
            "level shift not seen"
        );
    }

    #[test]
    fn warm_up_is_explicit_and_flat_series_scores_zero() {
        let mut d = NovelExtremes::new(NovelExtremesConfig::default());
        let first = d.observe(1.0);
        assert!(first.warming_up);
        for _ in 0..500 {
            assert_eq!(d.observe(1.0).score, 0.0);
        }
        assert!(!d.observe(1.0).warming_up);
    }
}
