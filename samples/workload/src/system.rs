//! A simulated microservice system that emits traces, logs and metrics as OTLP, with faults.
//!
//! Ten services: `frontend` serves three endpoints that fan out through `catalog`, `cart`,
//! `checkout`, `inventory`, `payment`, `database`, `cache`, `queue` and `email`. Every call is a
//! CLIENT span in the caller around a SERVER span in the callee; every server span logs a line;
//! every service reports CPU, memory and a cumulative request counter every 10 s. Traffic follows a
//! slow wave (a compressed day). A [`Fault`] changes how one service behaves while it lasts; the
//! detectors see only the telemetry, never the fault.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Metric, NumberDataPoint, Sum, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{Span, Status};

use crate::otlp::{self, int, logs_request, metrics_request, text, trace_request};

/// The services of the simulated system.
pub const SERVICES: [&str; 10] = [
    "frontend",
    "catalog",
    "cart",
    "checkout",
    "inventory",
    "payment",
    "database",
    "cache",
    "queue",
    "email",
];

/// What can go wrong with a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// Every request gets slower.
    Latency,
    /// Many requests fail with HTTP 500 and an error log.
    ErrorBurst,
    /// The service refuses every call.
    Outage,
    /// CPU pinned near 100 %, requests much slower.
    CpuSaturation,
    /// Memory grows steadily; GC pauses slow some requests.
    MemoryLeak,
    /// A new version logs a new exception and fails some requests.
    BadDeploy,
    /// One database operation becomes very slow.
    SlowQuery,
    /// Callers time out and retry: three times the calls, each slower.
    RetryStorm,
    /// The pod's network adds about 200 ms to every response it sends (tc/netem on its
    /// interface): its callers' client spans grow, its own server spans and logs look normal.
    NetworkDelay,
}

impl FaultKind {
    /// Every kind, in catalogue order.
    pub const ALL: [FaultKind; 9] = [
        FaultKind::Latency,
        FaultKind::ErrorBurst,
        FaultKind::Outage,
        FaultKind::CpuSaturation,
        FaultKind::MemoryLeak,
        FaultKind::BadDeploy,
        FaultKind::SlowQuery,
        FaultKind::RetryStorm,
        FaultKind::NetworkDelay,
    ];

    /// A short name.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Latency => "added latency",
            FaultKind::ErrorBurst => "error burst",
            FaultKind::Outage => "dependency outage",
            FaultKind::CpuSaturation => "CPU saturation",
            FaultKind::MemoryLeak => "memory leak",
            FaultKind::BadDeploy => "bad deploy",
            FaultKind::SlowQuery => "slow database query",
            FaultKind::RetryStorm => "retry storm",
            FaultKind::NetworkDelay => "network delay",
        }
    }
}

/// A fault in one service from `start_ns` to `end_ns`.
#[derive(Debug, Clone)]
pub struct Fault {
    /// What goes wrong.
    pub kind: FaultKind,
    /// Where.
    pub service: &'static str,
    /// From (ns since the epoch).
    pub start_ns: i64,
    /// Until.
    pub end_ns: i64,
}

/// One operation of a service and the calls it makes, in order.
struct Op {
    service: &'static str,
    name: &'static str,
    own_ms: f64,
    calls: Vec<Op>,
}

fn op(service: &'static str, name: &'static str, own_ms: f64, calls: Vec<Op>) -> Op {
    Op {
        service,
        name,
        own_ms,
        calls,
    }
}

/// The three endpoints of `frontend` and their call trees, with their share of traffic.
fn endpoints() -> Vec<(f64, Op)> {
    let cart_get = || {
        op(
            "cart",
            "GET /cart",
            4.0,
            vec![op("cache", "GET cart", 1.0, vec![])],
        )
    };
    vec![
        (
            0.5,
            op(
                "frontend",
                "GET /",
                6.0,
                vec![op(
                    "catalog",
                    "GET /products",
                    8.0,
                    vec![
                        op("cache", "GET products", 1.0, vec![]),
                        op("database", "SELECT products", 5.0, vec![]),
                    ],
                )],
            ),
        ),
        (0.3, op("frontend", "GET /cart", 5.0, vec![cart_get()])),
        (
            0.2,
            op(
                "frontend",
                "POST /checkout",
                8.0,
                vec![op(
                    "checkout",
                    "POST /checkout",
                    10.0,
                    vec![
                        cart_get(),
                        op(
                            "inventory",
                            "POST /reserve",
                            5.0,
                            vec![op("database", "UPDATE stock", 6.0, vec![])],
                        ),
                        op(
                            "payment",
                            "POST /charge",
                            20.0,
                            vec![op(
                                "queue",
                                "publish payment",
                                2.0,
                                vec![op("email", "send receipt", 15.0, vec![])],
                            )],
                        ),
                    ],
                )],
            ),
        ),
    ]
}

