//! The clock every time-dependent part of scry reads: bucketing, ageing, recency, resolution and
//! retention. The daemon runs on [`WallClock`]; replays and evals run on a [`ManualClock`] that
//! their driver advances, so they exercise exactly the code the daemon runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// A source of "now" as UTC nanoseconds since the Unix epoch.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current time, UTC ns.
    fn now_ns(&self) -> i64;

    /// Whether time moves by itself (the wall) or only when a driver sets it.
    fn is_manual(&self) -> bool {
        false
    }
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct WallClock;

impl Clock for WallClock {
    fn now_ns(&self) -> i64 {
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
    }
}

/// A clock that stands still until [`set`](ManualClock::set): simulated or replayed time.
#[derive(Debug, Default)]
pub struct ManualClock {
    now: AtomicI64,
}

impl ManualClock {
    /// A clock reading `start_ns`.
    pub fn new(start_ns: i64) -> Self {
        Self {
            now: AtomicI64::new(start_ns),
        }
    }

    /// Moves the clock to `now_ns` (it may also go back, which callers should avoid).
    pub fn set(&self, now_ns: i64) {
        self.now.store(now_ns, Ordering::Release);
    }
}

impl Clock for ManualClock {
    fn now_ns(&self) -> i64 {
        self.now.load(Ordering::Acquire)
    }

    fn is_manual(&self) -> bool {
        true
    }
}

/// A shared clock.
pub type SharedClock = Arc<dyn Clock>;

/// The wall clock, shared.
pub fn wall() -> SharedClock {
    Arc::new(WallClock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_set() {
        let c = ManualClock::new(5);
        assert_eq!(c.now_ns(), 5);
        c.set(42);
        assert_eq!(c.now_ns(), 42);
        assert!(c.is_manual());
        assert!(!WallClock.is_manual());
        assert!(WallClock.now_ns() > 1_600_000_000_000_000_000);
    }
}
