//! One runtime for leased work (DESIGN §3): imports, deliveries, callback timers, pull
//! sources and jobs are each "claim an item under a lease, work on it, then complete it,
//! fail it with a back-off, give it up or release it". The loop is written here once,
//! over [`LeasedWork`]; a kind of work is an implementation of that trait, never a new
//! loop.
//!
//! Idle workers wait for a [`Wakeups`] notification (work committed by this process, or
//! by another instance through the store's own signal, such as PostgreSQL
//! `LISTEN/NOTIFY`), for the next due time the store names, or for a slow safety-net
//! poll, whichever comes first. Time comes from the [`Clock`] port, so tests drive it.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_lite::future;

use crate::datasets::KnownDatasets;
use crate::ingest::Shutdown;
use crate::model::ImportId;
use crate::ports::Clock;

mod board;

pub use board::{KindView, PAUSES_READ_EVERY, WorkerBoard, WorkerControl, WorkerView};

/// The kinds of leased work, each woken on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WorkKind {
    /// Documents received, waiting to be processed.
    Imports,
    /// Events waiting to be sent to a subscription.
    Deliveries,
    /// Callback timers coming due.
    Callbacks,
    /// Pull sources coming due.
    Sources,
    /// Long-running jobs.
    Jobs,
}

impl WorkKind {
    /// Every kind, in a fixed order.
    pub const ALL: [Self; 5] = [
        Self::Imports,
        Self::Deliveries,
        Self::Callbacks,
        Self::Sources,
        Self::Jobs,
    ];

    /// Its name in logs, settings and notification payloads.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Imports => "imports",
            Self::Deliveries => "deliveries",
            Self::Callbacks => "callbacks",
            Self::Sources => "sources",
            Self::Jobs => "jobs",
        }
    }

    /// The kind named `name` ([`WorkKind::as_str`]).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for WorkKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Wakes idle workers when work of their kind is committed, and whoever waits for an
/// import when it finishes. Cheap to clone; every clone shares the same signals. A
/// notification is kept until a worker takes it, and notifications that arrive
/// meanwhile coalesce into that one: a worker that finds work passes the signal on
/// ([`Wakeups::notify`]), so one notification drains a burst across every idle worker.
#[derive(Clone)]
pub struct Wakeups {
    channels: Arc<[(async_channel::Sender<()>, async_channel::Receiver<()>); 5]>,
    watches: Arc<Mutex<Watches>>,
    datasets: KnownDatasets,
    board: WorkerBoard,
}

/// Who waits for which import to finish.
#[derive(Default)]
struct Watches {
    next: u64,
    by_import: HashMap<ImportId, Vec<(u64, async_channel::Sender<()>)>>,
}

impl Default for Wakeups {
    fn default() -> Self {
        Self {
            channels: Arc::new(std::array::from_fn(|_| async_channel::bounded(1))),
            watches: Arc::default(),
            datasets: KnownDatasets::default(),
            board: WorkerBoard::default(),
        }
    }
}

impl fmt::Debug for Wakeups {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wakeups").finish_non_exhaustive()
    }
}

impl Wakeups {
    /// Work of `kind` was committed: wakes one idle worker of that kind (or the next to
    /// go idle). Never blocks.
    pub fn notify(&self, kind: WorkKind) {
        // Full: a notification is already pending, and this one adds nothing to it.
        let _ = self.channels[kind.index()].0.try_send(());
    }

    /// Completes when work of `kind` is notified.
    pub async fn wait(&self, kind: WorkKind) {
        // The senders live as long as `self`: `recv` never fails here.
        let _ = self.channels[kind.index()].1.recv().await;
    }

    /// Watches for `import` to finish: take the watch before reading its status, so a
    /// finish in between is not missed. Dropping the watch forgets it.
    pub fn watch_import(&self, import: &ImportId) -> ImportWatch {
        let (signal, finished) = async_channel::bounded(1);
        let mut watches = self.lock();
        watches.next += 1;
        let token = watches.next;
        watches
            .by_import
            .entry(import.clone())
            .or_default()
            .push((token, signal));
        ImportWatch {
            import: import.clone(),
            token,
            finished,
            watches: self.watches.clone(),
        }
    }

