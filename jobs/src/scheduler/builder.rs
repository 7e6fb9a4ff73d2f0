//! [`SchedulerBuilder`]: a scheduler's clock, grace period and last-run
//! store.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;

use super::store::{DynStore, LastRunStore};
use super::{Inner, JobScheduler, State};
use crate::clock::Clock;

/// Builds a [`JobScheduler`].
pub struct SchedulerBuilder {
    clock: Clock,
    grace: Duration,
    store: Option<Arc<dyn DynStore>>,
}

impl SchedulerBuilder {
    /// The defaults: the system clock, a one-minute grace period, no store.
    pub(super) fn new() -> Self {
        SchedulerBuilder {
            clock: Clock::system(),
            grace: Duration::from_secs(60),
            store: None,
        }
    }

    /// Where the scheduler reads the time (default: the system clock). Use
    /// [`Clock::tokio`] in tests with `tokio::time::pause()`.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// How late an occurrence may be handled and still count as on time
    /// rather than missed (default one minute). See
    /// [`MissedRuns`](crate::MissedRuns).
    pub fn grace_period(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Remembers last runs in `store`, so that a restarted scheduler catches
    /// up on what it missed (see [`LastRunStore`]).
    pub fn last_run_store(mut self, store: impl LastRunStore) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// The scheduler.
    pub fn build(self) -> JobScheduler {
        JobScheduler {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                changed: Notify::new(),
                running: AtomicBool::new(false),
                clock: self.clock,
                grace: chrono::Duration::from_std(self.grace).unwrap_or(chrono::Duration::MAX),
                store: self.store,
            }),
        }
    }
}
