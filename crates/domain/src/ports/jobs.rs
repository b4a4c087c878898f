//! Long-running jobs (DESIGN §10, ADR 33): a job is a row with a lease and the last K
//! checkpoints; rollups keep their series beside it.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::ports::Lease;
use crate::{ContractVersion, DatasetName, ImportId, Record};

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Waiting for a worker (new, resumed, restarted, or given back at shutdown).
    Queued,
    /// A worker holds it (or held it: a lapsed lease makes it claimable again).
    Running,
    /// Paused by an operator: nobody claims it until it is resumed.
    Paused,
    /// Cancelled by an operator: it never runs again unless restarted.
    Cancelled,
    /// Done.
    Completed,
    /// Given up after its attempts, with the reason.
    Failed,
}

impl JobStatus {
    /// Its name in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Cancelled => "cancelled",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }

    /// The status a stored name stands for.
    pub fn parse(name: &str) -> Option<Self> {
        [
            Self::Queued,
            Self::Running,
            Self::Paused,
            Self::Cancelled,
            Self::Completed,
            Self::Failed,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }
}

/// A job to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    /// The dataset it works on.
    pub dataset: DatasetName,
    /// Its kind (`rollup`, …).
    pub kind: String,
    /// Its parameters, as the kind reads them.
    pub params: serde_json::Value,
}

/// A kept checkpoint, without its state.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointMark {
    /// Its number, 1 for the first (0 stands for "the beginning").
    pub n: u32,
    /// Items done when it was saved.
    pub done: u64,
    /// When it was saved.
    pub at: DateTime<Utc>,
}

/// A job as operators see it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobView {
    /// Its id.
    pub id: String,
    /// The dataset it works on.
    pub dataset: DatasetName,
    /// Its kind.
    pub kind: String,
    /// Its parameters.
    pub params: serde_json::Value,
    /// Where it is.
    pub status: JobStatus,
    /// Items done (as of the latest checkpoint or progress report).
    pub done: u64,
    /// Items in all, when known.
    pub total: Option<u64>,
    /// Why it failed, when it did.
    pub error: Option<String>,
    /// The worker holding its lease, while one does.
    pub held_by: Option<String>,
    /// Times it was claimed since it last made progress (a save with more items done
    /// counts the claim that made it as the first).
    pub attempts: u32,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When its current run started (claimed from `queued`), if it has.
    pub started_at: Option<DateTime<Utc>>,
    /// Items done when its current run started.
    pub started_done: u64,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// When it completed, failed or was cancelled.
    pub finished_at: Option<DateTime<Utc>>,
    /// When a queued job may be taken (a retry's or a repeating job's next run).
    pub due_at: DateTime<Utc>,
    /// The checkpoints kept, oldest first.
    pub checkpoints: Vec<CheckpointMark>,
}

/// A claimed job: what its worker needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// Its id.
    pub id: String,
    /// The dataset it works on.
    pub dataset: DatasetName,
    /// Its kind.
    pub kind: String,
    /// Its parameters.
    pub params: serde_json::Value,
    /// The latest checkpoint's state, `None` before the first.
    pub checkpoint: Option<serde_json::Value>,
    /// Items done at that checkpoint.
    pub done: u64,
    /// The worker holding it.
    pub worker: String,
    /// The lease token of this claim.
    pub lease_token: String,
    /// Times it was claimed since it last made progress, this claim included.
    pub attempt: u32,
}

/// What a job's worker saves.
#[derive(Debug, Clone, PartialEq)]
pub struct JobProgress {
    /// Items done.
    pub done: u64,
    /// Items in all, when known.
    pub total: Option<u64>,
    /// The checkpoint to keep (cursor and partial state); `None` only reports progress
    /// and renews the lease.
    pub checkpoint: Option<serde_json::Value>,
}

/// What the store answers a worker that saved its progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Directive {
    /// Go on.
    Continue,
    /// An operator paused or cancelled the job: stop now (the lease is ended).
    Stop(JobStatus),
}

/// What an operator asks of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobAction {
    /// Stop at the next checkpoint and wait.
    Pause,
    /// Queue a paused job again.
    Resume,
    /// Stop for good.
    Cancel,
}

impl JobAction {
    /// What the action makes of a job in `status`: the status it takes (`None` when it
    /// has it already), or why the action does not apply.
    ///
    /// # Errors
    /// The reason, naming the status, for a `409`.
    pub fn target(self, status: JobStatus) -> Result<Option<JobStatus>, String> {
        use JobStatus::{Cancelled, Paused, Queued, Running};
        let (from, to, what): (&[JobStatus], _, _) = match self {
            Self::Pause => (&[Queued, Running], Paused, "paused"),
            Self::Resume => (&[Paused], Queued, "resumed"),
            Self::Cancel => (&[Queued, Running, Paused], Cancelled, "cancelled"),
        };
        if status == to {
            return Ok(None);
        }
        if from.contains(&status) {
            return Ok(Some(to));
        }
        Err(format!(
            "a {} job cannot be {what}; restart it from a checkpoint to run it again",
            status.as_str()
        ))
    }
}

