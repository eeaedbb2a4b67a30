//! The time a call spends outside its callee's own span, per callee: for a span whose parent is
//! in another service, `parent duration − child duration`.
//!
//! That gap is the network both ways, the callee's accept queue and its response on the wire: a
//! delay on a pod's network (tc/netem) shows here while the pod's own server spans look normal,
//! and its callers' latency rises only as a consequence. Counting the gap under the callee is
//! what points the ranking at the pod rather than at the callers that wait on it (see
//! docs/rca.md). A parent that ended before its child (a message handed off) has no gap.
//!
//! Spans are matched to their parent when the child's bucket closes, so the parent may arrive up
//! to the bucket's lateness after the child (spans are exported when they end, parents last).

use std::collections::HashMap;

use arrow::array::{Array, AsArray};
use arrow::record_batch::RecordBatch;
use scry_collector::schema::SERVICE_COLUMN;

use super::recent::{RecentSpans, span_key};
use super::sketch::LogHistogram;
use super::{Direction, Evidence, Kind, Measure, Point, SeriesKey, Signal};

/// Services named at most; spans of further ones are not matched.
const MAX_SERVICES: usize = 100_000;

/// Recent spans with their service and duration, shared by all buckets.
#[derive(Default)]
pub(crate) struct CallIndex {
    spans: RecentSpans<(u32, i64)>,
    ids: HashMap<String, u32>,
    names: Vec<String>,
    /// Spans whose parent had not arrived when their bucket closed, since start.
    pub unmatched: u64,
}

impl CallIndex {
    fn service(&mut self, name: &str) -> Option<u32> {
        if let Some(id) = self.ids.get(name) {
            return Some(*id);
        }
        if self.names.len() >= MAX_SERVICES {
            return None;
        }
        let id = self.names.len() as u32;
        self.ids.insert(name.to_string(), id);
        self.names.push(name.to_string());
        Some(id)
    }
}

/// A span of the bucket that has a parent: its parent's key, service and duration.
struct Child {
    parent: u64,
    service: u32,
    duration: i64,
    trace: String,
}

/// Spans of one open bucket that have a parent.
#[derive(Default)]
pub(crate) struct BucketCalls {
    children: Vec<Child>,
}

/// Gaps of one callee in one bucket, and the trace of the largest.
#[derive(Default)]
struct Gaps {
    histogram: LogHistogram,
    widest: Option<(i64, String)>,
}

impl BucketCalls {
    pub(crate) fn observe(
        &mut self,
        batch: &RecordBatch,
        rows: &[usize],
        index: &mut CallIndex,
        time: &[i64],
    ) {
        let s = |n: &str| batch.column_by_name(n)?.as_string_opt::<i32>();
        let (Some(service), Some(span), Some(parent), Some(trace), Some(duration)) = (
            s(SERVICE_COLUMN),
            s("span_id"),
            s("parent_span_id"),
            s("trace_id"),
            batch
                .column_by_name("duration_ns")
                .and_then(|c| c.as_primitive_opt::<arrow::datatypes::Int64Type>()),
        ) else {
            return;
        };
        for &row in rows {
            let Some(id) = index.service(service.value(row)) else {
                continue;
            };
            let d = duration.value(row);
            index
                .spans
                .insert(span_key(span.value(row)), (id, d), time[row]);
            if parent.is_null(row) || parent.value(row).is_empty() {
                continue;
            }
            self.children.push(Child {
                parent: span_key(parent.value(row)),
                service: id,
                duration: d,
                trace: trace.value(row).to_string(),
            });
        }
    }

    /// Emits per callee the median and 95th percentile of the gaps of calls into it, in ms.
    /// Unlike span latency, the median is reported from a single call: a rarely called pod
    /// whose every call now waits seconds must show.
    pub(crate) fn close(self, start: i64, index: &mut CallIndex, points: &mut Vec<Point>) {
        let mut callees: HashMap<u32, Gaps> = HashMap::new();
        for child in self.children {
            let Some((caller, parent_duration)) = index.spans.get(child.parent) else {
                index.unmatched += 1;
                continue;
            };
            let gap = parent_duration - child.duration;
            if caller == child.service || gap < 0 {
                continue;
            }
            let g = callees.entry(child.service).or_default();
            g.histogram.add(gap as f64);
            if g.widest.as_ref().is_none_or(|(w, _)| gap > *w) {
                g.widest = Some((gap, child.trace));
            }
        }
        // In name order: the peer baseline learns from these points in the order they come,
        // so a hash map's order would make two runs differ.
        let mut callees: Vec<(&str, Gaps)> = callees
            .into_iter()
            .map(|(id, g)| (index.names[id as usize].as_str(), g))
            .collect();
        callees.sort_by(|a, b| a.0.cmp(b.0));
        for (callee, gaps) in &callees {
            emit(callee, gaps, start, points);
        }
    }
}

