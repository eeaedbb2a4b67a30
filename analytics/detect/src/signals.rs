//! Series derived continuously from ingested telemetry, for the detectors.
//!
//! Every stored batch is folded on the ingest path (an [`Observer`](scry_collector::Observer)) into
//! fixed time buckets by event time: per service and per (service, operation) request counts,
//! errors and a latency histogram; per service log counts by severity and by template; per
//! metric series a gauge value or rate. A bucket closes `lateness` after its end by the clock
//! passed to [`Aggregator::close`] and becomes [`Point`]s; rows for a closed bucket are counted as
//! late and dropped. Aggregating on ingest costs a hash lookup per row and saves re-scanning the
//! tables every cycle (see docs/analytics.md).

pub mod calls;
pub mod logs;
pub mod measure;
pub mod metrics;
mod recent;
pub mod sketch;
pub mod spans;
pub mod statements;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use arrow::array::{Array, AsArray, MapArray};
use arrow::datatypes::TimestampNanosecondType;
use arrow::record_batch::RecordBatch;
use scry_collector::Table;
use scry_collector::schema::TIME_COLUMN;
use serde::{Deserialize, Serialize};

pub use measure::{DetectorName, Measure};

/// Which telemetry a series comes from.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Signal {
    /// Spans.
    Traces,
    /// Log records.
    Logs,
    /// Metric data points.
    Metrics,
}

impl Signal {
    /// The name used in the `anomalies` table.
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Logs => "logs",
            Signal::Metrics => "metrics",
        }
    }
}

/// How a measure's values behave; sets its transform and noise floor in the detectors.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Kind {
    /// Events per bucket (Poisson-like).
    Count,
    /// A share of `weight` events (binomial-like), e.g. the error rate.
    Ratio,
    /// A duration; compared on a log scale.
    Latency,
    /// Any other value.
    #[default]
    Gauge,
}

/// Which departures from the baseline are anomalies.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Only increases (latency, errors).
    Up,
    /// Increases and decreases (traffic, gauges).
    Both,
}

/// Names one derived series.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesKey {
    /// The service it belongs to.
    pub service: String,
    /// Where it comes from.
    pub signal: Signal,
    /// What is measured, e.g. `latency_p99`, `error_logs`, a metric name.
    pub measure: Measure,
    /// What it is narrowed to (operation, template id, severity, metric attributes); empty for
    /// the whole service.
    pub scope: String,
}

impl SeriesKey {
    /// `measure` or `measure{scope}`.
    pub fn name(&self) -> String {
        if self.scope.is_empty() {
            self.measure.to_string()
        } else {
            format!("{}{{{}}}", self.measure, self.scope)
        }
    }
}

/// What to show next to an anomaly so a person can look further.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// Exemplar traces (slowest, failing).
    pub trace_ids: Vec<String>,
    /// Log templates involved.
    pub template_ids: Vec<String>,
    /// Anything else, e.g. `template`, `sample`, `status_code`.
    pub attributes: Vec<(String, String)>,
}

/// The value of one series in one closed bucket.
#[derive(Debug, Clone)]
pub struct Point {
    /// The series.
    pub key: SeriesKey,
    /// How its values behave.
    pub kind: Kind,
    /// Which departures matter.
    pub direction: Direction,
    /// Start of the bucket, ns since the epoch.
    pub bucket_ns: i64,
    /// The value.
    pub value: f64,
    /// Events behind the value (requests for a ratio or latency); 1 otherwise.
    pub weight: f64,
    /// Exemplars.
    pub evidence: Evidence,
}

/// Something notable by being new rather than by its value (a first log template, a first
/// error status of an operation).
#[derive(Debug, Clone)]
pub struct Novelty {
    /// The series it belongs to.
    pub key: SeriesKey,
    /// When it was first seen, ns since the epoch.
    pub time_ns: i64,
    /// Score in 0..1.
    pub score: f64,
    /// What was new.
    pub evidence: Evidence,
}