    /// `import` finished processing (its report is committed, by this process or,
    /// relayed by the store, another): wakes its watches. Never blocks.
    pub fn import_finished(&self, import: &ImportId) {
        if let Some(signals) = self.lock().by_import.get(import) {
            for (_, signal) in signals {
                let _ = signal.try_send(());
            }
        }
    }

    /// Finishes may have gone unheard (the store's relay reconnected): wakes every
    /// watch to look again.
    pub fn imports_may_have_finished(&self) {
        for (_, signal) in self.lock().by_import.values().flatten() {
            let _ = signal.try_send(());
        }
    }

    /// What this process knows of datasets, told here of the changes this process
    /// commits and, by the store's relay, of those other processes commit.
    pub fn datasets(&self) -> &KnownDatasets {
        &self.datasets
    }

    /// This process's workers and the kinds paused: every runtime sharing these
    /// wake-ups reports there and obeys the pauses.
    pub fn board(&self) -> &WorkerBoard {
        &self.board
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Watches> {
        Watches::lock(&self.watches)
    }
}

impl Watches {
    /// The watches, even if a holder panicked (they stay consistent: each change is
    /// one push or retain).
    fn lock(watches: &Mutex<Self>) -> std::sync::MutexGuard<'_, Self> {
        watches
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A watch for one import to finish ([`Wakeups::watch_import`]).
pub struct ImportWatch {
    import: ImportId,
    token: u64,
    finished: async_channel::Receiver<()>,
    watches: Arc<Mutex<Watches>>,
}

impl ImportWatch {
    /// Completes when the import is told finished (or may have been) since the watch
    /// was taken or this last completed.
    pub async fn finished(&self) {
        // The sender lives until this watch is dropped: `recv` never fails here.
        let _ = self.finished.recv().await;
    }
}

impl Drop for ImportWatch {
    fn drop(&mut self) {
        let mut watches = Watches::lock(&self.watches);
        if let Some(signals) = watches.by_import.get_mut(&self.import) {
            signals.retain(|(token, _)| *token != self.token);
            if signals.is_empty() {
                watches.by_import.remove(&self.import);
            }
        }
    }
}

/// How an attempt at an item went wrong.
#[derive(Debug, thiserror::Error)]
pub enum WorkError {
    /// The lease lapsed and another worker may hold the item: nothing to do.
    #[error("lease lost")]
    LeaseLost,
    /// The attempt failed: retried after a back-off (at least `retry_after` when the
    /// other side asked for it), or given up after the last attempt.
    #[error("{error:#}")]
    Failed {
        /// What went wrong.
        error: anyhow::Error,
        /// The least wait the other side asked for (a `Retry-After`).
        retry_after: Option<Duration>,
    },
}

impl WorkError {
    /// A failure to retry on the usual schedule.
    pub fn failed(error: impl Into<anyhow::Error>) -> Self {
        Self::Failed {
            error: error.into(),
            retry_after: None,
        }
    }
}

/// What a claim found.
#[derive(Debug)]
pub enum Claim<T> {
    /// Items (at least one), now leased to the claiming worker, worked together.
    Items(Vec<T>),
    /// Nothing is due; `next_due` is when the next item will be, if the store knows.
    Nothing {
        /// When the earliest waiting item comes due.
        next_due: Option<DateTime<Utc>>,
    },
}

/// One kind of leased work: what the runtime needs of it. Completing an item is part of
/// [`LeasedWork::work`], committed with the effect it records (an import's latest state,
/// a delivery's outcome), so nothing is applied twice.
#[async_trait::async_trait]
pub trait LeasedWork: Send + Sync {
    /// A claimed item, with its lease.
    type Item: Send + Sync;

