//! RED series from spans: per service and per (service, operation), requests, error rate and
//! latency p50/p95/p99 of each bucket; a first error status of an operation is a novelty.

use std::collections::HashMap;

use arrow::array::{AsArray, Int64Array, MapArray, StringArray};
use arrow::record_batch::RecordBatch;
use scry_collector::schema::SERVICE_COLUMN;

use super::sketch::LogHistogram;
use super::{
    Direction, Evidence, Kind, Measure, NoveltyContext, Point, SeriesKey, Signal, map_value,
};

/// Failing traces kept per operation and bucket as exemplars.
const ERROR_EXEMPLARS: usize = 3;
/// Score of a first error status of an operation.
const NEW_ERROR_CODE_SCORE: f64 = 0.7;

#[derive(Default)]
struct OperationAgg {
    requests: u64,
    errors: u64,
    latency: LogHistogram,
    slowest: Option<(i64, String)>,
    failing: Vec<String>,
}

impl OperationAgg {
    fn merge(&mut self, other: &OperationAgg) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.latency.merge(&other.latency);
        if let Some((d, t)) = &other.slowest
            && self.slowest.as_ref().is_none_or(|(mine, _)| d > mine)
        {
            self.slowest = Some((*d, t.clone()));
        }
        for t in &other.failing {
            if self.failing.len() < ERROR_EXEMPLARS {
                self.failing.push(t.clone());
            }
        }
    }
}

/// Span aggregates of one bucket: service → operation → aggregate.
#[derive(Default)]
pub(crate) struct BucketSpans {
    services: HashMap<String, HashMap<String, OperationAgg>>,
    operations: usize,
}

struct Columns<'a> {
    service: &'a StringArray,
    name: &'a StringArray,
    status: &'a StringArray,
    duration: &'a Int64Array,
    trace_id: &'a StringArray,
    time: &'a [i64],
    attributes: Option<&'a MapArray>,
}

impl<'a> Columns<'a> {
    fn of(batch: &'a RecordBatch) -> Option<Self> {
        let s = |n: &str| batch.column_by_name(n)?.as_string_opt::<i32>();
        Some(Self {
            service: s(SERVICE_COLUMN)?,
            name: s("name")?,
            status: s("status_code")?,
            duration: batch.column_by_name("duration_ns")?.as_primitive_opt()?,
            trace_id: s("trace_id")?,
            time: batch
                .column_by_name("time")?
                .as_primitive_opt::<arrow::datatypes::TimestampNanosecondType>()?
                .values(),
            attributes: batch.column_by_name("attributes")?.as_map_opt(),
        })
    }

    /// The error code of a failed span (`http 503`, `grpc 14`, `status ERROR`), or `None` when it
    /// did not fail. A span fails when its status is ERROR or it carries an HTTP 5xx status.
    fn error_code(&self, row: usize) -> Option<String> {
        let attr = |k| self.attributes.and_then(|m| map_value(m, row, k));
        let http = attr("http.response.status_code")
            .or_else(|| attr("http.status_code"))
            .and_then(|v| v.parse::<u16>().ok());
        if let Some(code) = http.filter(|c| *c >= 500) {
            return Some(format!("http {code}"));
        }
        if self.status.value(row) != "ERROR" {
            return None;
        }
        if let Some(code) = http.filter(|c| *c >= 400) {
            return Some(format!("http {code}"));
        }
        match attr("rpc.grpc.status_code").filter(|c| *c != "0") {
            Some(code) => Some(format!("grpc {code}")),
            None => Some("status ERROR".to_string()),
        }
    }
}

impl BucketSpans {
    /// Whether no span fell in the bucket.
    pub(crate) fn is_empty(&self) -> bool {
        self.services.is_empty()
    }