/// Settings of the [`Aggregator`].
#[derive(Debug, Clone)]
pub struct SignalConfig {
    /// Width of a bucket.
    pub bucket: Duration,
    /// How long after its end a bucket waits for late rows.
    pub lateness: Duration,
    /// Series tracked at most; rows of further series are counted and ignored.
    pub max_series: usize,
    /// Latency quantiles of a bucket with fewer spans are not reported.
    pub min_latency_count: u64,
    /// A service's first templates and error codes are not novelties until it has been seen
    /// this long.
    pub novelty_warm_up: Duration,
    /// Count series idle for longer than this stop being filled with zeros and are forgotten.
    pub idle_horizon: Duration,
}

impl Default for SignalConfig {
    fn default() -> Self {
        Self {
            bucket: Duration::from_secs(10),
            lateness: Duration::from_secs(5),
            max_series: 50_000,
            min_latency_count: 5,
            novelty_warm_up: Duration::from_secs(300),
            idle_horizon: Duration::from_secs(3600),
        }
    }
}

/// What the aggregator keeps across restarts (the open buckets are not kept: rows already
/// stored are not re-read, so a restart loses at most the buckets that were open).
#[derive(Serialize, Deserialize, Default, Debug)]
pub struct AggregatorState {
    /// Buckets starting before this are closed.
    pub closed_before: i64,
    /// Count series and the last bucket they had rows in (zero-filled until idle).
    pub counted: Vec<(SeriesKey, i64)>,
    /// When each service was first seen.
    pub services: HashMap<String, i64>,
    /// Template ids seen per service.
    pub templates: HashMap<String, HashSet<String>>,
    /// (service, operation, code) error statuses seen.
    pub error_codes: HashSet<(String, String, String)>,
    /// Previous sample of cumulative metric series.
    pub cumulative: Vec<(String, metrics::Previous)>,
}

/// Rows of one bucket, per signal.
#[derive(Default)]
struct Bucket {
    spans: spans::BucketSpans,
    calls: calls::BucketCalls,
    logs: logs::BucketLogs,
    metrics: metrics::BucketMetrics,
    statements: statements::BucketStatements,
}

/// What closing buckets produced.
#[derive(Default)]
pub struct Closed {
    /// Values of the series.
    pub points: Vec<Point>,
    /// Firsts seen since the last close.
    pub novelties: Vec<Novelty>,
    /// Log statement counts per closed bucket, in time order.
    pub statements: Vec<statements::StatementCounts>,
}

/// Novelties kept at most between two cycles.
const MAX_NOVELTIES: usize = 10_000;

/// Folds stored rows into buckets and closes them into points.
pub struct Aggregator {
    config: SignalConfig,
    width: i64,
    open: BTreeMap<i64, Bucket>,
    closed_before: i64,
    counted: HashMap<SeriesKey, i64>,
    services: HashMap<String, i64>,
    templates: HashMap<String, HashSet<String>>,
    error_codes: HashSet<(String, String, String)>,
    cumulative: HashMap<String, metrics::Previous>,
    novelties: Vec<Novelty>,
    statement_index: statements::StatementIndex,
    call_index: calls::CallIndex,
    /// Rows that arrived for a closed bucket, or too far in the future.
    pub late_rows: u64,
}

impl Aggregator {
    /// An empty aggregator.
    pub fn new(config: SignalConfig) -> Self {
        Self::restore(config, AggregatorState::default())
    }

    /// An aggregator continuing from `state`.
    pub fn restore(config: SignalConfig, state: AggregatorState) -> Self {
        let width = i64::try_from(config.bucket.as_nanos())
            .unwrap_or(i64::MAX)
            .max(1);
        Self {
            config,
            width,
            open: BTreeMap::new(),
            closed_before: state.closed_before,
            counted: state.counted.into_iter().collect(),
            services: state.services,
            templates: state.templates,
            error_codes: state.error_codes,
            cumulative: state.cumulative.into_iter().collect(),
            novelties: Vec::new(),
            statement_index: statements::StatementIndex::default(),
            call_index: calls::CallIndex::default(),
            late_rows: 0,
        }
    }