    /// Which kind this is (its wake-ups, its log lines).
    fn kind(&self) -> WorkKind;

    /// The item, for log lines (an import id, an event and its subscription).
    fn describe(&self, item: &Self::Item) -> String;

    /// How many times the item has been claimed, this claim included.
    fn attempt(&self, item: &Self::Item) -> u32;

    /// Claims the next items due at `now` for `worker` (one, or a batch the kind
    /// works together). Concurrent claimers (threads or processes) MUST never get the
    /// same item while its lease holds.
    ///
    /// # Errors
    /// When the store is unreachable.
    async fn claim(&self, worker: &str, now: DateTime<Utc>) -> anyhow::Result<Claim<Self::Item>>;

    /// Does the work and completes the item, renewing its lease as long as it takes.
    ///
    /// # Errors
    /// See [`WorkError`].
    async fn work(&self, item: &Self::Item) -> Result<(), WorkError>;

    /// Does the work of a claimed batch, giving each item's outcome in order. By
    /// default one item after another; a kind that claims batches works them at once
    /// and completes them together.
    async fn work_all(&self, items: &[Self::Item]) -> Vec<Result<(), WorkError>> {
        let mut outcomes = Vec::with_capacity(items.len());
        for item in items {
            outcomes.push(self.work(item).await);
        }
        outcomes
    }

    /// Whether an item whose attempts are spent is given up (`true`, the default), or
    /// kept and tried at a slower pace of its own (pull sources, which turn degraded).
    fn gives_up(&self) -> bool {
        true
    }

    /// Records a failed attempt: the item is due again at `retry_at`, or, when `None`
    /// (its attempts are spent), given up for good with `reason` (or, for a kind that
    /// never gives up, kept at its own pace).
    ///
    /// # Errors
    /// When the lease was lost or the store is unreachable (the lease then expires).
    async fn fail(
        &self,
        item: &Self::Item,
        retry_at: Option<DateTime<Utc>>,
        reason: &str,
    ) -> anyhow::Result<()>;

    /// Gives an item back untouched (shutdown): claimable at once, the claim not
    /// counted as an attempt.
    ///
    /// # Errors
    /// [`WorkError::LeaseLost`] when the item had already been completed or taken
    /// over; [`WorkError::Failed`] when the store is unreachable.
    async fn release(&self, item: &Self::Item) -> Result<(), WorkError>;
}

/// When a failed item is tried again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backoff {
    /// `base`, doubled with each further attempt, at most `max`.
    Exponential {
        /// The wait after the first attempt.
        base: Duration,
        /// The longest wait.
        max: Duration,
    },
    /// The wait after attempt `n` is the `n`-th entry (the last one repeats).
    Schedule(Vec<Duration>),
}

impl Backoff {
    /// The wait after `attempt` (1 for the first), before jitter.
    pub fn after(&self, attempt: u32) -> Duration {
        let n = attempt.saturating_sub(1);
        match self {
            Self::Exponential { base, max } => base.saturating_mul(1 << n.min(20)).min(*max),
            Self::Schedule(waits) => {
                let i = usize::try_from(n).unwrap_or(usize::MAX);
                waits
                    .get(i)
                    .or_else(|| waits.last())
                    .copied()
                    .unwrap_or_default()
            }
        }
    }
}

/// How a runtime treats its kind of work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkSettings {
    /// Attempts before an item is given up.
    pub max_attempts: u32,
    /// The wait before each retry.
    pub backoff: Backoff,
    /// Up to this share of a wait is added, spread over items, so receivers that
    /// failed together are not retried together.
    pub jitter: JitterPercent,
    /// The safety-net poll of an idle worker, for work no notification announced.
    pub idle_poll: Duration,
}

/// A share of a wait, in percent (0 to 100).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JitterPercent(pub u8);

impl Default for WorkSettings {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            backoff: Backoff::Exponential {
                base: Duration::from_secs(1),
                max: Duration::from_secs(60),
            },
            jitter: JitterPercent(0),
            idle_poll: Duration::from_secs(5),
        }
    }
}

