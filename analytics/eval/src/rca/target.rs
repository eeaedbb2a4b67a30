//! Where a simulation or replay sends its telemetry and runs its detection cycles: the daemon's
//! own pipeline in this process ([`Pipeline`]), or a running `scry serve --clock manual` through
//! its OTLP/gRPC port and `POST /api/v1/admin/clock` ([`Target::remote`]). Either way every
//! cycle's events come back as the same JSON ([`scry_pipeline::Event::summary`]), so the two can
//! be compared line by line.

use std::io::Write;
use std::sync::Arc;

use anyhow::{Context, bail};
use scry_collector::opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use scry_collector::opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use scry_collector::opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use scry_collector::opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use scry_collector::opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use scry_collector::opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use scry_collector::{Ingest, ManualClock, Store, StoreConfig, Telemetry};
use scry_detect::logs::TemplateEnricher;
use scry_detect::{DetectionConfig, Engine};
use scry_incident::{IncidentConfig, IncidentStore};
use scry_pipeline::{DetectionLoop, LoopHandle, LoopParts};
use scry_query::{QueryConfig, QueryService};
use serde_json::Value;
use tokio::sync::watch;
use tonic::transport::Channel;

pub use scry_incident::Change;

/// The daemon's ingest and detection loop in this process, on a manual clock: a store with its
/// WAL in a temp dir, the template miner and the engine as ingest hooks, an incident store, and
/// the [`DetectionLoop`] that `scry serve` runs, driven through its [`LoopHandle`].
pub struct Pipeline {
    _dir: tempfile::TempDir,
    store: Store,
    /// Where requests go.
    pub ingest: Ingest,
    handle: LoopHandle,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Pipeline {
    /// A fresh pipeline whose clock reads `start_ns`, tracking incidents with `incident_config`.
    pub fn new(start_ns: i64, incident_config: IncidentConfig) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("scry-eval-").tempdir()?;
        let telemetry = Arc::new(Telemetry::new());
        let mut config = StoreConfig::new(dir.path());
        config.retention = None;
        let store = Store::open(config, Arc::clone(&telemetry)).context("opening the store")?;
        let templates = Arc::new(TemplateEnricher::default());
        let query = Arc::new(
            QueryService::new(store.clone(), QueryConfig::default(), &telemetry)?
                .revised_by(Arc::clone(&templates) as _)?,
        );
        let clock = Arc::new(ManualClock::new(start_ns));
        let engine =
            Arc::new(Engine::new(DetectionConfig::default()).with_clock(Arc::clone(&clock) as _));
        let ingest = Ingest::new(store.clone(), Arc::clone(&telemetry))
            .with_enricher(templates)
            .with_observer(Arc::clone(&engine) as _);
        let incidents = Arc::new(IncidentStore::open(&dir.path().join("incidents.db"))?);
        let detection = DetectionLoop::open(LoopParts {
            engine,
            store: store.clone(),
            query,
            incidents,
            incident_config,
            clock: Arc::clone(&clock) as _,
            state_path: None,
        })?;
        let (handle, requests) = detection.handle(Some(clock));
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(detection.run(requests, stop_rx));
        Ok(Self {
            _dir: dir,
            store,
            ingest,
            handle,
            stop,
            task,
        })
    }

    /// One detection cycle at `t`: its events as JSON.
    pub async fn cycle(&mut self, t: i64) -> anyhow::Result<Vec<Value>> {
        let cycle = self.handle.advance(t).await?;
        // The daemon's background task flushes by size and age; this keeps memory bounded alike.
        self.store.maybe_flush().await?;
        Ok(cycle.events.iter().map(|e| e.summary()).collect())
    }

