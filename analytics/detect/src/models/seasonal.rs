//! Robust seasonal baseline: the median, over past periods, of the same phase slot (e.g. the
//! same 5 minutes of the day), with the spread from those periods and from recent residuals.
//!
//! Memory is `period / slot × periods` numbers per series (288 × 7 for a day in 5-minute slots,
//! kept a week), so it scales to thousands of series. It says nothing until a slot has been
//! seen in `min_periods` earlier periods.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::{Assessment, Baseline, median_and_mad};

/// Weight of a new residual in the residual variance.
const RESIDUAL_ALPHA: f64 = 0.02;
/// Residuals needed before their spread is trusted.
const RESIDUAL_WARM_UP: u64 = 20;

/// Same-phase median baseline.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Seasonal {
    slot_ns: i64,
    slots: usize,
    keep: usize,
    min_periods: usize,
    history: Vec<VecDeque<f32>>,
    /// Absolute slot number being filled, its sum and count.
    current: Option<(i64, f64, u32)>,
    residual_var: f64,
    residuals: u64,
}

impl Seasonal {
    /// A baseline with period `period_ns` in slots of `slot_ns`, keeping `keep` periods and
    /// assessing once a slot has `min_periods` of them.
    pub fn new(period_ns: i64, slot_ns: i64, keep: usize, min_periods: usize) -> Self {
        let slot_ns = slot_ns.max(1);
        let slots = usize::try_from((period_ns / slot_ns).max(1)).unwrap_or(1);
        Self {
            slot_ns,
            slots,
            keep: keep.max(1),
            min_periods: min_periods.clamp(1, keep.max(1)),
            history: Vec::new(),
            current: None,
            residual_var: 0.0,
            residuals: 0,
        }
    }

    fn phase(&self, slot: i64) -> usize {
        slot.rem_euclid(self.slots as i64) as usize
    }

    /// Median and robust spread of the same slot in past periods.
    fn forecast(&self, time_ns: i64) -> Option<(f64, f64)> {
        let past = self
            .history
            .get(self.phase(time_ns.div_euclid(self.slot_ns)))?;
        if past.len() < self.min_periods {
            return None;
        }
        let values: Vec<f64> = past.iter().map(|v| f64::from(*v)).collect();
        Some(median_and_mad(&values))
    }

    fn close_slot(&mut self) {
        let Some((slot, sum, n)) = self.current.take() else {
            return;
        };
        if self.history.is_empty() {
            self.history = vec![VecDeque::new(); self.slots];
        }
        let phase = self.phase(slot);
        let past = &mut self.history[phase];
        past.push_back((sum / f64::from(n.max(1))) as f32);
        while past.len() > self.keep {
            past.pop_front();
        }
    }
}

impl Baseline for Seasonal {
    fn name(&self) -> crate::signals::DetectorName {
        crate::signals::DetectorName::Seasonal
    }

    fn assess(&self, time_ns: i64, value: f64) -> Option<Assessment> {
        // Until residuals are known, the spread between periods alone would understate how much
        // single points stray inside a slot.
        if self.residuals < RESIDUAL_WARM_UP {
            return None;
        }
        let (expected, mad) = self.forecast(time_ns)?;
        Some(Assessment {
            observed: value,
            expected,
            scale: mad.max(self.residual_var.sqrt()),
        })
    }

    fn update(&mut self, time_ns: i64, value: f64) {
        if let Some((expected, mad)) = self.forecast(time_ns) {
            let mut r = value - expected;
            if self.residuals >= RESIDUAL_WARM_UP {
                let limit = 3.0 * mad.max(self.residual_var.sqrt()).max(1e-12);
                r = r.clamp(-limit, limit);
            }
            self.residual_var = (1.0 - RESIDUAL_ALPHA) * self.residual_var + RESIDUAL_ALPHA * r * r;
            self.residuals += 1;
        }
        let slot = time_ns.div_euclid(self.slot_ns);
        match &mut self.current {
            Some((s, sum, n)) if *s == slot => {
                *sum += value;
                *n += 1;
            }
            _ => {
                self.close_slot();
                self.current = Some((slot, value, 1));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::calibrate;
    use super::super::synthetic::Noise;
    use super::*;

    /// A daily-like pattern: 100 points per period, 10 per slot.
    fn wave(periods: usize, seed: u64) -> Vec<f64> {
        let mut noise = Noise::new(seed);
        (0..periods * 100)
            .map(|i| {
                let phase = (i % 100) as f64 / 100.0 * std::f64::consts::TAU;
                100.0 + 50.0 * phase.sin() + 2.0 * noise.normal()
            })
            .collect()
    }

    fn max_score(values: &[f64], from: usize, to: usize) -> f64 {
        let mut s = Seasonal::new(100, 10, 7, 3);
        let mut best: f64 = 0.0;
        for (i, v) in values.iter().enumerate() {
            if let Some(a) = s.assess(i as i64, *v)
                && (from..to).contains(&i)
            {
                best = best.max(calibrate(a.z(0.0)));
            }
            s.update(i as i64, *v);
        }
        best
    }

    #[test]
    fn break_of_the_daily_pattern_is_found() {
        let clean = wave(8, 3);
        let mut broken = clean.clone();
        // At the trough, the series stays at its daily mean: inside the range it always
        // spans, so only the phase says it is wrong.
        for v in &mut broken[770..780] {
            *v = 100.0;
        }
        assert!(
            max_score(&broken, 760, 790) > 0.5,
            "{}",
            max_score(&broken, 760, 790)
        );
        assert!(
            max_score(&clean, 300, 800) < 0.3,
            "{}",
            max_score(&clean, 300, 800)
        );
    }
}