fn emit(service: &str, gaps: &Gaps, start: i64, points: &mut Vec<Point>) {
    let calls = gaps.histogram.count();
    let qs: Vec<f64> = Measure::CALL_GAP.iter().map(|(_, q)| *q).collect();
    let quantiles = gaps.histogram.quantiles(&qs);
    for ((measure, q), ns) in Measure::CALL_GAP.into_iter().zip(quantiles) {
        // As for span latency: a tail quantile needs a call beyond it.
        if calls as f64 * (1.0 - q) < 1.0 - 1e-9 {
            continue;
        }
        points.push(Point {
            key: SeriesKey {
                service: service.to_string(),
                signal: Signal::Traces,
                measure,
                scope: String::new(),
            },
            kind: Kind::Latency,
            direction: Direction::Up,
            bucket_ns: start,
            value: ns / 1e6,
            weight: calls as f64,
            evidence: Evidence {
                trace_ids: gaps.widest.iter().map(|(_, t)| t.clone()).collect(),
                ..Evidence::default()
            },
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn batch(rows: &[(&str, &str, Option<&str>, i64)]) -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new(SERVICE_COLUMN, DataType::Utf8, false),
            Field::new("span_id", DataType::Utf8, false),
            Field::new("parent_span_id", DataType::Utf8, true),
            Field::new("trace_id", DataType::Utf8, false),
            Field::new("duration_ns", DataType::Int64, false),
        ]);
        let strings = |v: Vec<Option<&str>>| Arc::new(StringArray::from(v)) as _;
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                strings(rows.iter().map(|r| Some(r.0)).collect()),
                strings(rows.iter().map(|r| Some(r.1)).collect()),
                strings(rows.iter().map(|r| r.2).collect()),
                strings(rows.iter().map(|_| Some("t1")).collect()),
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.3))),
            ],
        )
        .unwrap()
    }

    #[test]
    fn the_gap_of_a_call_into_another_service_counts_for_the_callee() {
        let mut index = CallIndex::default();
        let mut bucket = BucketCalls::default();
        // Children first, as exporters send them; the parent comes later in the bucket.
        let mut rows = Vec::new();
        for i in 0..5 {
            rows.push((
                "db",
                format!("{:016x}", 100 + i),
                Some("0000000000000001"),
                10_000_000,
            ));
        }
        let rows: Vec<(&str, &str, Option<&str>, i64)> = rows
            .iter()
            .map(|(s, id, p, d)| (*s, id.as_str(), *p, *d))
            .collect();
        let mut all = rows.clone();
        // A same-service child has no gap; a child that outlived its parent neither.
        all.push((
            "api",
            "00000000000000aa",
            Some("0000000000000001"),
            1_000_000,
        ));
        all.push((
            "queue",
            "00000000000000bb",
            Some("0000000000000001"),
            900_000_000,
        ));
        all.push(("api", "0000000000000001", None, 510_000_000));
        let b = batch(&all);
        let rows: Vec<usize> = (0..b.num_rows()).collect();
        bucket.observe(&b, &rows, &mut index, &vec![0; b.num_rows()]);
        let mut points = Vec::new();
        bucket.close(0, &mut index, &mut points);
        assert_eq!(points.len(), 1, "p95 needs 20 calls: {points:?}");
        assert_eq!(points[0].key.service, "db");
        assert_eq!(points[0].key.measure, Measure::CallGapP50);
        assert!(
            (points[0].value - 500.0).abs() < 10.0,
            "{}",
            points[0].value
        );
        assert_eq!(index.unmatched, 0);
    }

    #[test]
    fn a_child_whose_parent_never_came_is_counted_unmatched() {
        let mut index = CallIndex::default();
        let mut bucket = BucketCalls::default();
        let b = batch(&[("db", "0000000000000002", Some("0000000000000009"), 5)]);
        bucket.observe(&b, &[0], &mut index, &[0]);
        let mut points = Vec::new();
        bucket.close(0, &mut index, &mut points);
        assert!(points.is_empty());
        assert_eq!(index.unmatched, 1);
    }
}