    /// What to persist to continue after a restart.
    pub fn state(&self) -> AggregatorState {
        AggregatorState {
            closed_before: self.closed_before,
            counted: self.counted.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            services: self.services.clone(),
            templates: self.templates.clone(),
            error_codes: self.error_codes.clone(),
            cumulative: self
                .cumulative
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    /// Folds a stored batch of `table` into its buckets. `now_ns` bounds how far in the future
    /// a row may be.
    pub fn observe(&mut self, table: Table, batch: &RecordBatch, now_ns: i64) {
        let Some(times) = batch
            .column_by_name(TIME_COLUMN)
            .and_then(|c| c.as_primitive_opt::<TimestampNanosecondType>())
        else {
            return;
        };
        let horizon = now_ns.saturating_add(600_000_000_000);
        let mut rows: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
        for (row, t) in times.values().iter().enumerate() {
            let start = t.div_euclid(self.width) * self.width;
            if start < self.closed_before || *t > horizon {
                self.late_rows += 1;
            } else {
                rows.entry(start).or_default().push(row);
            }
        }
        for (start, rows) in rows {
            self.observe_bucket(table, batch, start, &rows);
        }
    }

    fn observe_bucket(&mut self, table: Table, batch: &RecordBatch, start: i64, rows: &[usize]) {
        let room = self.config.max_series.saturating_sub(self.counted.len());
        let bucket = self.open.entry(start).or_default();
        let mut ctx = NoveltyContext {
            services: &mut self.services,
            templates: &mut self.templates,
            error_codes: &mut self.error_codes,
            novelties: &mut self.novelties,
            warm_up_ns: i64::try_from(self.config.novelty_warm_up.as_nanos()).unwrap_or(i64::MAX),
        };
        let index = &mut self.statement_index;
        let times = batch
            .column_by_name(TIME_COLUMN)
            .and_then(|c| c.as_primitive_opt::<TimestampNanosecondType>())
            .map(|t| t.values());
        match table {
            Table::Spans => {
                bucket.spans.observe(batch, rows, room, &mut ctx);
                if let Some(times) = times {
                    bucket.statements.observe_spans(batch, rows, index, times);
                    let calls = &mut self.call_index;
                    bucket.calls.observe(batch, rows, calls, times);
                }
            }
            Table::Logs => {
                bucket.logs.observe(batch, rows, room, &mut ctx);
                if let Some(times) = times {
                    bucket.statements.observe_logs(batch, rows, index, times);
                }
            }
            Table::Metrics => bucket
                .metrics
                .observe(batch, rows, room, &mut self.cumulative),
            Table::Anomalies => {}
        }
    }

    /// Closes every bucket that ends `lateness` before `now_ns` and returns its points and
    /// statement counts, plus the novelties seen since the last call.
    pub fn close(&mut self, now_ns: i64) -> Closed {
        let lateness = i64::try_from(self.config.lateness.as_nanos()).unwrap_or(i64::MAX);
        let idle = i64::try_from(self.config.idle_horizon.as_nanos()).unwrap_or(i64::MAX);
        let last = (now_ns - lateness).div_euclid(self.width) * self.width - self.width;
        let mut closed = Closed::default();
        let first_open = self.open.keys().next().copied();
        let mut start = match first_open {
            _ if self.closed_before > 0 => self.closed_before.max(last - idle),
            Some(first) => first,
            None => {
                closed.novelties = std::mem::take(&mut self.novelties);
                return closed;
            }
        };
        // Buckets skipped after a long pause are dropped rather than scored out of order.
        self.open.retain(|k, _| *k >= start);
        while start <= last {
            let mut bucket = self.open.remove(&start).unwrap_or_default();
            let statements = std::mem::take(&mut bucket.statements);
            closed
                .statements
                .push(statements.close(start, &mut self.statement_index));
            self.close_bucket(start, bucket, idle, &mut closed.points);
            start += self.width;
            self.closed_before = start;
        }
        closed.novelties = std::mem::take(&mut self.novelties);
        closed
    }

    fn close_bucket(&mut self, start: i64, bucket: Bucket, idle: i64, points: &mut Vec<Point>) {
        let min_latency = self.config.min_latency_count;
        // A bucket without a single span or log line is a gap in the telemetry (a collector or
        // network outage, a replay gap), not zero traffic everywhere: nothing is zero-filled.
        let silent = bucket.spans.is_empty() && bucket.logs.is_empty();
        let before = points.len();
        bucket.spans.close(start, min_latency, points);
        let calls = &mut self.call_index;
        bucket.calls.close(start, calls, points);
        bucket.logs.close(start, points);
        bucket.metrics.close(start, points);
        let mut present = HashSet::new();
        for p in &points[before..] {
            if p.kind == Kind::Count {
                self.counted.insert(p.key.clone(), start);
                present.insert(p.key.clone());
            }
        }
        self.counted.retain(|_, last| start - *last <= idle);
        if silent {
            return;
        }
        for (key, _) in self.counted.iter().filter(|(k, _)| !present.contains(*k)) {
            points.push(Point {
                key: key.clone(),
                kind: Kind::Count,
                // The series already has a model, which keeps the direction of its first point.
                direction: Direction::Both,
                bucket_ns: start,
                value: 0.0,
                weight: 1.0,
                evidence: Evidence::default(),
            });
        }
    }
}

/// What the per-signal folds need to report novelties.
pub(crate) struct NoveltyContext<'a> {
    services: &'a mut HashMap<String, i64>,
    templates: &'a mut HashMap<String, HashSet<String>>,
    error_codes: &'a mut HashSet<(String, String, String)>,
    novelties: &'a mut Vec<Novelty>,
    warm_up_ns: i64,
}

impl NoveltyContext<'_> {
    /// Whether `service` has been seen for long enough at `time_ns` for firsts to count; records
    /// the service on first sight.
    fn settled(&mut self, service: &str, time_ns: i64) -> bool {
        let first = match self.services.get(service) {
            Some(t) => *t,
            None => {
                self.services.insert(service.to_string(), time_ns);
                time_ns
            }
        };
        time_ns - first >= self.warm_up_ns
    }

