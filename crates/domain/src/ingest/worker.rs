//! Imports as leased work: the runtime of [`crate::work`] claims, processes, retries,
//! gives up and releases them; this file says what each step means for an import.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::service::{ImportService, ProcessError};
use super::shutdown::Shutdown;
use crate::ports::{Clock, Lease, QueueError};
use crate::work::{
    Backoff, Claim, JitterPercent, LeasedWork, Runtime, WorkError, WorkKind, WorkSettings,
};

/// Imports, as the runtime sees them.
pub struct ImportWork {
    service: Arc<ImportService>,
}

impl ImportWork {
    /// The leased work of this service's queue.
    pub fn new(service: Arc<ImportService>) -> Self {
        Self { service }
    }

    /// How the runtime treats imports: an import that fails unexpectedly (a bug, a
    /// crash, an outage; a bad document is a verdict, not a failure) is retried after
    /// [`super::IngestSettings::retry_backoff`], doubled per attempt and at most a
    /// lease, and marked failed after `max_attempts`.
    pub fn settings(service: &ImportService) -> WorkSettings {
        let s = service.settings();
        WorkSettings {
            max_attempts: s.max_attempts,
            backoff: Backoff::Exponential {
                base: s.retry_backoff,
                max: s.lease,
            },
            jitter: JitterPercent(0),
            idle_poll: s.idle_poll,
        }
    }
}

#[async_trait::async_trait]
impl LeasedWork for ImportWork {
    type Item = Lease;

    fn kind(&self) -> WorkKind {
        WorkKind::Imports
    }

    fn describe(&self, lease: &Lease) -> String {
        lease.import.to_string()
    }

    fn attempt(&self, lease: &Lease) -> u32 {
        lease.attempt
    }

    async fn claim(&self, worker: &str, _: DateTime<Utc>) -> anyhow::Result<Claim<Lease>> {
        Ok(match self.service.claim(worker).await? {
            Some(lease) => Claim::Items(vec![lease]),
            None => Claim::Nothing { next_due: None },
        })
    }

    async fn work(&self, lease: &Lease) -> Result<(), WorkError> {
        match self.service.process(lease).await {
            Ok(_) => Ok(()),
            Err(ProcessError::LeaseLost) => Err(WorkError::LeaseLost),
            Err(e) => Err(WorkError::failed(e)),
        }
    }

    async fn fail(
        &self,
        lease: &Lease,
        retry_at: Option<DateTime<Utc>>,
        reason: &str,
    ) -> anyhow::Result<()> {
        match retry_at {
            Some(at) => self.service.retry_at(lease, at).await?,
            None => self.service.give_up(lease, reason.to_owned()).await?,
        }
        Ok(())
    }

    async fn release(&self, lease: &Lease) -> Result<(), WorkError> {
        match self.service.release(lease).await {
            Ok(()) => Ok(()),
            Err(QueueError::LeaseLost) => Err(WorkError::LeaseLost),
            Err(e) => Err(WorkError::failed(e)),
        }
    }
}

/// Drains the import queue. A process runs several, each under its own name; any
/// number of processes can share one store (the queue's leases keep them apart).
pub struct ImportWorker {
    runtime: Runtime<ImportWork>,
}

impl ImportWorker {
    /// A worker for this service, woken by its [`ImportService::wakeups`].
    pub fn new(service: Arc<ImportService>, clock: Arc<dyn Clock>) -> Self {
        let settings = ImportWork::settings(&service);
        let wakeups = service.wakeups().clone();
        let runtime = Runtime::new(Arc::new(ImportWork::new(service)), clock, wakeups, settings);
        Self { runtime }
    }

    /// Works until `shutdown`, then returns. An import in progress at shutdown is
    /// rolled back and released for another worker; failures are logged and retried,
    /// never ending the loop.
    pub async fn run(&self, name: &str, shutdown: Shutdown) {
        self.runtime.run(name, shutdown).await;
    }
}
