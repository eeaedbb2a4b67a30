//! Metric series: every gauge and sum series (cumulative sums turned into per-second rates),
//! and per histogram series its per-second count rate and p95. A series is a metric name plus
//! its data point attributes.

use std::collections::HashMap;

use arrow::array::{
    Array, AsArray, BooleanArray, Float64Array, ListArray, MapArray, StringArray, UInt64Array,
};
use arrow::datatypes::{ArrowPrimitiveType, Float64Type, TimestampNanosecondType, UInt64Type};
use arrow::record_batch::RecordBatch;
use scry_collector::schema::SERVICE_COLUMN;
use serde::{Deserialize, Serialize};

use super::{Direction, Evidence, Kind, Measure, Point, SeriesKey, Signal};

/// The last sample of a cumulative series, to turn the next one into a delta.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct Previous {
    time_ns: i64,
    start_ns: i64,
    value: f64,
    buckets: Vec<u64>,
}

#[derive(Default)]
struct Agg {
    kind: Kind,
    sum: f64,
    n: u64,
}

/// Metric aggregates of one bucket: (service, measure, scope) → mean of the values.
#[derive(Default)]
pub(crate) struct BucketMetrics {
    series: HashMap<(String, String, String), Agg>,
}

struct Columns<'a> {
    service: &'a StringArray,
    name: &'a StringArray,
    kind: &'a StringArray,
    unit: Option<&'a StringArray>,
    temporality: &'a StringArray,
    monotonic: &'a BooleanArray,
    value: &'a Float64Array,
    count: &'a UInt64Array,
    bounds: &'a ListArray,
    buckets: &'a ListArray,
    time: &'a [i64],
    start: &'a arrow::array::TimestampNanosecondArray,
    attributes: Option<&'a MapArray>,
}

impl<'a> Columns<'a> {
    /// Values in a unit of time (UCUM `s`, `ms`, `us`, `ns`) behave like latencies: their noise
    /// is multiplicative, so they are compared on a log scale with the latency noise floor.
    fn gauge_kind(&self, row: usize) -> Kind {
        match self.unit.map(|u| u.value(row)) {
            Some("s" | "ms" | "us" | "ns") => Kind::Latency,
            _ => Kind::Gauge,
        }
    }

    fn of(b: &'a RecordBatch) -> Option<Self> {
        let s = |n: &str| b.column_by_name(n)?.as_string_opt::<i32>();
        Some(Self {
            service: s(SERVICE_COLUMN)?,
            name: s("metric_name")?,
            kind: s("metric_type")?,
            unit: s("metric_unit"),
            temporality: s("temporality")?,
            monotonic: b.column_by_name("is_monotonic")?.as_boolean_opt()?,
            value: b
                .column_by_name("value")?
                .as_primitive_opt::<Float64Type>()?,
            count: b
                .column_by_name("count")?
                .as_primitive_opt::<UInt64Type>()?,
            bounds: b.column_by_name("explicit_bounds")?.as_list_opt()?,
            buckets: b.column_by_name("bucket_counts")?.as_list_opt()?,
            time: b
                .column_by_name("time")?
                .as_primitive_opt::<TimestampNanosecondType>()?
                .values(),
            start: b
                .column_by_name("start_time")?
                .as_primitive_opt::<TimestampNanosecondType>()?,
            attributes: b.column_by_name("attributes")?.as_map_opt(),
        })
    }

    /// `k=v,k=v` of the row's attributes, sorted by key.
    fn scope(&self, row: usize) -> String {
        let Some(map) = self.attributes.filter(|m| m.is_valid(row)) else {
            return String::new();
        };
        let offsets = map.value_offsets();
        let keys = map.keys().as_string::<i32>();
        let values = map.values().as_string::<i32>();
        let mut pairs: Vec<(&str, &str)> = (offsets[row] as usize..offsets[row + 1] as usize)
            .map(|i| {
                (
                    keys.value(i),
                    if values.is_valid(i) {
                        values.value(i)
                    } else {
                        ""
                    },
                )
            })
            .collect();
        pairs.sort_unstable();
        pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The row as a sample of a cumulative series, to compare with the previous one.
    fn sample(&self, row: usize, value: f64, buckets: Vec<u64>) -> Previous {
        Previous {
            time_ns: self.time[row],
            start_ns: if self.start.is_valid(row) {
                self.start.value(row)
            } else {
                0
            },
            value,
            buckets,
        }
    }

    fn cumulative(&self, row: usize) -> bool {
        self.temporality.is_valid(row) && self.temporality.value(row) == "cumulative"
    }

    /// The values of a list cell (empty when null).
    fn list<T: ArrowPrimitiveType>(list: &ListArray, row: usize) -> Vec<T::Native> {
        if list.is_null(row) {
            return Vec::new();
        }
        list.value(row).as_primitive::<T>().values().to_vec()
    }
}

/// Key of a cumulative series' previous sample.
fn series_id(service: &str, name: &str, scope: &str) -> String {
    format!("{service}\u{1}{name}\u{1}{scope}")
}

/// The value at quantile `q` of a histogram with `bounds` and per-bucket `counts`, linearly
/// interpolated inside the bucket; `None` when empty.
fn histogram_quantile(bounds: &[f64], counts: &[u64], q: f64) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 || counts.len() != bounds.len() + 1 {
        return None;
    }
    let rank = q * total as f64;
    let mut seen = 0.0;
    for (i, c) in counts.iter().enumerate() {
        let next = seen + *c as f64;
        if next >= rank && *c > 0 {
            let lo = if i == 0 {
                0.0_f64.min(bounds[0])
            } else {
                bounds[i - 1]
            };
            let Some(hi) = bounds.get(i) else {
                return Some(lo);
            };
            return Some(lo + (hi - lo) * ((rank - seen) / *c as f64));
        }
        seen = next;
    }
    bounds.last().copied()
}

