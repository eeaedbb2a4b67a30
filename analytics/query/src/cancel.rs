//! Query cancellation that works even while operators never yield.
//!
//! Dropping a DataFusion stream stops a query only at its next await point, and a plan over
//! in-memory data may compute for minutes without one. So every scan is wrapped in a
//! [`cancellable`] node that checks the query's [`CancelFlag`] on every batch it hands upward: once
//! the flag is set the scan fails, and the error ends every operator above it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use datafusion::error::DataFusionError;
use datafusion::physical_plan::ExecutionPlan;

use crate::map_exec::{BatchFn, MapExec};

/// Set when a query must stop; carried to scans as a session config extension.
#[derive(Debug, Default)]
pub struct CancelFlag(AtomicBool);

impl CancelFlag {
    /// Asks every scan of the query to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether the query was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Wraps `input` in a scan that fails as soon as `flag` is set.
pub fn cancellable(input: Arc<dyn ExecutionPlan>, flag: Arc<CancelFlag>) -> Arc<dyn ExecutionPlan> {
    let check: BatchFn = Arc::new(move |batch| {
        if flag.is_cancelled() {
            Err(DataFusionError::Execution("query cancelled".into()))
        } else {
            batch
        }
    });
    Arc::new(MapExec::new("CancellableExec", input, check))
}
