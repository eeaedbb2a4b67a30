//! The detection engine: aggregation on ingest, scoring on each cycle, state saved across
//! restarts.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use arrow::record_batch::RecordBatch;
use parking_lot::Mutex;
use scry_collector::{Observer, SharedClock, Table};
use serde::{Deserialize, Serialize};

use super::model::{ModelConfig, Peers, SeriesModel};
use super::rows::Anomaly;
use crate::models::{Pca, StatementConfig, StatementFinding, StatementModel, calibrate};
use crate::signals::{
    Aggregator, AggregatorState, DetectorName, Evidence, Measure, Novelty, Point, SeriesKey,
    Signal, SignalConfig,
};

/// Settings of continuous detection.
#[derive(Debug, Clone)]
pub struct DetectionConfig {
    /// Buckets and series.
    pub signals: SignalConfig,
    /// Per-series models.
    pub model: ModelConfig,
    /// Log statements per span.
    pub statements: StatementConfig,
    /// How often a cycle runs.
    pub interval: Duration,
    /// Findings below this score are not written.
    pub min_score: f64,
    /// How often model state is saved.
    pub save_every: Duration,
    /// Models of series without points for this long are forgotten (longer than the zero-fill
    /// horizon, so a service that was away for hours does not start cold).
    pub model_horizon: Duration,
}

impl Default for DetectionConfig {
    fn default() -> Self {
        Self {
            signals: SignalConfig::default(),
            model: ModelConfig::default(),
            statements: StatementConfig::default(),
            interval: Duration::from_secs(5),
            min_score: 0.5,
            save_every: Duration::from_secs(60),
            model_horizon: Duration::from_secs(86_400),
        }
    }
}

/// What one cycle did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CycleReport {
    /// Points scored.
    pub points: usize,
    /// Anomalies found.
    pub anomalies: usize,
    /// Series with a model.
    pub series: usize,
    /// Rows that came too late for their bucket, since start.
    pub late_rows: u64,
    /// Time spent scoring, in seconds.
    pub seconds: f64,
}

/// Features of a service's multivariate vector, all from its service-level span series.
const RED_FEATURES: [Measure; 5] = [
    Measure::Requests,
    Measure::ErrorRate,
    Measure::LatencyP50,
    Measure::LatencyP95,
    Measure::LatencyP99,
];

/// The service-level RED vector on a comparable scale (log of counts and latencies).
fn red_feature(measure: &Measure, value: f64) -> f64 {
    if *measure == Measure::ErrorRate {
        value
    } else {
        value.max(0.0).ln_1p()
    }
}

#[derive(Default, Serialize, Deserialize)]
struct Models {
    series: HashMap<SeriesKey, SeriesModel>,
    peers: Peers,
    services: HashMap<String, (i64, Pca)>,
    statements: StatementModel,
}

/// The file format of saved state.
#[derive(Serialize, Deserialize)]
struct Saved {
    version: u32,
    aggregator: AggregatorState,
    series: Vec<(SeriesKey, SeriesModel)>,
    services: Vec<(String, (i64, Pca))>,
    #[serde(default)]
    statements: StatementModel,
    #[serde(default)]
    peers: Peers,
}

const SAVED_VERSION: u32 = 1;

/// Continuous detection: see the module docs.
pub struct Engine {
    config: DetectionConfig,
    aggregator: Mutex<Aggregator>,
    models: Mutex<Models>,
    width_ns: i64,
    clock: SharedClock,
}

impl Engine {
    /// An engine with no history.
    pub fn new(config: DetectionConfig) -> Self {
        Self::with_state(config, AggregatorState::default(), Models::default())
    }

    fn with_state(config: DetectionConfig, state: AggregatorState, models: Models) -> Self {
        let width_ns = i64::try_from(config.signals.bucket.as_nanos()).unwrap_or(i64::MAX);
        Self {
            aggregator: Mutex::new(Aggregator::restore(config.signals.clone(), state)),
            models: Mutex::new(models),
            width_ns,
            config,
            clock: scry_collector::clock::wall(),
        }
    }

