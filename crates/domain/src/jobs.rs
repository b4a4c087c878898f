//! Long-running jobs (DESIGN §10, ADR 33): created through the API, claimed under a
//! lease by the one runtime for leased work, saving a checkpoint (cursor and partial
//! state) every N items or T seconds and keeping the last K. A job whose worker dies is
//! claimed again when its lease lapses and resumes from its latest checkpoint; an
//! operator can pause, resume, cancel it, or restart it from any kept checkpoint.
//!
//! Kinds: `rollup`, an aggregate of a measure by a dimension after every import, read
//! from the dataset's history, kept as a series; `reprocess`, every stored import of a
//! dataset through one contract version, rebuilding its latest state and history;
//! `backfill`, every page of a pull source from its first.

mod backfill;
mod reprocess;
mod rollup;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::datasets::{DatasetError, DatasetService};
use crate::ingest::ImportService;
use crate::model::DatasetName;
use crate::ports::{
    Clock, Job, JobAction, JobError, JobStatus, JobStore, JobView, NewJob, RebuildStore,
    RollupError, RollupPoint, RollupStore,
};
use crate::sources::SourceService;
use crate::work::{
    Backoff, Claim, JitterPercent, LeasedWork, Wakeups, WorkError, WorkKind, WorkSettings,
};

pub use backfill::BackfillSpec;
pub use reprocess::ReprocessSpec;
pub use rollup::RollupSpec;

/// A job as asked for through the API.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum JobSpec {
    /// An aggregate of a measure by a dimension after every import, kept as a series.
    Rollup(RollupSpec),
    /// Every stored import of the dataset, in arrival order, through one contract
    /// version, rebuilding the latest state and history.
    Reprocess(ReprocessSpec),
    /// Every page of a pull source from its first, each saved as an import.
    Backfill(BackfillSpec),
}

impl JobSpec {
    fn kind(&self) -> &'static str {
        match self {
            Self::Rollup(_) => rollup::KIND,
            Self::Reprocess(_) => reprocess::KIND,
            Self::Backfill(_) => backfill::KIND,
        }
    }
}

/// The ports jobs work through.
pub struct JobPorts {
    /// Jobs, leases and checkpoints.
    pub store: Arc<dyn JobStore>,
    /// History in commit order, and rollup series.
    pub rollups: Arc<dyn RollupStore>,
    /// A dataset's derived state cleared and its imports held for a reprocess.
    pub rebuilds: Arc<dyn RebuildStore>,
    /// Processes the imports a reprocess holds; receives a backfill's pages.
    pub imports: Arc<ImportService>,
    /// Pull sources, their adapters and secrets (for a backfill).
    pub sources: Arc<SourceService>,
    /// Checks what a job names against the dataset's current contract.
    pub datasets: Arc<DatasetService>,
    /// Time, and waiting.
    pub clock: Arc<dyn Clock>,
}

/// How jobs run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSettings {
    /// A worker's lease on a job, renewed at every save.
    pub lease: Duration,
    /// A checkpoint is kept after this many items…
    pub checkpoint_items: u64,
    /// …or this long, whichever comes first.
    pub checkpoint_every: Duration,
    /// Checkpoints kept per job.
    pub keep: u32,
    /// Items read at a time.
    pub page: u32,
    /// The safety-net poll of an idle worker.
    pub idle_poll: Duration,
}

impl Default for JobSettings {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(30),
            checkpoint_items: 10_000,
            checkpoint_every: Duration::from_secs(5),
            keep: 5,
            page: 1000,
            idle_poll: Duration::from_secs(5),
        }
    }
}

impl JobSettings {
    /// How the runtime treats jobs: five attempts, a minute apart at most.
    pub fn work(&self) -> WorkSettings {
        WorkSettings {
            max_attempts: 5,
            backoff: Backoff::Exponential {
                base: Duration::from_secs(1),
                max: Duration::from_secs(60),
            },
            jitter: JitterPercent(10),
            idle_poll: self.idle_poll,
        }
    }
}