/// Deterministic pseudo-random numbers (xorshift64*).
pub struct Rng(u64);

impl Rng {
    /// Seeded generator.
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: usize) -> usize {
        ((self.uniform() * n as f64) as usize).min(n.saturating_sub(1))
    }

    fn id(&mut self) -> u64 {
        (self.uniform() * u64::MAX as f64) as u64 | 1
    }
}

/// Telemetry of one simulated interval, grouped by service.
#[derive(Default)]
pub struct Batch {
    spans: BTreeMap<&'static str, Vec<Span>>,
    logs: BTreeMap<&'static str, Vec<LogRecord>>,
    metrics: BTreeMap<&'static str, Vec<Metric>>,
}

fn resource(service: &str) -> Option<Resource> {
    otlp::service(service, [text("service.version", "1.4.2")])
}

fn scope() -> Option<InstrumentationScope> {
    Some(InstrumentationScope {
        name: "scry-demo".into(),
        ..Default::default()
    })
}

impl Batch {
    /// The spans as one export request.
    pub fn traces(&mut self) -> ExportTraceServiceRequest {
        let groups = std::mem::take(&mut self.spans).into_iter();
        trace_request(groups.map(|(s, spans)| (resource(s), spans)), scope())
    }

    /// The log records as one export request.
    pub fn logs(&mut self) -> ExportLogsServiceRequest {
        let groups = std::mem::take(&mut self.logs).into_iter();
        logs_request(groups.map(|(s, logs)| (resource(s), logs)), scope())
    }

    /// The metric points as one export request.
    pub fn metrics(&mut self) -> ExportMetricsServiceRequest {
        let groups = std::mem::take(&mut self.metrics).into_iter();
        metrics_request(groups.map(|(s, metrics)| (resource(s), metrics)), scope())
    }
}

/// The simulated system's state.
pub struct System {
    rng: Rng,
    /// Requests per second at the middle of the wave.
    pub base_rate: f64,
    requests: BTreeMap<&'static str, u64>,
    leaked_mb: f64,
    start_ns: i64,
}

/// What one simulated call did.
struct Outcome {
    end_ns: i64,
    failed: bool,
}

const MS: f64 = 1e6;

impl System {
    /// A system whose wave starts at `start_ns`.
    pub fn new(seed: u64, start_ns: i64) -> Self {
        Self {
            rng: Rng::new(seed),
            base_rate: 20.0,
            requests: BTreeMap::new(),
            leaked_mb: 0.0,
            start_ns,
        }
    }

