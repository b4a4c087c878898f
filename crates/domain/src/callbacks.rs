//! Callback timers (DESIGN §8): `callbackTimeMs` after a version of a record is
//! accepted, its `record.callback` event is written with the record as it was at that
//! version, unless a newer version arrived first and cancelled the timer (the import
//! writers do that, and log it).
//!
//! [`CallbackWork`] is the kind of leased work the runtime of [`crate::work`] runs to
//! fire due timers. Firing needs nothing outside the database, so a claim fires a
//! batch in one transaction whose row locks are the lease (ADR 20): a timer fires
//! once, with its event, or not at all, and a crash leaves nothing claimed.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;

use crate::ingest::Shutdown;
use crate::model::DatasetName;
use crate::ports::{
    CallbackFiring, CallbackInfo, CallbackListing, CallbackTimers, CatalogError, Clock,
    DatasetStore, DeliveryError, DueCallback,
};
use crate::work::{Backoff, Claim, JitterPercent, LeasedWork, WorkError, WorkKind, WorkSettings};

#[cfg(test)]
mod tests;

/// How callback timers are fired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackSettings {
    /// Most timers one round fires (in one transaction).
    pub batch: u32,
    /// A timer fired later than this after it was due is logged as late.
    pub late_after: Duration,
    /// The safety-net poll of an idle worker.
    pub idle_poll: Duration,
    /// How long fired and cancelled timers stay listed before they are pruned.
    pub retention: Duration,
    /// How often settled timers past `retention` are pruned.
    pub housekeeping: Duration,
}

impl Default for CallbackSettings {
    fn default() -> Self {
        Self {
            batch: 1000,
            late_after: Duration::from_millis(100),
            idle_poll: Duration::from_secs(5),
            retention: Duration::from_secs(7 * 24 * 3600),
            housekeeping: Duration::from_secs(60),
        }
    }
}

impl CallbackSettings {
    /// How the runtime treats timers: firing is the claim, so a failed one (the store
    /// unreachable) leaves the timers pending and is tried again after `idle_poll`;
    /// nothing is ever given up.
    pub fn work(&self) -> WorkSettings {
        WorkSettings {
            max_attempts: u32::MAX,
            backoff: Backoff::Exponential {
                base: Duration::from_secs(1),
                max: Duration::from_secs(30),
            },
            jitter: JitterPercent(0),
            idle_poll: self.idle_poll,
        }
    }
}

/// The payload of a fired timer's `record.callback` event: the dataset, the import that
/// accepted the version, the key, the version, when it was due and when it fired, and
/// the record as it was at that version (`null` if history no longer has it).
pub fn callback_event(
    due: &DueCallback,
    record: Option<serde_json::Value>,
    fired_at: DateTime<Utc>,
) -> serde_json::Value {
    json!({
        "dataset": due.dataset,
        "import": due.import,
        "key": due.key,
        "version": due.version,
        "due_at": due.due_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        "fired_at": fired_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        "record": record,
    })
}

/// Told of every fired timer (metrics); never fails, never blocks.
pub trait CallbackObserver: Send + Sync {
    /// A timer of `dataset` fired `lateness` after it was due; `late` when that is
    /// more than [`CallbackSettings::late_after`].
    fn fired(&self, dataset: &DatasetName, lateness: Duration, late: bool);
}

/// The observer of timers nobody watches.
struct Unobserved;

impl CallbackObserver for Unobserved {
    fn fired(&self, _: &DatasetName, _: Duration, _: bool) {}
}

/// A timer fired by a claim of [`CallbackWork`], and when its transaction committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FiredCallback {
    /// The timer.
    pub timer: DueCallback,
    /// When its fire committed: its lateness is counted to then.
    pub committed_at: DateTime<Utc>,
}

/// Settled timers deleted per statement when pruning.
const PRUNE_BATCH: u32 = 1000;

/// Callback timers, as the runtime sees them.
pub struct CallbackWork {
    timers: Arc<dyn CallbackTimers>,
    clock: Arc<dyn Clock>,
    settings: CallbackSettings,
    observer: Arc<dyn CallbackObserver>,
}

impl CallbackWork {
    /// The leased work of these timers.
    pub fn new(
        timers: Arc<dyn CallbackTimers>,
        clock: Arc<dyn Clock>,
        settings: CallbackSettings,
    ) -> Self {
        Self {
            timers,
            clock,
            settings,
            observer: Arc::new(Unobserved),
        }
    }

    /// The same work, telling `observer` of every fired timer.
    pub fn observed_by(mut self, observer: Arc<dyn CallbackObserver>) -> Self {
        self.observer = observer;
        self
    }

