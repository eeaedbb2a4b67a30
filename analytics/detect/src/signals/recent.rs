//! A short-lived index of recent span ids, shared by the folds that join a row to its span (log
//! lines to the operation that logged them, a span to its parent in another service).

use std::collections::HashMap;

/// Span ids remembered per generation; the index keeps two generations.
const MAX_SPANS: usize = 500_000;
/// A generation of the index lasts this long (event time).
pub(crate) const GENERATION_NS: i64 = 30_000_000_000;

/// Values per recent span id, in two generations: an entry lives for one to two generations
/// (event time) after it was written, and a generation holds at most `MAX_SPANS` entries.
#[derive(Default)]
pub(crate) struct RecentSpans<V> {
    current: HashMap<u64, V>,
    previous: HashMap<u64, V>,
    generation_start: i64,
}

impl<V: Copy> RecentSpans<V> {
    pub(crate) fn get(&self, span: u64) -> Option<V> {
        self.current
            .get(&span)
            .or_else(|| self.previous.get(&span))
            .copied()
    }

    /// Sets the value of `span` and returns the one it had.
    pub(crate) fn insert(&mut self, span: u64, value: V, time: i64) -> Option<V> {
        if time - self.generation_start > GENERATION_NS || self.current.len() >= MAX_SPANS {
            self.previous = std::mem::take(&mut self.current);
            self.generation_start = time;
        }
        self.current
            .insert(span, value)
            .or_else(|| self.previous.get(&span).copied())
    }
}

/// A span id (16 hex digits) as a number; other forms are hashed.
pub(crate) fn span_key(id: &str) -> u64 {
    u64::from_str_radix(id, 16).unwrap_or_else(|_| {
        use std::hash::{BuildHasher, RandomState};
        thread_local!(static STATE: RandomState = RandomState::new());
        STATE.with(|s| s.hash_one(id))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_ids_parse_as_hex_and_fall_back_to_a_hash() {
        assert_eq!(span_key("00000000000000ff"), 255);
        assert_eq!(span_key("zz"), span_key("zz"));
    }

    #[test]
    fn a_value_written_in_the_previous_generation_is_returned_when_replaced() {
        let mut recent = RecentSpans::default();
        assert_eq!(recent.insert(7, 1_u32, 0), None);
        assert_eq!(recent.insert(7, 2, GENERATION_NS + 1), Some(1));
        assert_eq!(recent.get(7), Some(2));
    }
}