    pub(crate) fn observe(
        &mut self,
        batch: &RecordBatch,
        rows: &[usize],
        room: usize,
        novelty: &mut NoveltyContext<'_>,
    ) {
        let Some(cols) = Columns::of(batch) else {
            return;
        };
        for &row in rows {
            let service = cols.service.value(row);
            let operation = cols.name.value(row);
            let time = cols.time[row];
            if !self.services.contains_key(service) {
                // Recorded once per service and bucket, not per span.
                novelty.settled(service, time);
                self.services.insert(service.to_string(), HashMap::new());
            }
            let Some(agg) = self.operation(service, operation, room) else {
                continue;
            };
            let duration = cols.duration.value(row);
            agg.requests += 1;
            agg.latency.add(duration as f64);
            if agg.slowest.as_ref().is_none_or(|(d, _)| duration > *d) {
                agg.slowest = Some((duration, cols.trace_id.value(row).to_string()));
            }
            let Some(code) = cols.error_code(row) else {
                continue;
            };
            agg.errors += 1;
            let trace = cols.trace_id.value(row);
            if agg.failing.len() < ERROR_EXEMPLARS {
                agg.failing.push(trace.to_string());
            }
            if novelty.first_error_code(service, operation, &code) && novelty.settled(service, time)
            {
                novelty.report(new_error_code(service, operation, &code, trace, time));
            }
        }
    }

    fn operation(
        &mut self,
        service: &str,
        operation: &str,
        room: usize,
    ) -> Option<&mut OperationAgg> {
        let ops = self.services.get_mut(service).expect("added by the caller");
        if !ops.contains_key(operation) {
            if self.operations * 5 >= room {
                return None;
            }
            self.operations += 1;
            ops.insert(operation.to_string(), OperationAgg::default());
        }
        ops.get_mut(operation)
    }

    /// Emits the bucket's points: per operation, and per service over all its operations.
    pub(crate) fn close(self, start: i64, min_latency: u64, points: &mut Vec<Point>) {
        for (service, ops) in self.services {
            let mut total = OperationAgg::default();
            for (operation, agg) in &ops {
                total.merge(agg);
                emit(&service, operation, agg, start, min_latency, points);
            }
            emit(&service, "", &total, start, min_latency, points);
        }
    }
}

fn new_error_code(
    service: &str,
    operation: &str,
    code: &str,
    trace: &str,
    time: i64,
) -> super::Novelty {
    super::Novelty {
        key: SeriesKey {
            service: service.to_string(),
            signal: Signal::Traces,
            measure: Measure::NewErrorCode,
            scope: operation.to_string(),
        },
        time_ns: time,
        score: NEW_ERROR_CODE_SCORE,
        evidence: Evidence {
            trace_ids: vec![trace.to_string()],
            template_ids: Vec::new(),
            attributes: vec![("status_code".to_string(), code.to_string())],
        },
    }
}

fn emit(
    service: &str,
    operation: &str,
    agg: &OperationAgg,
    start: i64,
    min_latency: u64,
    points: &mut Vec<Point>,
) {
    let point = |measure: Measure, kind, direction, value, weight, trace_ids: Vec<String>| Point {
        key: SeriesKey {
            service: service.to_string(),
            signal: Signal::Traces,
            measure,
            scope: operation.to_string(),
        },
        kind,
        direction,
        bucket_ns: start,
        value,
        weight,
        evidence: Evidence {
            trace_ids,
            ..Evidence::default()
        },
    };
    let requests = agg.requests as f64;
    points.push(point(
        Measure::Requests,
        Kind::Count,
        Direction::Both,
        requests,
        1.0,
        Vec::new(),
    ));
    points.push(point(
        Measure::ErrorRate,
        Kind::Ratio,
        Direction::Up,
        agg.errors as f64 / requests.max(1.0),
        requests,
        agg.failing.clone(),
    ));
    if agg.requests < min_latency {
        return;
    }
    let slowest: Vec<String> = agg.slowest.iter().map(|(_, t)| t.clone()).collect();
    let qs: Vec<f64> = Measure::LATENCY.iter().map(|(_, q)| *q).collect();
    for ((measure, q), ns) in Measure::LATENCY.into_iter().zip(agg.latency.quantiles(&qs)) {
        // A tail quantile of a handful of spans is just their maximum: a quantile is reported
        // only when at least one span lies beyond it (p95 needs 20 spans, p99 100).
        if requests * (1.0 - q) < 1.0 - 1e-9 {
            continue;
        }
        points.push(point(
            measure,
            Kind::Latency,
            Direction::Up,
            ns / 1e6,
            requests,
            slowest.clone(),
        ));
    }
}
