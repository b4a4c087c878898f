//! Which kinds of work are paused, what each worker of this process holds, and the
//! service that pauses and resumes a kind for every instance (DESIGN §12, ADR 31).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_lite::future;

use super::{Wakeups, WorkKind};
use crate::ingest::Shutdown;
use crate::ports::{Clock, PauseStore};

/// How often an instance reads which kinds are paused: a pause or resume made on
/// another instance is obeyed here within this time.
pub const PAUSES_READ_EVERY: Duration = Duration::from_secs(1);

/// This process's workers and the kinds paused, shared by every runtime (through
/// [`Wakeups::board`]). Cheap to clone; every clone is the same board.
#[derive(Clone, Default)]
pub struct WorkerBoard {
    inner: Arc<Mutex<Board>>,
}

#[derive(Default)]
struct Board {
    paused: [Option<DateTime<Utc>>; 5],
    workers: BTreeMap<String, WorkerView>,
}

/// One worker of this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerView {
    /// Its name (`{host}-{pid}-…`).
    pub name: String,
    /// The kind of work it does.
    pub kind: WorkKind,
    /// What it holds (the item, as its kind describes it) and since when; `None`
    /// while idle.
    pub holding: Option<(String, DateTime<Utc>)>,
}

/// One kind of work in this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindView {
    /// The kind.
    pub kind: WorkKind,
    /// Since when it is paused (for every instance); `None`: running.
    pub paused_since: Option<DateTime<Utc>>,
    /// Its workers in this process.
    pub workers: Vec<WorkerView>,
}

impl std::fmt::Debug for WorkerBoard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerBoard").finish_non_exhaustive()
    }
}

impl WorkerBoard {
    fn lock(&self) -> std::sync::MutexGuard<'_, Board> {
        // Each change is one assignment: a holder's panic leaves the board consistent.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether `kind` is paused: its workers claim nothing.
    pub fn is_paused(&self, kind: WorkKind) -> bool {
        self.lock().paused[kind as usize].is_some()
    }

    /// Records which kinds are paused; gives the kinds this resumed.
    pub fn set_paused(&self, paused: &[(WorkKind, DateTime<Utc>)]) -> Vec<WorkKind> {
        let mut board = self.lock();
        let mut resumed = Vec::new();
        for kind in WorkKind::ALL {
            let now = paused.iter().find(|(k, _)| *k == kind).map(|(_, at)| *at);
            if board.paused[kind as usize].is_some() && now.is_none() {
                resumed.push(kind);
            }
            board.paused[kind as usize] = now;
        }
        resumed
    }

    pub(crate) fn started(&self, name: &str, kind: WorkKind) {
        let view = WorkerView {
            name: name.to_owned(),
            kind,
            holding: None,
        };
        self.lock().workers.insert(name.to_owned(), view);
    }

    pub(crate) fn stopped(&self, name: &str) {
        self.lock().workers.remove(name);
    }

    pub(crate) fn holding(&self, name: &str, item: Option<(String, DateTime<Utc>)>) {
        if let Some(worker) = self.lock().workers.get_mut(name) {
            worker.holding = item;
        }
    }

    /// Every kind, with its pause and this process's workers of it.
    pub fn kinds(&self) -> Vec<KindView> {
        let board = self.lock();
        WorkKind::ALL
            .into_iter()
            .map(|kind| KindView {
                kind,
                paused_since: board.paused[kind as usize],
                workers: board
                    .workers
                    .values()
                    .filter(|w| w.kind == kind)
                    .cloned()
                    .collect(),
            })
            .collect()
    }
}

/// Pauses and resumes kinds of work for every instance: the pause is written to the
/// [`PauseStore`], and each instance reads it every [`PAUSES_READ_EVERY`]
/// ([`WorkerControl::follow_until`]). In-flight items finish; nothing queued is lost.
pub struct WorkerControl {
    store: Arc<dyn PauseStore>,
    wakeups: Wakeups,
    clock: Arc<dyn Clock>,
}

impl WorkerControl {
    /// Control over the workers that share `wakeups`.
    pub fn new(store: Arc<dyn PauseStore>, wakeups: Wakeups, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            wakeups,
            clock,
        }
    }

    /// Pauses (`true`) or resumes `kind` on every instance; this one obeys at once.
    /// Gives the kind as it now is.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn set_paused(&self, kind: WorkKind, paused: bool) -> anyhow::Result<KindView> {
        let changed = self
            .store
            .set_paused(kind, paused, self.clock.now())
            .await?;
        if changed {
            tracing::warn!(%kind, paused, "workers {}", if paused { "paused" } else { "resumed" });
        }
        self.read().await?;
        self.kinds()
            .into_iter()
            .find(|k| k.kind == kind)
            .ok_or_else(|| anyhow::anyhow!("{kind} is not a kind of work"))
    }

    /// Every kind, as this instance last read it.
    pub fn kinds(&self) -> Vec<KindView> {
        self.wakeups.board().kinds()
    }

    /// Reads the pauses from the store; wakes the workers of kinds resumed.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn read(&self) -> anyhow::Result<()> {
        let paused = self.store.paused().await?;
        for kind in self.wakeups.board().set_paused(&paused) {
            self.wakeups.notify(kind);
        }
        Ok(())
    }

    /// Reads the pauses every [`PAUSES_READ_EVERY`] until `shutdown`. A failed read
    /// keeps the last known pauses (logged once until it reads again).
    pub async fn follow_until(&self, shutdown: Shutdown) {
        let mut failing = false;
        while !shutdown.is_triggered() {
            match self.read().await {
                Ok(()) if failing => {
                    tracing::info!("reading the paused kinds of work again");
                    failing = false;
                }
                Ok(()) => {}
                Err(e) if !failing => {
                    tracing::warn!(error = %format!("{e:#}"),
                        "could not read which kinds of work are paused; keeping the last known");
                    failing = true;
                }
                Err(_) => {}
            }
            future::or(self.clock.sleep(PAUSES_READ_EVERY), shutdown.wait()).await;
        }
    }
}