    /// Stops the loop.
    pub async fn finish(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// A running daemon on a manual clock.
pub struct Remote {
    traces: TraceServiceClient<Channel>,
    logs: LogsServiceClient<Channel>,
    metrics: MetricsServiceClient<Channel>,
    http: reqwest::Client,
    api: String,
}

/// Where telemetry goes and cycles run.
pub enum Target {
    /// The pipeline in this process.
    Local(Box<Pipeline>),
    /// A daemon started with `--clock manual`.
    Remote(Box<Remote>),
}

impl Target {
    /// A daemon at `otlp` (gRPC, e.g. `http://127.0.0.1:4317`) with its API at `api`.
    pub async fn remote(otlp: &str, api: &str) -> anyhow::Result<Self> {
        let channel = Channel::from_shared(otlp.to_string())?
            .connect()
            .await
            .with_context(|| format!("connecting to the daemon's OTLP/gRPC port {otlp}"))?;
        let limit = 64 << 20;
        Ok(Self::Remote(Box::new(Remote {
            traces: TraceServiceClient::new(channel.clone()).max_encoding_message_size(limit),
            logs: LogsServiceClient::new(channel.clone()).max_encoding_message_size(limit),
            metrics: MetricsServiceClient::new(channel).max_encoding_message_size(limit),
            http: reqwest::Client::new(),
            api: api.trim_end_matches('/').to_string(),
        })))
    }

    /// Sends one request of each signal, in the order traces, logs, metrics.
    pub async fn send(
        &mut self,
        traces: ExportTraceServiceRequest,
        logs: ExportLogsServiceRequest,
        metrics: ExportMetricsServiceRequest,
    ) -> anyhow::Result<()> {
        match self {
            Self::Local(p) => {
                p.ingest.traces(&traces).await?;
                p.ingest.logs(&logs).await?;
                p.ingest.metrics(&metrics).await?;
            }
            Self::Remote(r) => {
                r.traces.export(traces).await.context("exporting traces")?;
                r.logs.export(logs).await.context("exporting logs")?;
                r.metrics
                    .export(metrics)
                    .await
                    .context("exporting metrics")?;
            }
        }
        Ok(())
    }

    /// Runs one detection cycle at `t`: its events as JSON.
    pub async fn cycle(&mut self, t: i64) -> anyhow::Result<Vec<Value>> {
        match self {
            Self::Local(p) => p.cycle(t).await,
            Self::Remote(r) => {
                let resp = r
                    .http
                    .post(format!("{}/api/v1/admin/clock", r.api))
                    .json(&serde_json::json!({ "now_ns": t }))
                    .send()
                    .await
                    .context("advancing the daemon's clock")?;
                let status = resp.status();
                let mut body: Value = resp.json().await.context("reading the cycle's events")?;
                if !status.is_success() {
                    bail!("advancing the daemon's clock to {t}: {status} {body}");
                }
                match body["events"].take() {
                    Value::Array(events) => Ok(events),
                    other => bail!("advancing the daemon's clock: no events in {other}"),
                }
            }
        }
    }

    /// Stops the local loop (a remote daemon keeps running).
    pub async fn finish(self) {
        if let Self::Local(p) = self {
            p.finish().await;
        }
    }
}

/// A [`Target`] driven step by step, with every event written to a file when asked for.
pub struct Driver {
    target: Target,
    events: Option<std::io::BufWriter<std::fs::File>>,
}

impl Driver {
    /// Drives `target`, writing each cycle's events as JSON lines to `events`.
    pub fn new(target: Target, events: Option<std::io::BufWriter<std::fs::File>>) -> Self {
        Self { target, events }
    }

    /// Sends one request of each signal, then runs the cycle at `t`: its events as JSON.
    pub async fn step(
        &mut self,
        t: i64,
        traces: ExportTraceServiceRequest,
        logs: ExportLogsServiceRequest,
        metrics: ExportMetricsServiceRequest,
    ) -> anyhow::Result<Vec<Value>> {
        self.target.send(traces, logs, metrics).await?;
        self.cycle(t).await
    }

    /// Runs the cycle at `t` alone.
    pub async fn cycle(&mut self, t: i64) -> anyhow::Result<Vec<Value>> {
        let events = self.target.cycle(t).await?;
        if let Some(out) = &mut self.events {
            for e in &events {
                writeln!(out, "{e}")?;
            }
        }
        Ok(events)
    }

    /// Flushes the events file and stops a local loop.
    pub async fn finish(mut self) -> anyhow::Result<()> {
        if let Some(out) = &mut self.events {
            out.flush()?;
        }
        self.target.finish().await;
        Ok(())
    }
}

/// One ranked candidate as the scoring reads it.
pub struct Entry {
    /// The service.
    pub service: String,
    /// Its score.
    pub score: f64,
    /// Its strongest series with their scores.
    pub evidence: Vec<String>,
}

/// An incident change of a cycle's events: the change and the ranking after it.
pub fn incident_changes(events: &[Value]) -> impl Iterator<Item = (Change, Vec<Entry>)> + '_ {
    events.iter().filter_map(|e| {
        let id = e["id"].as_u64()?;
        let change = match e["change"].as_str()? {
            "opened" => Change::Opened(id),
            "updated" => Change::Updated(id),
            "resolved" => Change::Resolved(id),
            _ => return None,
        };
        let ranking = e["ranking"].as_array()?.iter().map(|c| Entry {
            service: c["service"].as_str().unwrap_or_default().to_string(),
            score: c["score"].as_f64().unwrap_or(0.0),
            evidence: c["evidence"]
                .as_array()
                .map(|v| {
                    v.iter()
                        .filter_map(|s| s.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default(),
        });
        Some((change, ranking.collect()))
    })
}