    /// Deletes the timers that fired or were cancelled longer than
    /// [`CallbackSettings::retention`] ago; gives how many.
    ///
    /// # Errors
    /// When the store is unreachable.
    pub async fn keep_house(&self) -> Result<u64, DeliveryError> {
        let retention =
            chrono::Duration::from_std(self.settings.retention).unwrap_or(chrono::Duration::MAX);
        let before = self.clock.now() - retention;
        let mut pruned = 0;
        loop {
            let n = self.timers.prune(before, PRUNE_BATCH).await?;
            pruned += n;
            if n < u64::from(PRUNE_BATCH) {
                break;
            }
        }
        if pruned > 0 {
            tracing::info!(pruned, %before, "settled callbacks pruned after callback_retention");
        }
        Ok(pruned)
    }

    /// Keeps house every [`CallbackSettings::housekeeping`] until `shutdown`; failures
    /// are logged and tried again at the next round.
    pub async fn keep_house_until(&self, shutdown: Shutdown) {
        while !shutdown.is_triggered() {
            if let Err(e) = self.keep_house().await {
                tracing::error!(error = %format!("{e:#}"), "callback housekeeping failed; trying again later");
            }
            let sleep = self.clock.sleep(self.settings.housekeeping);
            futures_lite::future::or(sleep, shutdown.wait()).await;
        }
    }

    fn fired(&self, fired: &FiredCallback) {
        let due = &fired.timer;
        let lateness = (fired.committed_at - due.due_at)
            .to_std()
            .unwrap_or_default();
        let lateness_ms = u64::try_from(lateness.as_millis()).unwrap_or(u64::MAX);
        let due_at = due.due_at.to_rfc3339_opts(SecondsFormat::Millis, true);
        let late = lateness > self.settings.late_after;
        self.observer.fired(&due.dataset, lateness, late);
        if late {
            tracing::warn!(dataset = %due.dataset, key = %due.key, version = due.version,
                due_at, lateness_ms, "callback fired late");
        } else {
            tracing::info!(dataset = %due.dataset, key = %due.key, version = due.version,
                due_at, lateness_ms, "callback fired");
        }
    }
}

#[async_trait::async_trait]
impl LeasedWork for CallbackWork {
    type Item = FiredCallback;

    fn kind(&self) -> WorkKind {
        WorkKind::Callbacks
    }

    fn describe(&self, fired: &FiredCallback) -> String {
        let due = &fired.timer;
        format!(
            "callback {} of {} key {} version {:?}",
            due.id, due.dataset, due.key, due.version
        )
    }

    fn attempt(&self, _: &FiredCallback) -> u32 {
        1
    }

    /// Fires a batch of due timers: the claim is the work, committed before the
    /// runtime hears of it.
    async fn claim(
        &self,
        _worker: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Claim<FiredCallback>> {
        Ok(
            match self.timers.fire_due(now, self.settings.batch).await? {
                CallbackFiring::Fired(timers) => {
                    let committed_at = self.clock.now();
                    Claim::Items(
                        timers
                            .into_iter()
                            .map(|timer| FiredCallback {
                                timer,
                                committed_at,
                            })
                            .collect(),
                    )
                }
                CallbackFiring::Idle(next_due) => Claim::Nothing { next_due },
            },
        )
    }

    /// Logs and counts a fired timer.
    async fn work(&self, fired: &FiredCallback) -> Result<(), WorkError> {
        self.fired(fired);
        Ok(())
    }

    /// Never called: [`LeasedWork::work`] does not fail.
    async fn fail(
        &self,
        _: &FiredCallback,
        _: Option<DateTime<Utc>>,
        _: &str,
    ) -> anyhow::Result<()> {
        Ok(())
    }

    /// A fired timer cannot be given back: its work is done.
    async fn release(&self, _: &FiredCallback) -> Result<(), WorkError> {
        Err(WorkError::LeaseLost)
    }
}

/// What operators and clients see of callback timers.
pub struct CallbackListings {
    timers: Arc<dyn CallbackTimers>,
    datasets: Arc<dyn DatasetStore>,
}

impl CallbackListings {
    /// Listings of these timers, for these datasets.
    pub fn new(timers: Arc<dyn CallbackTimers>, datasets: Arc<dyn DatasetStore>) -> Self {
        Self { timers, datasets }
    }

    /// A page of a dataset's timers with their outcome, newest first.
    ///
    /// # Errors
    /// `UnknownDataset` when there is no such dataset.
    pub async fn list(
        &self,
        dataset: &DatasetName,
        listing: &CallbackListing,
    ) -> Result<Vec<CallbackInfo>, DeliveryError> {
        match self.datasets.get(dataset).await {
            Ok(_) => {}
            Err(CatalogError::NotFound) => return Err(DeliveryError::UnknownDataset),
            Err(e) => return Err(DeliveryError::Unexpected(anyhow::Error::new(e))),
        }
        self.timers.list(dataset, listing).await
    }

    /// Timers pending, across datasets.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn pending(&self) -> Result<u64, DeliveryError> {
        self.timers.pending().await
    }
}