/// Why a job cannot be restarted while a worker holds it.
pub const JOB_HELD: &str = "a worker holds the job: pause it and wait for it to stop (at its \
    next save, within seconds) before restarting";

/// Errors of the job store.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// No such job (or checkpoint).
    #[error("not found")]
    NotFound,
    /// The action does not apply to the job as it is (the reason names its status).
    #[error("{0}")]
    Conflict(String),
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
    /// Creates a queued job.
    ///
    /// # Errors
    /// - `NotFound` when the dataset does not exist.
    async fn create(&self, job: &NewJob) -> Result<JobView, JobError>;

    /// One job.
    ///
    /// # Errors
    /// - `NotFound` when the dataset has no such job.
    async fn get(&self, dataset: &DatasetName, id: &str) -> Result<JobView, JobError>;

    /// A dataset's jobs, newest first.
    ///
    /// # Errors
    /// - `Unexpected` only.
    async fn list(&self, dataset: &DatasetName) -> Result<Vec<JobView>, JobError>;

    /// Jobs by status, across datasets (the management API's queue depths).
    ///
    /// # Errors
    /// - `Unexpected` only.
    async fn counts(&self) -> Result<Vec<(JobStatus, u64)>, JobError>;

    /// Claims a runnable job (queued, or running under a lapsed lease) for `lease`,
    /// oldest first; it becomes `running`.
    ///
    /// # Errors
    /// - `Unexpected` only; `Ok(None)` when none is runnable.
    async fn claim(&self, worker: &str, lease: Duration) -> Result<Option<Job>, JobError>;

    /// Saves progress (and a checkpoint, keeping the last `keep`) and renews the
    /// lease, atomically; answers whether to go on.
    ///
    /// # Errors
    /// - `LeaseLost` when the lease lapsed or was taken (nothing is saved).
    async fn save(
        &self,
        job: &Job,
        progress: &JobProgress,
        lease: Duration,
        keep: u32,
    ) -> Result<Directive, JobError>;

    /// Ends the job: `completed` with no error, `failed` with one.
    ///
    /// # Errors
    /// - `LeaseLost` when the lease lapsed or was taken.
    async fn finish(&self, job: &Job, done: u64, error: Option<String>) -> Result<(), JobError>;

    /// A run that reached its end and goes on at `at` (a repeating job): queued, due
    /// then, its checkpoints kept and its attempts cleared.
    ///
    /// # Errors
    /// - `LeaseLost` when the lease lapsed or was taken.
    async fn snooze(&self, job: &Job, done: u64, at: DateTime<Utc>) -> Result<(), JobError>;

    /// A failed attempt to be tried again at `at`: the lease ends and the job is
    /// queued, claimable from then.
    ///
    /// # Errors
    /// - `LeaseLost` when the lease lapsed or was taken.
    async fn retry(&self, job: &Job, at: DateTime<Utc>, reason: &str) -> Result<(), JobError>;

    /// Gives the job back untouched (shutdown): queued, the claim not counted.
    ///
    /// # Errors
    /// - `LeaseLost` when the lease lapsed or was taken.
    async fn release(&self, job: &Job) -> Result<(), JobError>;

    /// Pauses, resumes or cancels a job. A worker holding it stops at its next save.
    ///
    /// # Errors
    /// - `NotFound`; `Conflict` when the action does not apply to its status.
    async fn act(
        &self,
        dataset: &DatasetName,
        id: &str,
        action: JobAction,
    ) -> Result<JobView, JobError>;

    /// Goes back to kept checkpoint `n` (0: the beginning): later checkpoints are
    /// dropped and the job is queued to resume from there.
    ///
    /// # Errors
    /// - `NotFound` (the job, or a checkpoint it does not keep); `Conflict` while a
    ///   worker holds it (pause it first).
    async fn restart(&self, dataset: &DatasetName, id: &str, n: u32) -> Result<JobView, JobError>;
}

/// A change of a record, read in the order changes were committed.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordChange {
    /// Its position in the dataset's history.
    pub seq: i64,
    /// The import that made it.
    pub import: ImportId,
    /// When it was committed.
    pub at: DateTime<Utc>,
    /// The record as it became; for a deletion, the state it had.
    pub record: Record,
    /// The record as it was before, `None` when the change created it (a key
    /// created again after a deletion included). `None` for a deletion.
    pub previous: Option<Record>,
    /// The change deleted the key's record (ADR 40).
    pub deleted: bool,
}

