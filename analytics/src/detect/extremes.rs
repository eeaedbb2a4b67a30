//! "Novel extremes": how far a value, or the mean of the last few values, goes beyond everything
//! the series did in its recent history, as a share of that history's range.
//!
//! For each scale k, the mean of the last k values is compared with the minimum and maximum of the
//! same mean over the previous `history` points (monotonic deques, amortised O(1) per point). The
//! excess beyond the range, divided by the range, is maximised over scales and mapped to 0..1 with
//! `1 - exp(-excess / softness)`. After an alert (score at or above `alert`), further scores are
//! held at 0 for `cooldown` points: one anomaly, one alert. Short scales catch spikes, long ones
//! level shifts. Measured on NAB in docs/analytics.md.

use std::collections::VecDeque;

use super::{Detector, Observation};

/// Settings of [`NovelExtremes`].
#[derive(Debug, Clone)]
pub struct NovelExtremesConfig {
    /// Window lengths (in points) whose means are compared.
    pub scales: Vec<usize>,
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
            scales: vec![1, 6, 24],
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

/// The detector's state for one series.
#[derive(Debug)]
pub struct NovelExtremes {
    config: NovelExtremesConfig,
    recent: VecDeque<f64>,
    highs: Vec<Extreme>,
    lows: Vec<Extreme>,
    t: usize,
    last_alert: Option<usize>,
}

impl NovelExtremes {
    /// A fresh series.
    pub fn new(config: NovelExtremesConfig) -> Self {
        let highs = config
            .scales
            .iter()
            .map(|_| Extreme::new(config.history, true))
            .collect();
        let lows = config
            .scales
            .iter()
            .map(|_| Extreme::new(config.history, false))
            .collect();
        let keep = config.scales.iter().copied().max().unwrap_or(1);
        Self {
            config,
            recent: VecDeque::with_capacity(keep),
            highs,
            lows,
            t: 0,
            last_alert: None,
        }
    }

    fn excess(&mut self) -> f64 {
        let t = self.t;
        let mut raw: f64 = 0.0;
        for (j, &k) in self.config.scales.iter().enumerate() {
            let n = k.min(self.recent.len());
            // Summed afresh (not a running sum) so that a flat series gives exactly zero excess.
            let mean = self.recent.iter().rev().take(n).sum::<f64>() / n as f64;
            if let (Some(hi), Some(lo)) = (self.highs[j].get(t), self.lows[j].get(t)) {
                let range = hi - lo + 1e-9 * (hi.abs() + lo.abs() + 1.0);
                let e = (mean - hi).max(lo - mean).max(0.0) / range;
                if t >= self.config.warm_up {
                    raw = raw.max(e);
                }
            }
            self.highs[j].push(t, mean);
            self.lows[j].push(t, mean);
        }
        raw
    }
}

impl Detector for NovelExtremes {
    fn observe(&mut self, value: f64) -> Observation {
        let keep = self.config.scales.iter().copied().max().unwrap_or(1);
        if self.recent.len() == keep {
            self.recent.pop_front();
        }
        self.recent.push_back(value);
        let raw = self.excess();
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
