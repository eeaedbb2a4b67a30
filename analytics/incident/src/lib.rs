//! Incidents: anomalies grouped by time and by the service graph, with ranked root causes.
//!
//! The [`Tracker`] takes each cycle's anomalies and the current [`Graph`]. An anomaly joins an
//! open incident when it comes within `merge_gap` of the incident's last evidence and its service
//! is in the incident, next to one of its services in the graph, or shares a trace with it;
//! otherwise it waits as pending. Pending anomalies that are connected the same way open an
//! incident once they span `open_series` distinct series with one scoring at least `open_score`
//! (one odd value is not an incident). An incident resolves after `resolve_after` without new
//! evidence. Every change re-ranks the incident's root-cause candidates ([`rank`](mod@rank)); the
//! [`IncidentStore`] keeps incidents and their timelines in SQLite.

pub mod graph;
pub mod rank;
pub mod store;
pub mod tracker;

pub use graph::{Edge, Graph, edges_sql};
pub use rank::{Candidate, RankConfig, rank, rank_with};
pub use store::{IncidentStore, StoreError};
pub use tracker::{Change, Incident, IncidentConfig, Tracker};
