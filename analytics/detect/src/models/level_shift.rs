//! Level shift: the median of the last few points against the median of the window before
//! them, scaled by that window's median absolute deviation.
//!
//! A sustained moderate change that no single point makes obvious becomes clear in the median
//! of several points, whose spread is smaller than a single point's by about `1.25 / sqrt(k)`.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::{Assessment, Baseline, median, median_and_mad};

/// Recent-versus-reference median comparison.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LevelShift {
    recent: usize,
    reference: usize,
    window: VecDeque<f64>,
}

impl LevelShift {
    /// Compares the median of the last `recent` points (the assessed one included) with the
    /// `reference` points before them.
    pub fn new(recent: usize, reference: usize) -> Self {
        Self {
            recent: recent.max(1),
            reference: reference.max(3),
            window: VecDeque::new(),
        }
    }
}

impl Baseline for LevelShift {
    fn name(&self) -> crate::signals::DetectorName {
        crate::signals::DetectorName::LevelShift
    }

    fn assess(&self, _time_ns: i64, value: f64) -> Option<Assessment> {
        // The window holds reference + recent - 1 points once warm.
        if self.window.len() + 1 < self.reference + self.recent {
            return None;
        }
        let split = self.window.len() + 1 - self.recent;
        let reference: Vec<f64> = self.window.iter().take(split).copied().collect();
        let mut recent: Vec<f64> = self.window.iter().skip(split).copied().collect();
        recent.push(value);
        let (expected, mad) = median_and_mad(&reference);
        Some(Assessment {
            observed: median(&mut recent),
            expected,
            scale: mad * 1.2533 / (self.recent as f64).sqrt(),
        })
    }

    fn update(&mut self, _time_ns: i64, value: f64) {
        self.window.push_back(value);
        while self.window.len() > self.reference + self.recent - 1 {
            self.window.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Scored;
    use super::super::synthetic::{flat, max_score};
    use super::*;

    #[test]
    fn sustained_shift_is_found_and_clean_twin_is_quiet() {
        let clean = flat(300, 50.0, 2.0, 11);
        let mut shifted = clean.clone();
        for v in &mut shifted[200..] {
            *v += 8.0; // 4 standard deviations: no single point stands out much
        }
        let score = |v: &[f64]| max_score(&mut Scored::new(LevelShift::new(6, 30)), v, 195, 215);
        assert!(score(&shifted) > 0.5, "{}", score(&shifted));
        assert!(score(&clean) < 0.2, "{}", score(&clean));
    }
}