/// Runs one kind of leased work: a process starts it N times, each under its own name.
pub struct Runtime<W: LeasedWork> {
    work: Arc<W>,
    clock: Arc<dyn Clock>,
    wakeups: Wakeups,
    settings: WorkSettings,
    /// The soonest retry this runtime scheduled: it wakes then even if the store
    /// cannot say when its next item is due.
    retry: std::sync::Mutex<Option<DateTime<Utc>>>,
}

impl<W: LeasedWork> Runtime<W> {
    /// A runtime for `work`.
    pub fn new(
        work: Arc<W>,
        clock: Arc<dyn Clock>,
        wakeups: Wakeups,
        settings: WorkSettings,
    ) -> Self {
        Self {
            work,
            clock,
            wakeups,
            settings,
            retry: std::sync::Mutex::new(None),
        }
    }

    /// Works until `shutdown`, then returns. An item in progress at shutdown is
    /// released for another worker; failures are logged and retried, never ending the
    /// loop.
    pub async fn run(&self, name: &str, shutdown: Shutdown) {
        let kind = self.work.kind();
        let board = self.wakeups.board();
        tracing::info!(worker = name, %kind, "worker started");
        board.started(name, kind);
        while !shutdown.is_triggered() {
            if board.is_paused(kind) {
                // Claims nothing; a resume wakes it (PAUSES_READ_EVERY from another
                // instance), and the safety-net poll looks again.
                self.idle(None, &shutdown).await;
                continue;
            }
            match self.work.claim(name, self.clock.now()).await {
                Ok(Claim::Items(items)) => {
                    // There may be more: let another idle worker look too.
                    self.wakeups.notify(kind);
                    let held = items
                        .iter()
                        .map(|i| self.work.describe(i))
                        .collect::<Vec<_>>()
                        .join(", ");
                    board.holding(name, Some((held, self.clock.now())));
                    self.attempt(name, &items, &shutdown).await;
                    board.holding(name, None);
                }
                Ok(Claim::Nothing { next_due }) => self.idle(next_due, &shutdown).await,
                Err(e) => {
                    tracing::error!(worker = name, %kind, error = %format!("{e:#}"), "claiming work failed");
                    self.idle(None, &shutdown).await;
                }
            }
        }
        board.stopped(name);
        tracing::info!(worker = name, %kind, "worker stopped");
    }

    async fn attempt(&self, name: &str, items: &[W::Item], shutdown: &Shutdown) {
        let kind = self.work.kind();
        let working = async { Some(self.work.work_all(items).await) };
        let stopping = async {
            shutdown.wait().await;
            None
        };
        let Some(outcomes) = future::or(working, stopping).await else {
            for item in items {
                self.release(name, item).await;
            }
            return;
        };
        debug_assert_eq!(outcomes.len(), items.len(), "one outcome per item");
        let mut failures = Vec::new();
        for (item, outcome) in items.iter().zip(outcomes) {
            match outcome {
                Ok(()) => {}
                Err(WorkError::LeaseLost) => {
                    tracing::warn!(worker = name, %kind, item = %self.work.describe(item),
                        "lease lost: another worker has the item");
                }
                Err(WorkError::Failed { error, retry_after }) => {
                    failures.push(self.failed(name, item, error, retry_after));
                }
            }
        }
        let recorded = futures_util::future::join_all(failures).await;
        if recorded.contains(&false) {
            // The store is in trouble: let it breathe before the next claim.
            self.idle(None, shutdown).await;
        }
    }

    /// Gives an item back at shutdown.
    async fn release(&self, name: &str, item: &W::Item) {
        let kind = self.work.kind();
        match self.work.release(item).await {
            Ok(()) => tracing::info!(worker = name, %kind, item = %self.work.describe(item),
                "shutdown: the work was rolled back and released"),
            // Stopped between its commit and the answer: the item is done.
            Err(WorkError::LeaseLost) => tracing::info!(worker = name, %kind,
                item = %self.work.describe(item), "shutdown: the work had already finished"),
            Err(e) => tracing::warn!(worker = name, %kind, item = %self.work.describe(item),
                error = %e, "shutdown: releasing failed; the lease will expire"),
        }
    }

