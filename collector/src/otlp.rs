//! OTLP → Arrow conversion: one module per signal, each turning an export request into one
//! [`RecordBatch`] of its table and counting rejected items.

pub mod attributes;
pub mod logs;
pub mod metrics;
mod origin;
pub mod traces;

use arrow::record_batch::RecordBatch;

/// The result of converting one export request.
#[derive(Debug, Default)]
pub struct Converted {
    /// The accepted items as rows; `None` when nothing was accepted.
    pub batch: Option<RecordBatch>,
    /// How many items were rejected.
    pub rejected: i64,
    /// Why the first rejected items were rejected (empty when none were).
    pub error_message: String,
}

impl Converted {
    /// Number of accepted rows.
    pub fn accepted(&self) -> usize {
        self.batch.as_ref().map_or(0, |b| b.num_rows())
    }
}

/// Collects rejection reasons, keeping the message short however many items are rejected.
#[derive(Debug, Default)]
pub(crate) struct Rejections {
    count: i64,
    message: String,
}

impl Rejections {
    const MAX_REASONS: i64 = 3;

    pub(crate) fn reject(&mut self, reason: impl FnOnce() -> String) {
        self.count += 1;
        if self.count <= Self::MAX_REASONS {
            if !self.message.is_empty() {
                self.message.push_str("; ");
            }
            self.message.push_str(&reason());
        }
    }

    pub(crate) fn finish(self, batch: Option<RecordBatch>) -> Converted {
        let mut message = self.message;
        if self.count > Self::MAX_REASONS {
            message.push_str(&format!(" (and {} more)", self.count - Self::MAX_REASONS));
        }
        Converted {
            batch,
            rejected: self.count,
            error_message: message,
        }
    }
}

/// Converts OTLP's unsigned nanoseconds into Arrow's signed ones, saturating far in the future.
pub(crate) fn nanos(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

/// Lowercase hex of an id, written into `buf` to avoid an allocation per id.
pub(crate) fn hex_id<'a>(id: &[u8], buf: &'a mut [u8; 32]) -> &'a str {
    let out = &mut buf[..id.len().min(16) * 2];
    hex::encode_to_slice(&id[..out.len() / 2], out).expect("buffer sized to id");
    std::str::from_utf8(out).expect("hex is ascii")
}

/// Why an id is unacceptable, or `None` when it is fine. `allow_empty` is for optional ids.
pub(crate) fn check_id(id: &[u8], len: usize, allow_empty: bool) -> Option<String> {
    if id.is_empty() {
        return (!allow_empty).then(|| "is empty".to_string());
    }
    if id.len() != len {
        return Some(format!("has {} bytes, expected {len}", id.len()));
    }
    if id.iter().all(|b| *b == 0) {
        return Some("is all zeroes".to_string());
    }
    None
}

/// Milliseconds since the Unix epoch now, in nanoseconds.
pub(crate) fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked_and_hexed() {
        assert!(check_id(&[1; 16], 16, false).is_none());
        assert!(check_id(&[0; 16], 16, false).is_some());
        assert!(check_id(&[1; 15], 16, false).is_some());
        assert!(check_id(&[], 8, true).is_none());
        assert!(check_id(&[], 8, false).is_some());
        let mut buf = [0u8; 32];
        assert_eq!(hex_id(&[0xab, 0x01], &mut buf), "ab01");
    }
}
