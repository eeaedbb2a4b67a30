//! A latency histogram with logarithmic buckets: bounded relative error, mergeable, cheap to
//! update on the ingest path.

use std::collections::HashMap;

/// Ratio between consecutive bucket bounds: quantiles are within about 1 % of the true value.
const GAMMA: f64 = 1.02;

/// Counts of values in buckets `(GAMMA^(i-1), GAMMA^i]`.
#[derive(Debug, Default, Clone)]
pub struct LogHistogram {
    counts: HashMap<i32, u32>,
    total: u64,
}

impl LogHistogram {
    /// Adds one value (values below 1 share the lowest bucket).
    pub fn add(&mut self, value: f64) {
        let index = if value > 1.0 {
            (value.ln() / GAMMA.ln()).ceil() as i32
        } else {
            0
        };
        *self.counts.entry(index).or_default() += 1;
        self.total += 1;
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &LogHistogram) {
        for (i, c) in &other.counts {
            *self.counts.entry(*i).or_default() += c;
        }
        self.total += other.total;
    }

    /// Values added.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The values at each quantile of `qs` (ascending, in 0..=1); empty when nothing was added.
    pub fn quantiles(&self, qs: &[f64]) -> Vec<f64> {
        if self.total == 0 {
            return Vec::new();
        }
        let mut buckets: Vec<(i32, u32)> = self.counts.iter().map(|(i, c)| (*i, *c)).collect();
        buckets.sort_unstable();
        let mut out = Vec::with_capacity(qs.len());
        let (mut next, mut seen) = (0usize, 0u64);
        for q in qs {
            let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
            while seen < rank {
                seen += u64::from(buckets[next].1);
                next += 1;
            }
            let index = buckets[next - 1].0;
            out.push(if index == 0 {
                1.0
            } else {
                GAMMA.powf(f64::from(index) - 0.5)
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_two_percent() {
        let mut h = LogHistogram::default();
        for v in 1..=1000 {
            h.add(f64::from(v) * 1000.0);
        }
        let q = h.quantiles(&[0.5, 0.95, 0.99]);
        for (got, want) in q.iter().zip([500_000.0, 950_000.0, 990_000.0]) {
            assert!((got / want - 1.0).abs() < 0.02, "{got} vs {want}");
        }
        let mut other = LogHistogram::default();
        other.add(5e9);
        h.merge(&other);
        assert_eq!(h.count(), 1001);
        assert!(h.quantiles(&[1.0])[0] > 4.9e9);
    }
}
