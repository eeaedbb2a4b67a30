//! Incidents in the running daemon: each detection cycle's anomalies go through the [`Tracker`]
//! with the current service graph, and every change is stored and announced.

use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::Int64Type;

use super::graph::edges_sql;
use super::{Change, Edge, Graph, IncidentConfig, IncidentStore, StoreError, Tracker};
use crate::QueryService;
use crate::anomaly::Anomaly;

/// The service graph of spans since `since_ns`, read with [`edges_sql`]; empty if the query
/// fails (grouping then falls back to same-service and shared-trace links).
pub async fn load_graph(query: &QueryService, since_ns: i64) -> Graph {
    match query.query(&edges_sql(since_ns)).await {
        Ok(out) => {
            let mut edges = Vec::new();
            for b in &out.batches {
                let (Some(caller), Some(callee)) = (
                    b.column(0).as_string_opt::<i32>(),
                    b.column(1).as_string_opt::<i32>(),
                ) else {
                    continue;
                };
                let calls = b.column(2).as_primitive_opt::<Int64Type>();
                let errors = b.column(3).as_primitive_opt::<Int64Type>();
                let n = |c: Option<&arrow::array::Int64Array>, i: usize| {
                    c.filter(|c| c.is_valid(i))
                        .map_or(0.0, |c| c.value(i) as f64)
                };
                for i in 0..b.num_rows() {
                    edges.push(Edge {
                        caller: caller.value(i).to_string(),
                        callee: callee.value(i).to_string(),
                        calls: n(calls, i),
                        errors: n(errors, i),
                    });
                }
            }
            Graph::from_edges(&edges)
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not read the service graph");
            Graph::default()
        }
    }
}

/// How far back the graph is read when anomalies arrive, ns.
pub const GRAPH_WINDOW_NS: i64 = 15 * 60 * 1_000_000_000;

/// The daemon's incident tracking.
pub struct Incidents {
    tracker: Tracker,
    store: Arc<IncidentStore>,
    query: Arc<QueryService>,
}

impl Incidents {
    /// Continues the open incidents in `store`.
    pub fn open(
        config: IncidentConfig,
        store: Arc<IncidentStore>,
        query: Arc<QueryService>,
    ) -> Result<Self, StoreError> {
        let open = store.open_incidents()?;
        if !open.is_empty() {
            tracing::info!(open = open.len(), "continuing open incidents");
        }
        let tracker = Tracker::restore(config, store.last_id()?, open);
        Ok(Self {
            tracker,
            store,
            query,
        })
    }

    /// Folds in one cycle's anomalies at `now_ns`; stores and logs every change.
    pub async fn update(&mut self, now_ns: i64, anomalies: Vec<Anomaly>) {
        if anomalies.is_empty() && self.tracker.idle() {
            return;
        }
        let graph = if anomalies.is_empty() {
            Graph::default()
        } else {
            load_graph(&self.query, now_ns - GRAPH_WINDOW_NS).await
        };
        for (change, incident) in self.tracker.update(now_ns, anomalies, &graph) {
            if let Err(e) = self.store.record(change, &incident) {
                tracing::warn!(error = %e, incident = incident.id, "could not store incident change");
            }
            let top = incident.top().map(|c| (c.service.clone(), c.score));
            match change {
                Change::Opened(id) | Change::Resolved(id) => tracing::info!(
                    incident = id,
                    change = change.as_str(),
                    services = ?incident.services,
                    top_root_cause = ?top,
                    "incident {}", change.as_str()
                ),
                Change::Updated(id) => {
                    tracing::debug!(incident = id, top_root_cause = ?top, "incident updated")
                }
            }
        }
    }
}