/// A point of a rollup's series: a group's aggregate as one import left it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RollupPoint {
    /// The import after which the group had this aggregate.
    pub import: ImportId,
    /// When that import committed.
    pub at: DateTime<Utc>,
    /// The position of the import's last change of the group (orders the series).
    #[serde(skip)]
    pub seq: i64,
    /// The group (the dimension's value; empty for records without it).
    pub group: String,
    /// Records in the group.
    pub count: u64,
    /// Sum of the measure.
    pub sum: f64,
    /// Mean of the measure (`None` for an empty group).
    pub mean: Option<f64>,
    /// Population standard deviation (`None` for an empty group).
    pub stddev: Option<f64>,
}

/// Errors of the history and rollup store.
#[derive(Debug, thiserror::Error)]
pub enum RollupError {
    /// An import of the dataset is being written: changes after the ones read may
    /// still commit before them (PostgreSQL); try again shortly.
    #[error("an import of the dataset is being written")]
    Busy,
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// A dataset's history in commit order, and the series rollups keep.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait::async_trait]
pub trait RollupStore: Send + Sync {
    /// Up to `limit` changes of `dataset` after position `after`, oldest first.
    ///
    /// # Errors
    /// - `Busy` when a change not yet committed could come before the last one read.
    async fn changes(
        &self,
        dataset: &DatasetName,
        after: i64,
        limit: u32,
    ) -> Result<Vec<RecordChange>, RollupError>;

    /// How many changes the dataset's history holds after `after`.
    ///
    /// # Errors
    /// - `Unexpected` only.
    async fn count_changes(&self, dataset: &DatasetName, after: i64) -> Result<u64, RollupError>;

    /// Saves points of a rollup, replacing any with the same import and group.
    ///
    /// # Errors
    /// - `Unexpected` only.
    async fn save_points(
        &self,
        dataset: &DatasetName,
        rollup: &str,
        points: &[RollupPoint],
    ) -> Result<(), RollupError>;

    /// A rollup's points in `[from, to)`, in commit order, at most `limit`.
    ///
    /// # Errors
    /// - `Unexpected` only.
    async fn points(
        &self,
        dataset: &DatasetName,
        rollup: &str,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        limit: u32,
    ) -> Result<Vec<RollupPoint>, RollupError>;
}

/// Errors of a dataset's rebuild.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    /// An import of the dataset is being processed (or, for a held import, still
    /// processed by a worker whose lease has not lapsed); try again shortly.
    #[error("an import of the dataset is being processed")]
    Busy,
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// What a `reprocess` job asks of the store: a dataset's derived state cleared, and its
/// imports processed again in arrival order by the job alone (ADR 34).
///
/// While a `reprocess` job of a dataset is queued, running or paused, the import queue
/// ([`crate::ports::ImportQueue::claim`]) hands out none of the dataset's imports: the
/// job processes the ones it holds, one at a time, and imports received meanwhile wait
/// for it to end. An import held for a job is written without events and without
/// callback timers (its changes were announced when it first arrived), whoever
/// processes it.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait::async_trait]
pub trait RebuildStore: Send + Sync {
    /// In one transaction: clears the dataset's latest state, history, identity
    /// references and conflicts (its revision moves on, its record count is 0); drops
    /// its rollups' points and queues those rollups again from the beginning (unless
    /// cancelled); and holds every finished (`completed` or `failed`) import of the
    /// dataset for `job`, `received` with `contract`, its report and attempts cleared.
    /// Imports not processed yet are not held: they wait, and are processed as new
    /// ones once the job has ended. Gives how many imports are held.
    ///
    /// # Errors
    /// - `Busy` while an import of the dataset is being processed (nothing changes).
    async fn hold(
        &self,
        dataset: &DatasetName,
        job: &str,
        contract: ContractVersion,
    ) -> Result<u64, RebuildError>;

    /// Claims the oldest import held for `job` (as
    /// [`crate::ports::ImportQueue::claim`] does, counting the attempt); finishing it
    /// releases it from the job.
    ///
    /// # Errors
    /// - `Busy` while the oldest is processed under a lease that has not lapsed;
    ///   `Ok(None)` when none is held.
    async fn claim_held(
        &self,
        job: &str,
        worker: &str,
        lease: Duration,
    ) -> Result<Option<Lease>, RebuildError>;

    /// How many imports are still held for `job`.
    ///
    /// # Errors
    /// - `Unexpected` only.
    async fn held(&self, job: &str) -> Result<u64, RebuildError>;
}
