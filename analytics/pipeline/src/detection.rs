//! The detection loop; see the crate docs.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use scry_collector::{ManualClock, SharedClock, Store, Table};
use scry_detect::anomaly::to_batch;
use scry_detect::{Anomaly, CycleReport, Engine};
use scry_incident::{Graph, IncidentConfig, IncidentStore, StoreError, Tracker};
use scry_query::QueryService;
use serde::Serialize;
use tokio::sync::{broadcast, mpsc, watch};

use crate::event::Event;
use crate::graph::{GRAPH_WINDOW_NS, load_graph};
use crate::handle::{LoopHandle, Request};

/// Events a slow subscriber may fall behind by before it misses some (it is told how many).
const EVENT_BUFFER: usize = 4096;

/// Why the loop could not start or finish a cycle.
#[derive(Debug, thiserror::Error)]
pub enum LoopError {
    /// The incident store could not be read at start.
    #[error("reading open incidents: {0}")]
    Incidents(#[from] StoreError),
    /// Scoring panicked on its blocking thread.
    #[error("detection cycle at {at_ns} panicked")]
    Panicked {
        /// Cycle time, UTC ns.
        at_ns: i64,
    },
}

/// What the loop runs on.
pub struct LoopParts {
    /// Folds ingested batches and scores closed buckets (it must read `clock` too).
    pub engine: Arc<Engine>,
    /// Where anomalies are written (the `anomalies` table).
    pub store: Store,
    /// Reads the service graph.
    pub query: Arc<QueryService>,
    /// Where incidents and their changes are kept.
    pub incidents: Arc<IncidentStore>,
    /// How anomalies become incidents.
    pub incident_config: IncidentConfig,
    /// The time every part reads.
    pub clock: SharedClock,
    /// Where model state is saved every `save_every` of clock time and on stop; `None` keeps
    /// it in memory only (evals).
    pub state_path: Option<PathBuf>,
}

/// What one cycle did.
#[derive(Debug, Clone, Serialize)]
pub struct Cycle {
    /// Cycle time, UTC ns.
    pub at_ns: i64,
    /// The scoring step's figures.
    pub report: CycleReport,
    /// What was announced, in order (also sent to every subscriber).
    #[serde(skip)]
    pub events: Vec<Event>,
}

/// The one detection loop of scry: see the crate docs.
pub struct DetectionLoop {
    engine: Arc<Engine>,
    store: Store,
    query: Arc<QueryService>,
    incidents: Arc<IncidentStore>,
    tracker: Tracker,
    clock: SharedClock,
    state_path: Option<PathBuf>,
    events: broadcast::Sender<Event>,
    last_save_ns: Option<i64>,
}

impl DetectionLoop {
    /// A loop continuing the open incidents in `parts.incidents`.
    pub fn open(parts: LoopParts) -> Result<Self, LoopError> {
        let open = parts.incidents.open_incidents()?;
        if !open.is_empty() {
            tracing::info!(open = open.len(), "continuing open incidents");
        }
        let tracker = Tracker::restore(parts.incident_config, parts.incidents.last_id()?, open);
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        Ok(Self {
            engine: parts.engine,
            store: parts.store,
            query: parts.query,
            incidents: parts.incidents,
            tracker,
            clock: parts.clock,
            state_path: parts.state_path,
            events,
            last_save_ns: None,
        })
    }

    /// A new subscription to every event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// The sender events go out on, for subscribing later (e.g. per API client).
    pub fn events(&self) -> broadcast::Sender<Event> {
        self.events.clone()
    }

    /// The clock the loop reads.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// Runs one cycle at the clock's time: score the closed buckets, store the anomalies, update
    /// incidents with the service graph, persist and announce every change, save the models when
    /// due.
    pub async fn cycle(&mut self) -> Result<Cycle, LoopError> {
        let at_ns = self.clock.now_ns();
        let engine = Arc::clone(&self.engine);
        let (anomalies, report) = tokio::task::spawn_blocking(move || engine.cycle(at_ns))
            .await
            .map_err(|_| LoopError::Panicked { at_ns })?;
        let mut events = Vec::new();
        if !anomalies.is_empty() {
            tracing::debug!(
                anomalies = anomalies.len(),
                seconds = report.seconds,
                "detection cycle"
            );
            self.store_anomalies(&anomalies).await;
            events.push(Event::Anomalies {
                at_ns,
                anomalies: anomalies.iter().cloned().collect(),
            });
        }
        self.track(at_ns, anomalies, &mut events).await;
        for e in &events {
            // No subscriber is not an error: events are also returned.
            let _ = self.events.send(e.clone());
        }
        self.save_if_due(at_ns).await;
        Ok(Cycle {
            at_ns,
            report,
            events,
        })
    }

    async fn store_anomalies(&self, anomalies: &[Anomaly]) {
        if let Err(e) = self
            .store
            .write(Table::Anomalies, to_batch(anomalies))
            .await
        {
            tracing::warn!(error = %e, dropped = anomalies.len(), "could not store anomalies");
        }
    }

