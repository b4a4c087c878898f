use std::time::Duration;

/// A long-running job under a lease, with its latest checkpoint (DESIGN §10).
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// Its id.
    pub id: String,
    /// `reprocess`, `rollup` or `backfill`.
    pub kind: String,
    /// Its parameters (an opaque JSON payload).
    pub params: serde_json::Value,
    /// The latest checkpoint (an opaque JSON payload), `None` before the first.
    pub checkpoint: Option<serde_json::Value>,
    /// The lease token of the current holder.
    pub lease_token: String,
}

/// Errors of the job store.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The lease lapsed; another worker may hold the job.
    #[error("lease lost")]
    LeaseLost,
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Jobs, leases and checkpoints.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait::async_trait]
pub trait JobStore: Send + Sync {
    /// Claims a runnable job (new, or with an expired lease) for `lease`.
    ///
    /// # Errors
    /// - `Unexpected` only; `Ok(None)` when none is runnable.
    async fn claim(&self, worker: &str, lease: Duration) -> Result<Option<Job>, JobError>;

    /// Saves a checkpoint and renews the lease, atomically; the store keeps the last K.
    ///
    /// # Errors
    /// - `LeaseLost` when the lease lapsed (the checkpoint is not saved).
    async fn checkpoint(
        &self,
        job: &Job,
        checkpoint: &serde_json::Value,
        lease: Duration,
    ) -> Result<(), JobError>;

    /// Marks the job done.
    ///
    /// # Errors
    /// - `LeaseLost` when the lease lapsed.
    async fn complete(&self, job: &Job) -> Result<(), JobError>;
}