/// Why a jobs call failed.
#[derive(Debug, thiserror::Error)]
pub enum JobApiError {
    /// The dataset, or a measure or dimension it does not have.
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    /// The dataset has no such job.
    #[error("no such job")]
    NotFound,
    /// A parameter is invalid.
    #[error("{field}: {message}")]
    Invalid {
        /// The parameter.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// The action does not apply to the job as it is.
    #[error("{0}")]
    Conflict(String),
    /// Anything else.
    #[error(transparent)]
    Unexpected(anyhow::Error),
}

impl From<JobError> for JobApiError {
    fn from(e: JobError) -> Self {
        match e {
            JobError::NotFound => Self::NotFound,
            JobError::Conflict(why) => Self::Conflict(why),
            e => Self::Unexpected(e.into()),
        }
    }
}

impl From<RollupError> for JobApiError {
    fn from(e: RollupError) -> Self {
        Self::Unexpected(e.into())
    }
}

/// The jobs use cases.
pub struct JobService {
    ports: JobPorts,
    settings: JobSettings,
    wakeups: Wakeups,
}

impl JobService {
    /// A service over these ports.
    pub fn new(ports: JobPorts, settings: JobSettings) -> Self {
        Self {
            ports,
            settings,
            wakeups: Wakeups::default(),
        }
    }

    /// The same service, waking job workers through `wakeups`.
    pub fn woken_by(mut self, wakeups: Wakeups) -> Self {
        self.wakeups = wakeups;
        self
    }

    /// The settings it runs with.
    pub fn settings(&self) -> &JobSettings {
        &self.settings
    }

    /// Creates a job of `dataset`, queued at once.
    ///
    /// # Errors
    /// See [`JobApiError`].
    pub async fn create(
        &self,
        dataset: &DatasetName,
        spec: JobSpec,
    ) -> Result<JobView, JobApiError> {
        let params = match &spec {
            JobSpec::Rollup(rollup) => {
                rollup.check(&self.ports.datasets, dataset).await?;
                // A series has one author: two jobs of one name would write over
                // each other's points.
                if let Some(taken) = self
                    .ports
                    .store
                    .list(dataset)
                    .await?
                    .iter()
                    .find(|j| rollup_named(j, &rollup.name))
                {
                    return Err(JobApiError::Conflict(format!(
                        "job {} keeps the rollup {:?} ({}): restart it, or choose another name",
                        taken.id,
                        rollup.name,
                        taken.status.as_str()
                    )));
                }
                serde_json::to_value(rollup).map_err(|e| JobApiError::Unexpected(e.into()))?
            }
            JobSpec::Reprocess(reprocess) => {
                reprocess.check(self, dataset).await?;
                serde_json::to_value(reprocess).map_err(|e| JobApiError::Unexpected(e.into()))?
            }
            JobSpec::Backfill(backfill) => {
                backfill.check(self, dataset).await?;
                serde_json::to_value(backfill).map_err(|e| JobApiError::Unexpected(e.into()))?
            }
        };
        let job = self
            .ports
            .store
            .create(&NewJob {
                dataset: dataset.clone(),
                kind: spec.kind().to_owned(),
                params,
            })
            .await
            .map_err(|e| match e {
                JobError::NotFound => JobApiError::Dataset(DatasetError::UnknownDataset),
                e => e.into(),
            })?;
        tracing::info!(%dataset, job = %job.id, kind = %job.kind, params = %job.params, "job created");
        self.wakeups.notify(WorkKind::Jobs);
        Ok(job)
    }

    /// A dataset's jobs, newest first.
    ///
    /// # Errors
    /// See [`JobApiError`].
    pub async fn list(&self, dataset: &DatasetName) -> Result<Vec<JobView>, JobApiError> {
        self.ports.datasets.get(dataset).await?;
        Ok(self.ports.store.list(dataset).await?)
    }

    /// One job.
    ///
    /// # Errors
    /// See [`JobApiError`].
    pub async fn get(&self, dataset: &DatasetName, id: &str) -> Result<JobView, JobApiError> {
        Ok(self.ports.store.get(dataset, id).await?)
    }

    /// Pauses, resumes or cancels a job.
    ///
    /// # Errors
    /// See [`JobApiError`].
    pub async fn act(
        &self,
        dataset: &DatasetName,
        id: &str,
        action: JobAction,
    ) -> Result<JobView, JobApiError> {
        let job = self.ports.store.act(dataset, id, action).await?;
        tracing::info!(%dataset, job = id, ?action, status = job.status.as_str(), "job changed by an operator");
        if action == JobAction::Resume {
            self.wakeups.notify(WorkKind::Jobs);
        }
        // A cancelled reprocess no longer keeps the dataset's imports from import
        // workers.
        if job.kind == reprocess::KIND && action == JobAction::Cancel {
            self.wakeups.notify(WorkKind::Imports);
        }
        Ok(job)
    }

