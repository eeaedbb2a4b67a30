//! scry's one detection loop. [`DetectionLoop`] owns a detection cycle end to end: it scores the
//! closed buckets ([`scry_detect::Engine`]), stores the anomalies, reads the service graph
//! ([`graph`]), updates incidents ([`scry_incident::Tracker`]), persists their changes
//! ([`scry_incident::IncidentStore`]) and publishes [`Event`]s that any number of subscribers
//! read. `scry serve` runs it on the wall clock; `scry eval rca` and replays run the very same
//! type on a manual clock that they advance ([`LoopHandle::advance`]).

pub mod detection;
pub mod event;
pub mod graph;
pub mod handle;

pub use detection::{Cycle, DetectionLoop, LoopError, LoopParts};
pub use event::Event;
pub use graph::{GRAPH_WINDOW_NS, load_graph};
pub use handle::{HandleError, LoopHandle};