    /// Records a template of `service`; true when it is new.
    fn first_template(&mut self, service: &str, template_id: &str) -> bool {
        match self.templates.get_mut(service) {
            Some(set) if set.contains(template_id) => false,
            Some(set) => set.insert(template_id.to_string()),
            None => {
                self.templates.insert(
                    service.to_string(),
                    HashSet::from([template_id.to_string()]),
                );
                true
            }
        }
    }

    /// Records an error code of an operation; true when it is new.
    fn first_error_code(&mut self, service: &str, operation: &str, code: &str) -> bool {
        let key = (service.to_string(), operation.to_string(), code.to_string());
        self.error_codes.insert(key)
    }

    fn report(&mut self, novelty: Novelty) {
        if self.novelties.len() < MAX_NOVELTIES {
            self.novelties.push(novelty);
        }
    }
}

/// The value of `key` in row `row` of a `Map<Utf8, Utf8>` column.
pub(crate) fn map_value<'a>(map: &'a MapArray, row: usize, key: &str) -> Option<&'a str> {
    if map.is_null(row) {
        return None;
    }
    let offsets = map.value_offsets();
    let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
    let keys = map.keys().as_string::<i32>();
    let values = map.values().as_string::<i32>();
    (start..end)
        .find(|i| keys.value(*i) == key)
        .filter(|i| values.is_valid(*i))
        .map(|i| values.value(i))
}