    /// Queues a job to resume from kept checkpoint `n` (0: the beginning).
    ///
    /// # Errors
    /// See [`JobApiError`].
    pub async fn restart(
        &self,
        dataset: &DatasetName,
        id: &str,
        n: u32,
    ) -> Result<JobView, JobApiError> {
        if n > 0 && self.ports.store.get(dataset, id).await?.kind == reprocess::KIND {
            return Err(JobApiError::Conflict(
                "a reprocess restarts from the beginning only (checkpoint 0): the imports it \
                 processed since a checkpoint cannot be taken back one by one"
                    .into(),
            ));
        }
        let job = self.ports.store.restart(dataset, id, n).await?;
        tracing::info!(%dataset, job = id, checkpoint = n, "job restarted from a checkpoint");
        self.wakeups.notify(WorkKind::Jobs);
        Ok(job)
    }

    /// Jobs of every dataset by status.
    ///
    /// # Errors
    /// When the store is unreachable.
    pub async fn counts(&self) -> Result<Vec<(JobStatus, u64)>, JobApiError> {
        Ok(self.ports.store.counts().await?)
    }

    /// A rollup's series in `[from, to)`, at most `limit` points.
    ///
    /// # Errors
    /// See [`JobApiError`].
    pub async fn series(
        &self,
        dataset: &DatasetName,
        rollup: &str,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        limit: u32,
    ) -> Result<Vec<RollupPoint>, JobApiError> {
        self.ports.datasets.get(dataset).await?;
        let points = self
            .ports
            .rollups
            .points(dataset, rollup, from, to, limit)
            .await?;
        if points.is_empty() {
            let jobs = self.ports.store.list(dataset).await?;
            if !jobs.iter().any(|j| rollup_named(j, rollup)) {
                return Err(JobApiError::NotFound);
            }
        }
        Ok(points)
    }
}

/// Whether `job` keeps the rollup `name`.
fn rollup_named(job: &JobView, name: &str) -> bool {
    job.kind == rollup::KIND && job.params.get("name").and_then(|n| n.as_str()) == Some(name)
}

/// Jobs as a kind of leased work: a claim takes one job, and its work runs the job to
/// its end (or until an operator stops it), saving checkpoints as it goes.
pub struct JobWork {
    service: Arc<JobService>,
}

impl JobWork {
    /// The work of `service`'s jobs.
    pub fn new(service: Arc<JobService>) -> Self {
        Self { service }
    }
}

/// How a job's run ended.
pub(crate) enum Outcome {
    /// Done, with the items it did.
    Done(u64),
    /// At its end for now, with the items it did: it runs again at this time.
    Again(u64, DateTime<Utc>),
    /// An operator paused or cancelled it (its lease is ended).
    Stopped,
    /// It cannot run as asked (retrying would not help).
    Refused(String),
}

/// A job's worker saving what it did: the checkpoint when one is due.
pub(crate) struct Saver<'a> {
    service: &'a JobService,
    job: &'a Job,
    last_checkpoint: (u64, DateTime<Utc>),
    /// Whether the job keeps a checkpoint at all.
    checkpointed: bool,
}

impl<'a> Saver<'a> {
    fn new(service: &'a JobService, job: &'a Job) -> Self {
        Self {
            service,
            job,
            last_checkpoint: (job.done, service.ports.clock.now()),
            checkpointed: job.checkpoint.is_some(),
        }
    }

    /// Saves progress without a checkpoint (renewing the lease); `false` when an
    /// operator stopped the job.
    async fn progress(&mut self, done: u64, total: Option<u64>) -> Result<bool, WorkError> {
        self.store(done, total, None).await
    }

    /// Saves progress and `checkpoint`; whether to go on.
    async fn store(
        &self,
        done: u64,
        total: Option<u64>,
        checkpoint: Option<serde_json::Value>,
    ) -> Result<bool, WorkError> {
        let s = self.service;
        let progress = crate::ports::JobProgress {
            done,
            total,
            checkpoint,
        };
        let directive = s
            .ports
            .store
            .save(self.job, &progress, s.settings.lease, s.settings.keep)
            .await
            .map_err(lease_or_failed)?;
        Ok(self.go_on(directive, done))
    }

    fn go_on(&self, directive: crate::ports::Directive, done: u64) -> bool {
        match directive {
            crate::ports::Directive::Continue => true,
            crate::ports::Directive::Stop(status) => {
                tracing::info!(job = %self.job.id, done, status = status.as_str(), "job stopped by an operator");
                false
            }
        }
    }

