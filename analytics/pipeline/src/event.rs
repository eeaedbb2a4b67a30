//! What the detection loop announces.

use std::sync::Arc;

use scry_detect::Anomaly;
use scry_incident::{Change, Incident};
use serde::Serialize;

/// One announcement of the detection loop, in the order it happened within a cycle: first the
/// cycle's anomalies, then each incident change.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A cycle found anomalies (at least one).
    Anomalies {
        /// Cycle time, UTC ns.
        at_ns: i64,
        /// The anomalies, as stored.
        anomalies: Arc<[Anomaly]>,
    },
    /// An incident opened, took in evidence or resolved.
    Incident {
        /// Cycle time, UTC ns.
        at_ns: i64,
        /// What happened.
        change: Change,
        /// The incident as after the change.
        incident: Arc<Incident>,
    },
}

impl Event {
    /// The incident event of `change`.
    pub fn incident(at_ns: i64, change: Change, incident: Incident) -> Self {
        Self::Incident {
            at_ns,
            change,
            incident: Arc::new(incident),
        }
    }

    /// The event as JSON for the API and for comparing runs: an incident without its evidence
    /// list (only how many anomalies it holds), anomalies in full.
    pub fn summary(&self) -> serde_json::Value {
        match self {
            Self::Anomalies { at_ns, anomalies } => serde_json::json!({
                "event": "anomalies", "at_ns": at_ns, "anomalies": anomalies,
            }),
            Self::Incident {
                at_ns,
                change,
                incident: i,
            } => serde_json::json!({
                "event": "incident", "at_ns": at_ns, "change": change.as_str(), "id": i.id,
                "opened_ns": i.opened_ns, "updated_ns": i.updated_ns,
                "resolved_ns": i.resolved_ns, "services": i.services,
                "anomalies": i.anomalies.len(), "ranking": i.ranking,
            }),
        }
    }

    /// Cycle time of the event, UTC ns.
    pub fn at_ns(&self) -> i64 {
        match self {
            Self::Anomalies { at_ns, .. } | Self::Incident { at_ns, .. } => *at_ns,
        }
    }
}
