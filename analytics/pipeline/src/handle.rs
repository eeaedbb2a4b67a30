//! Driving a running [`DetectionLoop`](crate::DetectionLoop) from elsewhere: subscribing to its
//! events and, on a manual clock, moving time and running a cycle.

use std::sync::Arc;

use scry_collector::{Clock, ManualClock};
use tokio::sync::{Mutex, broadcast, mpsc, oneshot};

use crate::detection::{Cycle, LoopError};
use crate::event::Event;

/// A request for one cycle, answered with its outcome.
pub struct Request {
    pub(crate) reply: oneshot::Sender<Result<Cycle, LoopError>>,
}

/// Why [`LoopHandle::advance`] did not run a cycle.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// The loop runs on the wall clock.
    #[error(
        "the detection loop runs on the wall clock; start the daemon with a manual clock to drive it"
    )]
    NotManual,
    /// Time only moves forward.
    #[error("the clock is at {now_ns} ns; it cannot go back to {to_ns} ns")]
    Backwards {
        /// Where the clock is.
        now_ns: i64,
        /// Where it was asked to go.
        to_ns: i64,
    },
    /// The loop has stopped.
    #[error("the detection loop has stopped")]
    Stopped,
    /// The cycle failed.
    #[error(transparent)]
    Cycle(#[from] LoopError),
}

/// A cloneable handle on a running detection loop.
#[derive(Clone)]
pub struct LoopHandle {
    requests: mpsc::Sender<Request>,
    clock: Option<Arc<ManualClock>>,
    events: broadcast::Sender<Event>,
    /// One driver at a time: setting the clock and running the cycle go together.
    driving: Arc<Mutex<()>>,
}

impl LoopHandle {
    /// A handle and the request queue that [`DetectionLoop::run`](crate::DetectionLoop::run)
    /// reads; `clock` is the loop's clock when it is manual.
    pub fn new(
        events: broadcast::Sender<Event>,
        clock: Option<Arc<ManualClock>>,
    ) -> (Self, mpsc::Receiver<Request>) {
        let (requests, rx) = mpsc::channel(1);
        let handle = Self {
            requests,
            clock,
            events,
            driving: Arc::new(Mutex::new(())),
        };
        (handle, rx)
    }

    /// A new subscription to every event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Whether [`advance`](Self::advance) can drive the loop.
    pub fn is_manual(&self) -> bool {
        self.clock.is_some()
    }

    /// Sets the manual clock to `to_ns` and runs one cycle there.
    pub async fn advance(&self, to_ns: i64) -> Result<Cycle, HandleError> {
        let clock = self.clock.as_ref().ok_or(HandleError::NotManual)?;
        let _driving = self.driving.lock().await;
        let now_ns = clock.now_ns();
        if to_ns < now_ns {
            return Err(HandleError::Backwards { now_ns, to_ns });
        }
        clock.set(to_ns);
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Request { reply })
            .await
            .map_err(|_| HandleError::Stopped)?;
        Ok(answer.await.map_err(|_| HandleError::Stopped)??)
    }
}