    /// The same engine reading `clock` when it observes ingested batches (the detection loop's
    /// clock: the wall in the daemon, simulated time in a replay).
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// The settings it runs with.
    pub fn config(&self) -> &DetectionConfig {
        &self.config
    }

    /// An engine continuing from the state saved at `path`; a missing file starts fresh, and
    /// an unreadable one is moved aside (`.corrupt`) with a warning rather than stopping the
    /// daemon.
    pub fn open(config: DetectionConfig, path: &Path) -> Self {
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Self::new(config),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read detector state; starting fresh");
                return Self::new(config);
            }
        };
        match serde_json::from_slice::<Saved>(&text) {
            Ok(s) if s.version == SAVED_VERSION => {
                let models = Models {
                    series: s.series.into_iter().collect(),
                    services: s.services.into_iter().collect(),
                    statements: s.statements,
                    peers: s.peers,
                };
                tracing::info!(series = models.series.len(), "restored detector state");
                Self::with_state(config, s.aggregator, models)
            }
            other => {
                let aside = path.with_extension("corrupt");
                let why = other
                    .err()
                    .map_or("unknown version".to_string(), |e| e.to_string());
                tracing::warn!(path = %path.display(), error = %why, aside = %aside.display(),
                    "detector state unreadable; moved aside, starting fresh");
                let _ = std::fs::rename(path, &aside);
                Self::new(config)
            }
        }
    }

    /// Saves the state to `path` atomically (temp file, fsync, rename).
    pub fn save(&self, path: &Path) -> io::Result<()> {
        let saved = {
            let models = self.models.lock();
            Saved {
                version: SAVED_VERSION,
                aggregator: self.aggregator.lock().state(),
                series: models
                    .series
                    .iter()
                    .map(|(k, m)| (k.clone(), m.clone()))
                    .collect(),
                services: models
                    .services
                    .iter()
                    .map(|(k, m)| (k.clone(), m.clone()))
                    .collect(),
                statements: models.statements.clone(),
                peers: models.peers.clone(),
            }
        };
        let bytes = serde_json::to_vec(&saved).map_err(io::Error::other)?;
        let tmp: PathBuf = path.with_extension("tmp");
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)
    }

    /// Folds a stored batch into the series (the ingest hook), with `now_ns` as the clock.
    pub fn observe_at(&self, table: Table, batch: &RecordBatch, now_ns: i64) {
        self.aggregator.lock().observe(table, batch, now_ns);
    }

    /// Closes the buckets that are due at `now_ns` and scores them.
    pub fn cycle(&self, now_ns: i64) -> (Vec<Anomaly>, CycleReport) {
        let started = Instant::now();
        let (closed, late_rows) = {
            let mut agg = self.aggregator.lock();
            let closed = agg.close(now_ns);
            (closed, agg.late_rows)
        };
        let points = closed.points;
        let mut out = self.score(&points);
        out.extend(closed.novelties.into_iter().map(|n| self.novelty(n)));
        let findings = self.models.lock().statements.observe(
            closed.statements,
            &self.config.statements,
            self.width_ns,
        );
        out.extend(findings.into_iter().map(|f| self.statement(f)));
        out.retain(|a| a.score >= self.config.min_score);
        // Folding iterates hash maps; a fixed order makes the incidents built from a cycle's
        // anomalies (which join, link and merge in order) the same on every run.
        out.sort_by(|a, b| (a.time_ns, &a.key, &a.detector).cmp(&(b.time_ns, &b.key, &b.detector)));
        let series = self.models.lock().series.len();
        let report = CycleReport {
            points: points.len(),
            anomalies: out.len(),
            series,
            late_rows,
            seconds: started.elapsed().as_secs_f64(),
        };
        (out, report)
    }

    fn novelty(&self, n: Novelty) -> Anomaly {
        Anomaly {
            time_ns: n.time_ns,
            width_ns: 0,
            key: n.key,
            observed: 1.0,
            expected: Some(0.0),
            lower: None,
            upper: None,
            score: n.score,
            detector: DetectorName::Novelty,
            evidence: n.evidence,
        }
    }

    /// A log statement finding as an anomaly of `log_statement{operation: statement}` (or
    /// `{operation: before → statement}` for a transition).
    fn statement(&self, f: StatementFinding) -> Anomaly {
        let mut attributes = vec![
            ("operation".to_string(), f.operation.name.clone()),
            ("statement".to_string(), f.statement.name.clone()),
            ("spans".to_string(), format!("{}", f.spans)),
            ("z".to_string(), format!("{:.1}", f.z)),
            (
                "window_s".to_string(),
                format!(
                    "{}",
                    (f.bucket_ns + self.width_ns - f.window_start_ns) / 1_000_000_000
                ),
            ),
        ];
        // Counted per line of the statement before it: `op: A → B`.
        let scope = match &f.operation.after {
            Some(after) => {
                attributes.push(("after".to_string(), after.clone()));
                format!("{}: {after} → {}", f.operation.name, f.statement.name)
            }
            None => format!("{}: {}", f.operation.name, f.statement.name),
        };
        Anomaly {
            time_ns: f.bucket_ns,
            width_ns: self.width_ns,
            key: SeriesKey {
                service: f.operation.service,
                signal: Signal::Logs,
                measure: Measure::LogStatement,
                scope,
            },
            observed: f.observed,
            expected: Some(f.expected),
            lower: None,
            upper: None,
            score: calibrate(f.z),
            detector: DetectorName::Statements,
            evidence: Evidence {
                attributes,
                ..Evidence::default()
            },
        }
    }

    /// Scores points with their series' models (creating models for new series), then each
    /// service's RED vector with its PCA model; forgets series idle beyond the horizon.
    fn score(&self, points: &[Point]) -> Vec<Anomaly> {
        let mut guard = self.models.lock();
        let models = &mut *guard;
        let mut out = Vec::new();
        let mut vectors: BTreeMap<(String, i64), [Option<f64>; 5]> = BTreeMap::new();
        for p in points {
            let model = models
                .series
                .entry(p.key.clone())
                .or_insert_with(|| SeriesModel::new(p.kind, p.direction, &self.config.model));
            let warm = model.is_warm();
            let mut finding = model.observe(p);
            if Peers::applies(&p.key.measure) {
                let peers = models.peers.observe(p, warm, &self.config.model);
                finding = finding.or(peers);
            }
            if p.key.signal == Signal::Traces
                && p.key.scope.is_empty()
                && let Some(i) = RED_FEATURES.iter().position(|m| *m == p.key.measure)
            {
                let v = vectors
                    .entry((p.key.service.clone(), p.bucket_ns))
                    .or_default();
                v[i] = Some(red_feature(&p.key.measure, p.value));
            }
            if let Some(f) = finding.filter(|f| f.score >= self.config.min_score) {
                out.push(Anomaly {
                    time_ns: p.bucket_ns,
                    width_ns: self.width_ns,
                    key: p.key.clone(),
                    observed: f.observed,
                    expected: Some(f.expected),
                    lower: Some(f.lower),
                    upper: Some(f.upper),
                    score: f.score,
                    detector: f.detector,
                    evidence: p.evidence.clone(),
                });
            }
        }
        for ((service, bucket), v) in vectors {
            let Some(x) = v.iter().copied().collect::<Option<Vec<f64>>>() else {
                continue;
            };
            let flagged = out
                .iter()
                .any(|a| a.key.service == service && a.time_ns == bucket);
            let (last, pca) = models
                .services
                .entry(service.clone())
                .or_insert_with(|| (0, Pca::new(RED_FEATURES.len(), 360, 60, 30)));
            *last = bucket;
            let assessed = pca.assess(&x);
            pca.update(&x, flagged);
            let Some(a) = assessed else { continue };
            let score = calibrate(a.z(0.0));
            if score >= self.config.min_score {
                out.push(self.multivariate(
                    service,
                    bucket,
                    a.observed,
                    score,
                    pca.top_feature(&x),
                ));
            }
        }
        let horizon = i64::try_from(self.config.model_horizon.as_nanos()).unwrap_or(i64::MAX);
        if let Some(latest) = points.iter().map(|p| p.bucket_ns).max() {
            models.series.retain(|_, m| latest - m.last_ns <= horizon);
            models
                .services
                .retain(|_, (last, _)| latest - *last <= horizon);
        }
        out
    }

    fn multivariate(
        &self,
        service: String,
        bucket: i64,
        distance: f64,
        score: f64,
        top: Option<usize>,
    ) -> Anomaly {
        let attributes = top
            .map(|i| {
                vec![(
                    "top_feature".to_string(),
                    RED_FEATURES[i].as_str().to_string(),
                )]
            })
            .unwrap_or_default();
        Anomaly {
            time_ns: bucket,
            width_ns: self.width_ns,
            key: SeriesKey {
                service,
                signal: Signal::Traces,
                measure: Measure::Red,
                scope: String::new(),
            },
            observed: distance,
            expected: Some(0.0),
            lower: None,
            upper: Some(3.0),
            score,
            detector: DetectorName::Pca,
            evidence: Evidence {
                attributes,
                ..Evidence::default()
            },
        }
    }
}