    /// Folds the anomalies into incidents; stores, logs and collects every change.
    async fn track(&mut self, at_ns: i64, anomalies: Vec<Anomaly>, events: &mut Vec<Event>) {
        if anomalies.is_empty() && self.tracker.idle() {
            return;
        }
        let graph = if anomalies.is_empty() {
            Graph::default()
        } else {
            load_graph(&self.query, at_ns - GRAPH_WINDOW_NS).await
        };
        for (change, incident) in self.tracker.update(at_ns, anomalies, &graph) {
            if let Err(e) = self.incidents.record(change, &incident) {
                tracing::warn!(error = %e, incident = incident.id, "could not store incident change");
            }
            let top = incident.top().map(|c| (c.service.clone(), c.score));
            if matches!(change, scry_incident::Change::Updated(_)) {
                tracing::debug!(incident = incident.id, top_root_cause = ?top, "incident updated");
            } else {
                tracing::info!(incident = incident.id, change = change.as_str(),
                    services = ?incident.services, top_root_cause = ?top,
                    "incident {}", change.as_str());
            }
            events.push(Event::incident(at_ns, change, incident));
        }
    }

    async fn save_if_due(&mut self, at_ns: i64) {
        let every = i64::try_from(self.engine.config().save_every.as_nanos()).unwrap_or(i64::MAX);
        let last = *self.last_save_ns.get_or_insert(at_ns);
        if at_ns - last >= every {
            self.save().await;
        }
    }

    /// Saves the model state now (when the loop has a state path).
    pub async fn save(&mut self) {
        let Some(path) = self.state_path.clone() else {
            return;
        };
        let engine = Arc::clone(&self.engine);
        match tokio::task::spawn_blocking(move || engine.save(&path)).await {
            Ok(Ok(())) => self.last_save_ns = Some(self.clock.now_ns()),
            Ok(Err(e)) => tracing::warn!(error = %e, "could not save detector state"),
            Err(_) => tracing::error!("saving detector state panicked"),
        }
    }

    /// A handle to this loop once it [`run`]s, with the request queue to pass to `run`;
    /// `manual` is the loop's clock when a driver sets the time.
    ///
    /// [`run`]: DetectionLoop::run
    pub fn handle(
        &self,
        manual: Option<Arc<ManualClock>>,
    ) -> (LoopHandle, mpsc::Receiver<Request>) {
        LoopHandle::new(self.events.clone(), manual)
    }

    /// Runs until `stop` turns true: on a wall clock a cycle every `interval`; on a manual clock
    /// a cycle per request from its [`LoopHandle`]. Saves the models on stop.
    pub async fn run(
        mut self,
        mut requests: mpsc::Receiver<Request>,
        mut stop: watch::Receiver<bool>,
    ) {
        let manual = self.clock.is_manual();
        let mut tick = tokio::time::interval(if manual {
            Duration::from_secs(3600)
        } else {
            self.engine.config().interval
        });
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let reply = tokio::select! {
                _ = tick.tick(), if !manual => None,
                Some(r) = requests.recv() => Some(r.reply),
                changed = stop.changed() => {
                    // A dropped sender stops the loop as `true` does (and must not spin it).
                    if changed.is_err() || *stop.borrow() {
                        break;
                    }
                    continue;
                }
            };
            let cycle = self.cycle().await;
            if let Err(e) = &cycle {
                tracing::error!(error = %e, "detection cycle failed");
            }
            if let Some(reply) = reply {
                let _ = reply.send(cycle);
            }
        }
        // One last cycle on the wall clock, so what is due is scored before the final save.
        if !manual && let Err(e) = self.cycle().await {
            tracing::error!(error = %e, "final detection cycle failed");
        }
        self.save().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handle::HandleError;
    use scry_collector::opentelemetry_proto::tonic::trace::v1::{Span, Status};
    use scry_collector::{Ingest, StoreConfig, Telemetry};
    use scry_detect::DetectionConfig;
    use scry_incident::Change;
    use scry_query::QueryConfig;
    use scry_workload::otlp::service_spans;

    const BUCKET: i64 = 10_000_000_000;

    struct Rig {
        _dir: tempfile::TempDir,
        ingest: Ingest,
        query: Arc<QueryService>,
        incidents: Arc<IncidentStore>,
        handle: LoopHandle,
        stop: watch::Sender<bool>,
        task: tokio::task::JoinHandle<()>,
    }