impl BucketMetrics {
    pub(crate) fn observe(
        &mut self,
        batch: &RecordBatch,
        rows: &[usize],
        room: usize,
        previous: &mut HashMap<String, Previous>,
    ) {
        let Some(cols) = Columns::of(batch) else {
            return;
        };
        for &row in rows {
            let name = cols.name.value(row);
            let scope = cols.scope(row);
            let service = cols.service.value(row);
            let values: Vec<(String, Kind, f64)> = match cols.kind.value(row) {
                "gauge" => cols
                    .value
                    .is_valid(row)
                    .then(|| {
                        (
                            name.to_string(),
                            cols.gauge_kind(row),
                            cols.value.value(row),
                        )
                    })
                    .into_iter()
                    .collect(),
                "sum" => Self::sum(&cols, row, name, service, &scope, previous),
                "histogram" => Self::histogram(&cols, row, name, service, &scope, previous),
                _ => Vec::new(),
            };
            for (measure, kind, value) in values {
                if !value.is_finite() {
                    continue;
                }
                let key = (service.to_string(), measure, scope.clone());
                if !self.series.contains_key(&key) && self.series.len() >= room {
                    continue;
                }
                let agg = self.series.entry(key).or_default();
                agg.kind = kind;
                agg.sum += value;
                agg.n += 1;
            }
        }
    }

    /// The delta of a cumulative series since its previous sample, over the seconds between
    /// them; `None` for the first sample (or after a reset, the value since the new start).
    fn delta(
        prev: &mut HashMap<String, Previous>,
        id: String,
        now: Previous,
    ) -> Option<(f64, Vec<u64>, f64)> {
        let out = match prev.get(&id) {
            Some(p)
                if now.time_ns > p.time_ns
                    && now.start_ns == p.start_ns
                    && now.value >= p.value =>
            {
                let buckets = if now.buckets.len() == p.buckets.len() {
                    now.buckets
                        .iter()
                        .zip(&p.buckets)
                        .map(|(a, b)| a.saturating_sub(*b))
                        .collect()
                } else {
                    Vec::new()
                };
                Some((
                    now.value - p.value,
                    buckets,
                    (now.time_ns - p.time_ns) as f64 / 1e9,
                ))
            }
            Some(p)
                if now.time_ns > p.time_ns && now.start_ns > 0 && now.time_ns > now.start_ns =>
            {
                Some((
                    now.value,
                    now.buckets.clone(),
                    (now.time_ns - now.start_ns) as f64 / 1e9,
                ))
            }
            _ => None,
        };
        prev.insert(id, now);
        out
    }

    fn sum(
        cols: &Columns<'_>,
        row: usize,
        name: &str,
        service: &str,
        scope: &str,
        prev: &mut HashMap<String, Previous>,
    ) -> Vec<(String, Kind, f64)> {
        if cols.value.is_null(row) {
            return Vec::new();
        }
        let value = cols.value.value(row);
        let monotonic = cols.monotonic.is_valid(row) && cols.monotonic.value(row);
        if !cols.cumulative(row) {
            return vec![(format!("{name}:sum"), Kind::Gauge, value)];
        }
        if !monotonic {
            return vec![(name.to_string(), Kind::Gauge, value)];
        }
        let now = cols.sample(row, value, Vec::new());
        Self::delta(prev, series_id(service, name, scope), now)
            .filter(|(_, _, secs)| *secs > 0.0)
            .map(|(d, _, secs)| (format!("{name}:rate"), Kind::Gauge, d / secs))
            .into_iter()
            .collect()
    }

    fn histogram(
        cols: &Columns<'_>,
        row: usize,
        name: &str,
        service: &str,
        scope: &str,
        prev: &mut HashMap<String, Previous>,
    ) -> Vec<(String, Kind, f64)> {
        let bounds = Columns::list::<Float64Type>(cols.bounds, row);
        let counts = Columns::list::<UInt64Type>(cols.buckets, row);
        let count = if cols.count.is_valid(row) {
            cols.count.value(row) as f64
        } else {
            0.0
        };
        let (delta_count, delta_buckets) = if cols.cumulative(row) {
            let now = cols.sample(row, count, counts);
            match Self::delta(prev, series_id(service, name, scope), now) {
                Some((d, b, _)) => (d, b),
                None => return Vec::new(),
            }
        } else {
            (count, counts)
        };
        let mut out = vec![(format!("{name}:count"), Kind::Gauge, delta_count)];
        if let Some(p95) = histogram_quantile(&bounds, &delta_buckets, 0.95) {
            out.push((format!("{name}:p95"), cols.gauge_kind(row), p95));
        }
        out
    }

    /// Emits the bucket's points: the mean of each series' values in the bucket.
    pub(crate) fn close(self, start: i64, points: &mut Vec<Point>) {
        for ((service, measure, scope), agg) in self.series {
            points.push(Point {
                key: SeriesKey {
                    service,
                    signal: Signal::Metrics,
                    measure: Measure::Metric(measure),
                    scope,
                },
                kind: agg.kind,
                direction: Direction::Both,
                bucket_ns: start,
                value: agg.sum / agg.n.max(1) as f64,
                weight: 1.0,
                evidence: Evidence::default(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantile_interpolates_within_a_bucket() {
        let bounds = [10.0, 100.0, 1000.0];
        let counts = [0, 90, 10, 0];
        let p95 = histogram_quantile(&bounds, &counts, 0.95).unwrap();
        assert!((p95 - 550.0).abs() < 1e-9, "{p95}");
        assert_eq!(histogram_quantile(&bounds, &[0, 0, 0, 0], 0.5), None);
    }
}
