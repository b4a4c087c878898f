//! The import worker loop: claim, process under the lease, repeat; idle when the queue
//! is empty; give the import back on shutdown.

use std::sync::Arc;

use futures_lite::future;

use super::service::{ImportService, ProcessError};
use super::shutdown::Shutdown;
use crate::ports::{Clock, Lease, QueueError};

/// Drains the import queue. A process runs several, each under its own name; any
/// number of processes can share one store (the queue's leases keep them apart).
pub struct ImportWorker {
    service: Arc<ImportService>,
    clock: Arc<dyn Clock>,
}

impl ImportWorker {
    /// A worker for this service.
    pub fn new(service: Arc<ImportService>, clock: Arc<dyn Clock>) -> Self {
        Self { service, clock }
    }

    /// Works until `shutdown`, then returns. An import in progress at shutdown is
    /// rolled back and released for another worker; failures are logged and retried
    /// after the idle delay, never ending the loop.
    pub async fn run(&self, name: &str, shutdown: Shutdown) {
        tracing::info!(worker = name, "import worker started");
        while !shutdown.is_triggered() {
            match self.service.claim(name).await {
                Ok(Some(lease)) => self.work(name, lease, &shutdown).await,
                Ok(None) => self.idle(&shutdown).await,
                Err(e) => {
                    tracing::error!(worker = name, error = %e, "claiming an import failed");
                    self.idle(&shutdown).await;
                }
            }
        }
        tracing::info!(worker = name, "import worker stopped");
    }

    async fn work(&self, name: &str, lease: Lease, shutdown: &Shutdown) {
        let processing = async { Some(self.service.process(&lease).await) };
        let stopping = async {
            shutdown.wait().await;
            None
        };
        match future::or(processing, stopping).await {
            Some(Ok(_)) => {}
            Some(Err(ProcessError::LeaseLost)) => {
                tracing::warn!(worker = name, import = %lease.import, "lease lost: another worker has the import");
            }
            Some(Err(e)) => self.failed(name, &lease, &e, shutdown).await,
            None => match self.service.release(&lease).await {
                Ok(()) => {
                    tracing::info!(worker = name, import = %lease.import, "shutdown: import rolled back and released");
                }
                // Stopped between its commit and the answer: the import is done.
                Err(QueueError::LeaseLost) => {
                    tracing::info!(worker = name, import = %lease.import, "shutdown: the import had already finished");
                }
                Err(e) => {
                    tracing::warn!(worker = name, import = %lease.import, error = %e, "shutdown: releasing the import failed; its lease will expire");
                }
            },
        }
    }

    /// An unexpected failure (not a bad document: that is a verdict) counts as an
    /// attempt. The import is retried after a back-off that doubles with each attempt
    /// (not a whole lease later); after `max_attempts` it is marked failed, so a
    /// poison document cannot keep workers busy forever.
    async fn failed(&self, name: &str, lease: &Lease, e: &ProcessError, shutdown: &Shutdown) {
        let max = self.service.settings().max_attempts;
        if lease.attempt < max {
            match self.service.retry_later(lease).await {
                Ok(wait) => tracing::error!(worker = name, import = %lease.import,
                    attempt = lease.attempt, max, retry_in_ms = wait.as_millis(), error = %format!("{e:#}"),
                    "processing failed; the import is retried after a back-off"),
                Err(renew) => {
                    tracing::error!(worker = name, import = %lease.import, attempt = lease.attempt, max,
                        error = %format!("{e:#}"), renew_error = %renew,
                        "processing failed; the import is retried when its lease expires");
                    self.idle(shutdown).await;
                }
            }
            return;
        }
        tracing::error!(worker = name, import = %lease.import, attempt = lease.attempt, error = ?e,
            "processing failed on every attempt; marking the import failed");
        let reason = format!(
            "processing failed {} times; the last error: {e:#}",
            lease.attempt
        );
        if let Err(e) = self.service.give_up(lease, reason).await {
            tracing::error!(worker = name, import = %lease.import, error = ?e, "could not mark the import failed");
            self.idle(shutdown).await;
        }
    }

    async fn idle(&self, shutdown: &Shutdown) {
        let wait = self.clock.sleep(self.service.settings().idle_poll);
        future::or(wait, shutdown.wait()).await;
    }
}