    /// A loop on a manual clock at `start`, with its store, ingest and incident store.
    fn rig(start: i64) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let telemetry = Arc::new(Telemetry::new());
        let store = Store::open(StoreConfig::new(dir.path()), Arc::clone(&telemetry)).unwrap();
        let query =
            Arc::new(QueryService::new(store.clone(), QueryConfig::default(), &telemetry).unwrap());
        let clock = Arc::new(ManualClock::new(start));
        let engine = Arc::new(
            Engine::new(DetectionConfig::default()).with_clock(Arc::clone(&clock) as SharedClock),
        );
        let ingest = Ingest::new(store.clone(), telemetry).with_observer(Arc::clone(&engine) as _);
        let incidents = Arc::new(IncidentStore::open(&dir.path().join("incidents.db")).unwrap());
        let detection = DetectionLoop::open(LoopParts {
            engine,
            store,
            query: Arc::clone(&query),
            incidents: Arc::clone(&incidents),
            incident_config: IncidentConfig::default(),
            clock: Arc::clone(&clock) as SharedClock,
            state_path: Some(dir.path().join("state.json")),
        })
        .unwrap();
        let (handle, requests) = detection.handle(Some(clock));
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(detection.run(requests, stop_rx));
        Rig {
            _dir: dir,
            ingest,
            query,
            incidents,
            handle,
            stop,
            task,
        }
    }

    /// Ten `GET /cart` spans from `start`, each `ms` long, failing when `failed`.
    fn cart(start: i64, first_id: u64, ms: i64, failed: bool) -> Vec<Span> {
        (0..10)
            .map(|i| {
                let t = start + i * 900_000_000;
                Span {
                    trace_id: (u128::from(first_id + i as u64) << 8)
                        .to_be_bytes()
                        .to_vec(),
                    span_id: (first_id + i as u64).to_be_bytes().to_vec(),
                    name: "GET /cart".into(),
                    kind: 2,
                    start_time_unix_nano: t as u64,
                    end_time_unix_nano: (t + ms * 1_000_000 + i % 3 * 1_000_000) as u64,
                    status: failed.then(|| Status {
                        code: 2,
                        ..Default::default()
                    }),
                    ..Default::default()
                }
            })
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_loop_stores_announces_and_resolves_on_its_clock() {
        let first = 170_000 * BUCKET;
        let r = rig(first);
        let mut events = r.handle.subscribe();
        let mut announced = Vec::new();
        for b in 0..=40 {
            let start = first + b * BUCKET;
            let spans = cart(
                start,
                b as u64 * 100 + 1,
                if b == 40 { 900 } else { 50 },
                b == 40,
            );
            r.ingest
                .traces(&service_spans("shop", spans))
                .await
                .unwrap();
            let cycle = r.handle.advance(start + 2 * BUCKET).await.unwrap();
            assert_eq!(cycle.at_ns, start + 2 * BUCKET);
            announced.extend(cycle.events);
        }
        let opened = announced.iter().find_map(|e| match e {
            Event::Incident {
                change: Change::Opened(id),
                incident,
                ..
            } => Some((*id, Arc::clone(incident))),
            _ => None,
        });
        let (id, incident) = opened.unwrap_or_else(|| panic!("no incident: {announced:#?}"));
        assert_eq!(incident.top().unwrap().service, "shop");
        assert!(
            announced
                .iter()
                .all(|e| e.at_ns() > first && e.at_ns() <= first + 42 * BUCKET)
        );
        // Every event went to the subscriber too, in the same order.
        for e in &announced {
            let got = events.try_recv().unwrap();
            assert_eq!(got.summary(), e.summary());
        }
        // The anomalies are stored as rows of the `anomalies` table.
        let rows = r
            .query
            .query("SELECT count(*) FROM anomalies WHERE service_name = 'shop'")
            .await
            .unwrap();
        let count = arrow::array::AsArray::as_primitive::<arrow::datatypes::Int64Type>(
            rows.batches[0].column(0),
        )
        .value(0);
        assert!(count > 0);
        // Quiet time on the same clock resolves it; the store has the final state.
        let quiet = r.handle.advance(first + 90 * BUCKET).await.unwrap();
        assert!(
            quiet.events.iter().any(|e| matches!(
                e,
                Event::Incident { change: Change::Resolved(i), .. } if *i == id
            )),
            "{:#?}",
            quiet.events
        );
        let stored = r.incidents.get(id).unwrap().unwrap();
        assert_eq!(stored["status"], "resolved");
        // Time does not go back.
        assert!(matches!(
            r.handle.advance(first).await,
            Err(HandleError::Backwards { .. })
        ));
        let _ = r.stop.send(true);
        r.task.await.unwrap();
        assert!(
            r._dir.path().join("state.json").exists(),
            "state saved on stop"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_loop_ends_when_its_stop_sender_is_gone() {
        let r = rig(170_000 * BUCKET);
        drop(r.stop);
        tokio::time::timeout(std::time::Duration::from_secs(30), r.task)
            .await
            .expect("the loop stops")
            .unwrap();
        assert!(matches!(
            r.handle.advance(170_001 * BUCKET).await,
            Err(HandleError::Stopped)
        ));
    }

    #[tokio::test]
    async fn a_wall_clock_loop_cannot_be_driven() {
        let (events, _) = broadcast::channel(1);
        let (handle, _requests) = LoopHandle::new(events, None);
        assert!(!handle.is_manual());
        assert!(matches!(
            handle.advance(1).await,
            Err(HandleError::NotManual)
        ));
    }
}