    /// Saves progress, with `state` as a checkpoint when one is due (or `force`d), and
    /// only when items were done since the last (a checkpoint like the last would
    /// push a useful one out); `false` when an operator stopped the job.
    async fn save(
        &mut self,
        done: u64,
        total: Option<u64>,
        state: impl FnOnce() -> serde_json::Value,
        force: bool,
    ) -> Result<bool, WorkError> {
        let s = self.service;
        let now = s.ports.clock.now();
        let (at_done, at) = self.last_checkpoint;
        let elapsed = (now - at).to_std().unwrap_or_default();
        let moved = done > at_done || !self.checkpointed;
        let due = moved
            && (force
                || done.saturating_sub(at_done) >= s.settings.checkpoint_items
                || elapsed >= s.settings.checkpoint_every);
        let go_on = self.store(done, total, due.then(state)).await?;
        if due {
            self.last_checkpoint = (done, now);
            self.checkpointed = true;
            tracing::debug!(job = %self.job.id, done, "checkpoint saved");
        }
        Ok(go_on)
    }
}

/// A job's parameters as its kind reads them, and its latest checkpoint's state (the
/// default before the first); the reason to refuse the job when either is unreadable.
pub(crate) fn read_job<P, S>(job: &Job) -> Result<(P, S), Outcome>
where
    P: serde::de::DeserializeOwned,
    S: serde::de::DeserializeOwned + Default,
{
    let params = serde_json::from_value(job.params.clone())
        .map_err(|e| Outcome::Refused(format!("unreadable parameters: {e}")))?;
    let state = match &job.checkpoint {
        None => S::default(),
        Some(c) => serde_json::from_value(c.clone())
            .map_err(|e| Outcome::Refused(format!("unreadable checkpoint: {e}")))?,
    };
    Ok((params, state))
}

fn lease_or_failed(e: JobError) -> WorkError {
    match e {
        JobError::LeaseLost => WorkError::LeaseLost,
        e => WorkError::failed(e),
    }
}

#[async_trait::async_trait]
impl LeasedWork for JobWork {
    type Item = Job;

    fn kind(&self) -> WorkKind {
        WorkKind::Jobs
    }

    fn describe(&self, item: &Job) -> String {
        format!("{} job {} of {}", item.kind, item.id, item.dataset)
    }

    fn attempt(&self, item: &Job) -> u32 {
        item.attempt
    }

    async fn claim(&self, worker: &str, _: DateTime<Utc>) -> anyhow::Result<Claim<Job>> {
        let lease = self.service.settings.lease;
        Ok(match self.service.ports.store.claim(worker, lease).await? {
            Some(job) => Claim::Items(vec![job]),
            None => Claim::Nothing { next_due: None },
        })
    }

    async fn work(&self, job: &Job) -> Result<(), WorkError> {
        let s = &self.service;
        tracing::info!(dataset = %job.dataset, job = %job.id, kind = %job.kind, attempt = job.attempt,
            from = job.done, resumed = job.checkpoint.is_some(), "job started");
        let outcome = match job.kind.as_str() {
            rollup::KIND => rollup::run(s, job, Saver::new(s, job)).await?,
            reprocess::KIND => reprocess::run(s, job, Saver::new(s, job)).await?,
            backfill::KIND => backfill::run(s, job, Saver::new(s, job)).await?,
            other => Outcome::Refused(format!("this build does not run {other} jobs")),
        };
        let store = &s.ports.store;
        match outcome {
            Outcome::Done(done) => {
                store
                    .finish(job, done, None)
                    .await
                    .map_err(lease_or_failed)?;
                tracing::info!(dataset = %job.dataset, job = %job.id, done, "job completed");
            }
            Outcome::Again(done, at) => {
                store.snooze(job, done, at).await.map_err(lease_or_failed)?;
                tracing::info!(dataset = %job.dataset, job = %job.id, done, next_run = %at,
                    "job caught up; it runs again later");
            }
            Outcome::Stopped => {}
            Outcome::Refused(reason) => {
                // The job cannot run as asked: retrying would not help.
                tracing::warn!(dataset = %job.dataset, job = %job.id, %reason, "job failed");
                store
                    .finish(job, job.done, Some(reason))
                    .await
                    .map_err(lease_or_failed)?;
            }
        }
        Ok(())
    }

    async fn fail(
        &self,
        job: &Job,
        retry_at: Option<DateTime<Utc>>,
        reason: &str,
    ) -> anyhow::Result<()> {
        let store = &self.service.ports.store;
        match retry_at {
            Some(at) => store.retry(job, at, reason).await?,
            None => store.finish(job, job.done, Some(reason.to_owned())).await?,
        }
        Ok(())
    }

    async fn release(&self, job: &Job) -> Result<(), WorkError> {
        self.service
            .ports
            .store
            .release(job)
            .await
            .map_err(lease_or_failed)
    }
}