impl Observer for Engine {
    fn observe(&self, table: Table, batch: &RecordBatch) {
        if table != Table::Anomalies {
            self.observe_at(table, batch, self.clock.now_ns());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scry_collector::opentelemetry_proto::tonic::logs::v1::LogRecord;
    use scry_collector::opentelemetry_proto::tonic::trace::v1::{Span, Status};
    use scry_workload::otlp::{int, service_logs, service_spans, string, text};

    const BUCKET: i64 = 10_000_000_000;

    /// Spans of `service`: (start, operation, duration ms, failed with HTTP 503).
    fn spans(service: &str, plan: &[(i64, &str, f64, bool)]) -> RecordBatch {
        spans_from(service, plan, 1)
    }

    /// As [`spans`], with span ids from `first_id` on.
    fn spans_from(service: &str, plan: &[(i64, &str, f64, bool)], first_id: u64) -> RecordBatch {
        let spans = plan
            .iter()
            .enumerate()
            .map(|(i, (start, op, ms, failed))| Span {
                trace_id: ((i as u128 + 1) << 8).to_be_bytes().to_vec(),
                span_id: (i as u64 + first_id).to_be_bytes().to_vec(),
                name: (*op).into(),
                kind: 2,
                start_time_unix_nano: *start as u64,
                end_time_unix_nano: (*start + (*ms * 1e6) as i64) as u64,
                attributes: if *failed {
                    vec![text("http.response.status_code", "503")]
                } else {
                    vec![]
                },
                status: failed.then(|| Status {
                    code: 2,
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect();
        let req = service_spans(service, spans);
        scry_collector::otlp::traces::convert(&req)
            .batch
            .expect("valid spans")
    }

    /// `n` buckets of steady traffic from `first`, then one bucket with `cart` at `spike_ms` (and,
    /// when that is a spike, one `home` request failing with HTTP 503).
    fn feed(engine: &Engine, first: i64, n: i64, spike_ms: f64) -> Vec<Anomaly> {
        let mut found = Vec::new();
        for b in 0..=n {
            let start = first + b * BUCKET;
            let cart_ms = if b == n {
                spike_ms
            } else {
                50.0 + (b % 3) as f64
            };
            let plan: Vec<_> = (0..10)
                .flat_map(|i| {
                    let t = start + i * 900_000_000;
                    [
                        (t, "GET /cart", cart_ms, false),
                        (
                            t,
                            "GET /home",
                            40.0 + (i % 2) as f64,
                            i == 3 && b == n && spike_ms > 100.0,
                        ),
                    ]
                })
                .collect();
            engine.observe_at(Table::Spans, &spans("shop", &plan), start);
            found.extend(engine.cycle(start + 2 * BUCKET).0);
        }
        found
    }

    /// One log line per span id 1..=n of `service` at `t`, from `location` (`Class#line`).
    fn lines(service: &str, t: i64, n: u64, location: (&str, i64)) -> RecordBatch {
        lines_for(service, t, 1..=n, location)
    }

    /// One log line per span id in `ids`, as [`lines`].
    fn lines_for(
        service: &str,
        t: i64,
        ids: std::ops::RangeInclusive<u64>,
        location: (&str, i64),
    ) -> RecordBatch {
        let log_records = ids
            .map(|id| LogRecord {
                time_unix_nano: t as u64,
                severity_number: 9,
                body: string("route found"),
                attributes: vec![
                    text("code.namespace", location.0),
                    int("code.lineno", location.1),
                ],
                trace_id: ((id as u128) << 8).to_be_bytes().to_vec(),
                span_id: id.to_be_bytes().to_vec(),
                ..Default::default()
            })
            .collect();
        let req = service_logs(service, log_records);
        scry_collector::otlp::logs::convert(&req)
            .batch
            .expect("valid logs")
    }

    #[test]
    fn a_log_statement_that_stops_is_found_per_span_of_its_operation() {
        let engine = Engine::new(DetectionConfig::default());
        let first = 1_000 * BUCKET;
        let mut found = Vec::new();
        for b in 0..80 {
            let start = first + b * BUCKET;
            let plan: Vec<_> = (0..10)
                .map(|i| (start + i * 900_000_000, "GET /route", 20.0, false))
                .collect();
            engine.observe_at(Table::Spans, &spans("route", &plan), start);
            // The statement runs once per request until bucket 60, then never.
            if b < 60 {
                let batch = lines(
                    "route",
                    start + 500_000_000,
                    10,
                    ("r.c.RouteController", 53),
                );
                engine.observe_at(Table::Logs, &batch, start);
            }
            let cycle = engine.cycle(start + 2 * BUCKET).0;
            if b < 60 {
                assert!(
                    !cycle.iter().any(|a| a.key.measure == Measure::LogStatement),
                    "{cycle:#?}"
                );
            }
            found.extend(cycle);
        }
        let stopped = found
            .iter()
            .find(|a| a.key.scope == "GET /route: r.c.RouteController#53")
            .unwrap_or_else(|| panic!("{found:#?}"));
        assert_eq!(stopped.key.measure, Measure::LogStatement);
        // Found while the window still holds the last lines: for a statement every span logs
        // once, a third of them missing is already improbable.
        assert!(
            stopped.observed <= stopped.expected.unwrap() * 2.0 / 3.0 && stopped.score > 0.5,
            "{stopped:?}"
        );
        assert!(
            found
                .iter()
                .any(|a| a.key.scope == stopped.key.scope && a.observed == 0.0)
        );
    }

    #[test]
    fn a_statement_that_stops_following_another_is_found_however_many_spans_reach_it() {
        let engine = Engine::new(DetectionConfig::default());
        let first = 1_000 * BUCKET;
        let mut found = Vec::new();
        for b in 0..80 {
            let start = first + b * BUCKET;
            let ids = b as u64 * 100 + 1;
            let plan: Vec<_> = (0..10)
                .map(|i| (start + i * 900_000_000, "GET /route", 20.0, false))
                .collect();
            engine.observe_at(Table::Spans, &spans_from("route", &plan, ids), start);
            // 4, 7 or 10 of the spans get as far as `#10` (the others fail before it, as when
            // a callee fails); each logs `#20` after it until bucket 60, then none does.
            let reach = [4, 7, 10][b as usize % 3];
            let at = ids..=ids + reach - 1;
            let a = lines_for("route", start + 500_000_000, at.clone(), ("r.c.R", 10));
            engine.observe_at(Table::Logs, &a, start);
            if b < 60 {
                let b = lines_for("route", start + 600_000_000, at, ("r.c.R", 20));
                engine.observe_at(Table::Logs, &b, start);
            }
            let cycle = engine.cycle(start + 2 * BUCKET).0;
            let transition = |a: &Anomaly| a.key.scope == "GET /route: r.c.R#10 → r.c.R#20";
            if b < 60 {
                assert!(!cycle.iter().any(transition), "{cycle:#?}");
            }
            found.extend(cycle.into_iter().filter(transition));
        }
        let strongest = found
            .iter()
            .max_by(|a, b| a.score.total_cmp(&b.score))
            .unwrap_or_else(|| panic!("no transition anomaly"));
        assert!(strongest.score > 0.8, "{strongest:?}");
        assert_eq!(strongest.observed, 0.0, "{strongest:?}");
        assert!(
            strongest
                .evidence
                .attributes
                .contains(&("after".to_string(), "r.c.R#10".to_string()))
        );
    }

    #[test]
    fn latency_spike_of_one_operation_is_found_with_exemplar_and_band() {
        let engine = Engine::new(DetectionConfig::default());
        let found = feed(&engine, 1_000 * BUCKET, 40, 900.0);
        let cart: Vec<_> = found
            .iter()
            .filter(|a| a.key.scope == "GET /cart" && a.key.measure.is_latency())
            .collect();
        assert!(!cart.is_empty(), "{found:#?}");
        let a = cart[0];
        assert!(
            a.observed > 800.0 && a.expected.unwrap() < 60.0 && a.upper.unwrap() < 100.0,
            "{a:?}"
        );
        assert!(!a.evidence.trace_ids.is_empty());
        assert!(
            !found
                .iter()
                .any(|a| a.key.scope == "GET /home" && a.key.measure.is_latency()),
            "{found:#?}"
        );
        // One failure in ten requests is not an error-rate incident, but its code was never seen.
        let novel: Vec<_> = found
            .iter()
            .filter(|a| a.key.measure == Measure::NewErrorCode)
            .collect();
        assert_eq!(novel.len(), 1, "{found:#?}");
        assert_eq!(novel[0].evidence.attributes[0].1, "http 503");
    }

    #[test]
    fn steady_traffic_gives_no_anomalies_and_late_rows_are_counted() {
        let engine = Engine::new(DetectionConfig::default());
        let found = feed(&engine, 1_000 * BUCKET, 60, 51.0);
        assert!(found.is_empty(), "{found:#?}");
        engine.observe_at(
            Table::Spans,
            &spans("shop", &[(1_000 * BUCKET, "GET /cart", 5.0, false)]),
            1_100 * BUCKET,
        );
        assert_eq!(engine.cycle(1_100 * BUCKET).1.late_rows, 1);
    }

    #[test]
    fn state_survives_save_and_open_and_a_corrupt_file_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let engine = Engine::new(DetectionConfig::default());
        feed(&engine, 1_000 * BUCKET, 40, 51.0);
        engine.save(&path).unwrap();
        let restored = Engine::open(DetectionConfig::default(), &path);
        assert_eq!(
            restored.models.lock().series.len(),
            engine.models.lock().series.len()
        );
        // The restored models judge at once: no warm-up after a restart.
        let found = feed(&restored, 1_041 * BUCKET, 0, 900.0);
        assert!(
            found.iter().any(|a| a.key.scope == "GET /cart"),
            "{found:#?}"
        );

        std::fs::write(&path, b"{not json").unwrap();
        let fresh = Engine::open(DetectionConfig::default(), &path);
        assert!(fresh.models.lock().series.is_empty());
        assert!(path.with_extension("corrupt").exists());
    }
}