    /// A failed attempt is retried after the back-off (or what the other side asked
    /// for, if longer); after `max_attempts` the item is given up, so a poison item
    /// cannot keep workers busy forever.
    /// Gives whether the failure was recorded.
    async fn failed(
        &self,
        name: &str,
        item: &W::Item,
        error: anyhow::Error,
        retry_after: Option<Duration>,
    ) -> bool {
        let (kind, what) = (self.work.kind(), self.work.describe(item));
        let (attempt, max) = (self.work.attempt(item), self.settings.max_attempts);
        let error = format!("{error:#}");
        if attempt < max {
            let wait = self.wait_after(attempt, &what, retry_after);
            let at = self.clock.now() + chrono::Duration::from_std(wait).unwrap_or_default();
            return match self.work.fail(item, Some(at), &error).await {
                Ok(()) => {
                    self.remember_retry(at);
                    tracing::warn!(worker = name, %kind, item = %what, attempt, max,
                        retry_in_ms = wait.as_millis(), error, "attempt failed; retried after a back-off");
                    true
                }
                Err(e) => {
                    tracing::error!(worker = name, %kind, item = %what, attempt, max, error,
                        fail_error = %format!("{e:#}"), "attempt failed; retried when its lease expires");
                    false
                }
            };
        }
        let reason = if self.work.gives_up() {
            tracing::error!(worker = name, %kind, item = %what, attempt, error,
                "every attempt failed; giving the item up");
            format!("failed {attempt} times; the last error: {error}")
        } else {
            tracing::warn!(worker = name, %kind, item = %what, attempt, error,
                "attempt failed again; tried at the kind's own pace from now on");
            error
        };
        if let Err(e) = self.work.fail(item, None, &reason).await {
            tracing::error!(worker = name, %kind, item = %what, error = %format!("{e:#}"),
                "could not give the item up; retried when its lease expires");
            return false;
        }
        true
    }

    /// The back-off after `attempt`, with jitter taken from the item and attempt (so
    /// it is spread without a random source, and the same in every run of a test).
    fn wait_after(&self, attempt: u32, what: &str, asked: Option<Duration>) -> Duration {
        let wait = self.settings.backoff.after(attempt);
        let percent = u64::from(self.settings.jitter.0.min(100));
        let spread = if percent == 0 {
            Duration::ZERO
        } else {
            use sha2::Digest as _;
            let digest = sha2::Sha256::digest(format!("{what}/{attempt}"));
            let roll = u64::from(digest[0]) * 100 / 255; // 0..=100
            wait.mul_f64((percent * roll) as f64 / 10_000.0)
        };
        (wait + spread).max(asked.unwrap_or_default())
    }

    fn remember_retry(&self, at: DateTime<Utc>) {
        let mut retry = self
            .retry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *retry = Some(retry.map_or(at, |r| r.min(at)));
    }

    /// Waits for a notification, the next due time (the store's, or a retry this
    /// runtime scheduled), the safety-net poll or shutdown.
    async fn idle(&self, next_due: Option<DateTime<Utc>>, shutdown: &Shutdown) {
        let now = self.clock.now();
        let retry = {
            let mut retry = self
                .retry
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if retry.is_some_and(|r| r <= now) {
                *retry = None;
            }
            *retry
        };
        let mut wait = self.settings.idle_poll;
        for due in [next_due, retry].into_iter().flatten() {
            wait = wait.min((due - now).to_std().unwrap_or_default());
        }
        let notified = self.wakeups.wait(self.work.kind());
        let timed_out = self.clock.sleep(wait);
        future::or(future::or(notified, timed_out), shutdown.wait()).await;
    }
}

#[cfg(test)]
mod tests;