    fn fault_on<'a>(faults: &'a [Fault], service: &str, t: i64) -> Option<&'a Fault> {
        faults
            .iter()
            .find(|f| f.service == service && f.start_ns <= t && t < f.end_ns)
    }

    /// Telemetry for the second starting at `t_ns`, with `faults` in effect.
    pub fn second(&mut self, t_ns: i64, faults: &[Fault], out: &mut Batch) {
        let phase = (t_ns - self.start_ns) as f64 / 1e9 / 600.0 * std::f64::consts::TAU;
        let rate = self.base_rate * (1.0 + 0.3 * phase.sin());
        let n = (rate + (self.rng.uniform() - 0.5) * 4.0).max(1.0) as usize;
        let endpoints = endpoints();
        for i in 0..n {
            let pick = self.rng.uniform();
            let mut acc = 0.0;
            let root = endpoints
                .iter()
                .find(|(share, _)| {
                    acc += share;
                    pick < acc
                })
                .map_or(&endpoints[0].1, |(_, op)| op);
            let start = t_ns + (i as i64) * 1_000_000_000 / n as i64;
            let trace_id = (u128::from(self.rng.id()) << 64 | u128::from(self.rng.id()))
                .to_be_bytes()
                .to_vec();
            self.call(root, &trace_id, None, start, faults, out);
        }
        if (t_ns / 1_000_000_000) % 10 == 0 {
            self.report_metrics(t_ns, faults, out);
        }
    }

    /// Simulates `op` (a server span) starting at `start`; returns when it ended and whether it failed.
    fn call(
        &mut self,
        op: &Op,
        trace_id: &[u8],
        parent: Option<u64>,
        start: i64,
        faults: &[Fault],
        out: &mut Batch,
    ) -> Outcome {
        let span_id = self.rng.id();
        *self.requests.entry(op.service).or_default() += 1;
        let fault = Self::fault_on(faults, op.service, start).map(|f| f.kind);
        let jitter = 0.8 + 0.4 * self.rng.uniform();
        let mut own = op.own_ms * jitter;
        let mut failed = false;
        let mut error_log: Option<String> = None;
        match fault {
            Some(FaultKind::Latency) => own += 300.0,
            Some(FaultKind::CpuSaturation) => own = own * 6.0 + 40.0,
            Some(FaultKind::MemoryLeak) if self.rng.uniform() < 0.3 => own += 250.0,
            Some(FaultKind::SlowQuery)
                if op.name.starts_with("UPDATE") || op.name.starts_with("SELECT") =>
            {
                own += 700.0
            }
            Some(FaultKind::RetryStorm) => own += 150.0,
            Some(FaultKind::ErrorBurst) if self.rng.uniform() < 0.4 => {
                failed = true;
                error_log = Some(format!(
                    "request {} failed: internal error code {}",
                    span_id % 100_000,
                    500
                ));
            }
            Some(FaultKind::Outage) => {
                own = 1.0;
                failed = true;
                error_log = Some("connection pool exhausted: refusing new requests".into());
            }
            Some(FaultKind::BadDeploy) if self.rng.uniform() < 0.25 => {
                failed = true;
                error_log = Some(format!(
                    "NullPointerException at PriceFormatter.format(PriceFormatter.java:{})",
                    88 + span_id % 3
                ));
            }
            _ => {}
        }
        let mut t = start + (own * MS * 0.3) as i64;
        if !(failed && fault == Some(FaultKind::Outage)) {
            for child in &op.calls {
                let retries = if Self::fault_on(faults, child.service, t)
                    .is_some_and(|f| f.kind == FaultKind::RetryStorm)
                {
                    3
                } else {
                    1
                };
                for attempt in 0..retries {
                    let client_id = self.rng.id();
                    let got = self.call(child, trace_id, Some(client_id), t + 100_000, faults, out);
                    let mut end = got.end_ns + 200_000;
                    if Self::fault_on(faults, child.service, got.end_ns)
                        .is_some_and(|f| f.kind == FaultKind::NetworkDelay)
                    {
                        end += ((160.0 + 80.0 * self.rng.uniform()) * MS) as i64;
                    }
                    out.spans.entry(op.service).or_default().push(span(
                        trace_id,
                        client_id,
                        Some(span_id),
                        &format!("call {}", child.service),
                        3,
                        t,
                        end,
                        got.failed,
                        vec![
                            text("peer.service", child.service),
                            int("retry.attempt", attempt),
                        ],
                    ));
                    t = end;
                    if got.failed && error_log.is_none() {
                        failed = true;
                        error_log = Some(format!(
                            "call to {} failed after {} ms",
                            child.service,
                            (end - start) / 1_000_000
                        ));
                    }
                }
            }
        }
        let end = t + (own * MS * 0.7) as i64;
        let status = if failed { 500 } else { 200 };
        out.spans.entry(op.service).or_default().push(span(
            trace_id,
            span_id,
            parent,
            op.name,
            2,
            start,
            end,
            failed,
            vec![int("http.response.status_code", status)],
        ));
        let logs = out.logs.entry(op.service).or_default();
        logs.push(log(
            trace_id,
            span_id,
            end,
            9,
            &format!(
                "handled {} in {} ms for user {}",
                op.name,
                (end - start) / 1_000_000,
                span_id % 5000
            ),
        ));
        if let Some(line) = error_log {
            logs.push(log(trace_id, span_id, end, 17, &line));
        }
        Outcome {
            end_ns: end,
            failed,
        }
    }

    fn report_metrics(&mut self, t_ns: i64, faults: &[Fault], out: &mut Batch) {
        for service in SERVICES {
            let fault = Self::fault_on(faults, service, t_ns).map(|f| f.kind);
            let mut cpu = 0.25 + 0.05 * self.rng.uniform();
            if fault == Some(FaultKind::CpuSaturation) {
                cpu = 0.97;
            }
            if fault == Some(FaultKind::MemoryLeak) {
                self.leaked_mb += 40.0;
            }
            let memory = (300.0
                + if fault == Some(FaultKind::MemoryLeak) {
                    self.leaked_mb
                } else {
                    0.0
                }
                + 5.0 * self.rng.uniform())
                * 1e6;
            let point = |v: f64| NumberDataPoint {
                time_unix_nano: t_ns as u64,
                value: Some(number_data_point::Value::AsDouble(v)),
                ..Default::default()
            };
            let gauge = |name: &str, unit: &str, v: f64| Metric {
                name: name.into(),
                unit: unit.into(),
                data: Some(metric::Data::Gauge(Gauge {
                    data_points: vec![point(v)],
                })),
                ..Default::default()
            };
            let count = *self.requests.get(service).unwrap_or(&0) as f64;
            let counter = Metric {
                name: "http.server.request.count".into(),
                unit: "{request}".into(),
                data: Some(metric::Data::Sum(Sum {
                    data_points: vec![NumberDataPoint {
                        start_time_unix_nano: self.start_ns as u64,
                        ..point(count)
                    }],
                    aggregation_temporality: AggregationTemporality::Cumulative as i32,
                    is_monotonic: true,
                })),
                ..Default::default()
            };
            out.metrics.entry(service).or_default().extend([
                gauge("process.cpu.utilization", "1", cpu),
                gauge("process.memory.usage", "By", memory),
                counter,
            ]);
        }
    }

    /// A fault of `kind` in a service that kind makes sense for, chosen at random.
    pub fn pick_fault(&mut self, kind: FaultKind, start_ns: i64, duration_ns: i64) -> Fault {
        let candidates: &[&'static str] = match kind {
            FaultKind::SlowQuery => &["database"],
            FaultKind::RetryStorm | FaultKind::Outage => &[
                "cart",
                "inventory",
                "payment",
                "database",
                "cache",
                "catalog",
            ],
            _ => &SERVICES[1..],
        };
        Fault {
            kind,
            service: candidates[self.rng.below(candidates.len())],
            start_ns,
            end_ns: start_ns + duration_ns,
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn span(
    trace_id: &[u8],
    id: u64,
    parent: Option<u64>,
    name: &str,
    kind: i32,
    start: i64,
    end: i64,
    failed: bool,
    attributes: Vec<KeyValue>,
) -> Span {
    Span {
        trace_id: trace_id.to_vec(),
        span_id: id.to_be_bytes().to_vec(),
        parent_span_id: parent.map(|p| p.to_be_bytes().to_vec()).unwrap_or_default(),
        name: name.into(),
        kind,
        start_time_unix_nano: start as u64,
        end_time_unix_nano: end.max(start) as u64,
        attributes,
        status: failed.then(|| Status {
            code: 2,
            message: "request failed".into(),
        }),
        ..Default::default()
    }
}

fn log(trace_id: &[u8], span_id: u64, t: i64, severity: i32, body: &str) -> LogRecord {
    LogRecord {
        time_unix_nano: t as u64,
        observed_time_unix_nano: t as u64,
        severity_number: severity,
        severity_text: if severity >= 17 {
            "ERROR".into()
        } else {
            "INFO".into()
        },
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue(body.into())),
        }),
        trace_id: trace_id.to_vec(),
        span_id: span_id.to_be_bytes().to_vec(),
        ..Default::default()
    }
}
