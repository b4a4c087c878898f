//! What this process knows of datasets without asking the store (ADR 25): each
//! dataset's catalog row (its revision, its current contract), remembered until a
//! change is heard, and every contract version read, kept for good (a published
//! version never changes).
//!
//! Changes are heard in process (an import of this process committed, a contract was
//! published here) and from the store's relay, which tells of changes other processes
//! commit. Rows are remembered only while that relay says it is hearing: with no relay,
//! or while it reconnects, every question asks the store. A row read from the store is
//! remembered only if no change was heard while it was being read, so a row older than
//! a change is never kept after it, and never replaces a newer one. A row is kept
//! [`MAX_AGE`] at most: a relay whose connection died without a word (a firewall
//! dropping an idle connection) cannot keep an answer stale for longer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::model::{ContractVersion, DatasetName};
use crate::ports::{Dataset, PublishedContract};

/// How long a row is kept at most.
pub const MAX_AGE: Duration = Duration::from_secs(5);

/// Cheap to clone; clones share what they know.
#[derive(Clone)]
pub struct KnownDatasets {
    state: Arc<Mutex<State>>,
    max_age: Duration,
}

impl Default for KnownDatasets {
    fn default() -> Self {
        Self::with_max_age(MAX_AGE)
    }
}

#[derive(Default)]
struct State {
    /// Whether changes committed by other processes are heard.
    hearing: bool,
    /// Counts the changes heard: a read that began under another count is not kept.
    epoch: u64,
    /// Each row with when it was read.
    datasets: HashMap<DatasetName, (Dataset, Instant)>,
    /// By dataset, its creation time (a dataset created again under the same name is
    /// another) and version.
    contracts: HashMap<(DatasetName, i64, ContractVersion), Arc<PublishedContract>>,
}

/// Contract versions kept at most; past it, the oldest are not dropped but the map
/// is cleared (a catalog this large is not a case worth an LRU).
const MAX_CONTRACTS: usize = 10_000;

impl std::fmt::Debug for KnownDatasets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KnownDatasets").finish_non_exhaustive()
    }
}

impl KnownDatasets {
    /// Rows kept `max_age` at most.
    pub fn with_max_age(max_age: Duration) -> Self {
        Self {
            state: Arc::default(),
            max_age,
        }
    }

    /// The dataset's row, when it is known, young enough, and changes are heard.
    pub(crate) fn dataset(&self, name: &DatasetName) -> Option<Dataset> {
        let state = self.lock();
        let (dataset, read) = state.datasets.get(name).filter(|_| state.hearing)?;
        (read.elapsed() < self.max_age).then(|| dataset.clone())
    }

    /// Where a read of the store begins: hand it back to [`KnownDatasets::remember`].
    pub(crate) fn epoch(&self) -> u64 {
        self.lock().epoch
    }

    /// Keeps a row read from the store since `epoch`, unless a change was heard since
    /// or a newer row of the same dataset is kept (two reads racing an import whose
    /// change is not heard yet).
    pub(crate) fn remember(&self, dataset: &Dataset, epoch: u64) {
        let mut state = self.lock();
        if !state.hearing || state.epoch != epoch {
            return;
        }
        let newer = state.datasets.get(&dataset.name).is_some_and(|(kept, _)| {
            kept.created_at == dataset.created_at
                && (kept.revision > dataset.revision
                    || kept.current_contract > dataset.current_contract)
        });
        if !newer {
            let row = (dataset.clone(), Instant::now());
            state.datasets.insert(dataset.name.clone(), row);
        }
    }

    /// A contract version read before.
    pub(crate) fn contract(
        &self,
        dataset: &Dataset,
        version: ContractVersion,
    ) -> Option<Arc<PublishedContract>> {
        let key = (
            dataset.name.clone(),
            dataset.created_at.timestamp_micros(),
            version,
        );
        self.lock().contracts.get(&key).cloned()
    }

    /// Keeps a contract version of `dataset` (versions never change).
    pub(crate) fn remember_contract(&self, dataset: &Dataset, contract: Arc<PublishedContract>) {
        let key = (
            dataset.name.clone(),
            dataset.created_at.timestamp_micros(),
            contract.version,
        );
        let mut state = self.lock();
        if state.contracts.len() >= MAX_CONTRACTS {
            state.contracts.clear();
        }
        state.contracts.insert(key, contract);
    }

    /// `name` changed (an import committed, a contract was published): its row is
    /// read from the store again.
    pub fn changed(&self, name: &DatasetName) {
        let mut state = self.lock();
        state.epoch += 1;
        state.datasets.remove(name);
    }

    /// Changes may have gone unheard (the relay reconnected): every row is read again.
    pub fn all_may_have_changed(&self) {
        let mut state = self.lock();
        state.epoch += 1;
        state.datasets.clear();
    }

    /// Whether changes committed by other processes are heard from now on (the relay
    /// listens) or not (it lost its connection). Either way every row is read again.
    pub fn hearing(&self, hearing: bool) {
        let mut state = self.lock();
        state.hearing = hearing;
        state.epoch += 1;
        state.datasets.clear();
    }

    /// The state, even if a holder panicked (each change leaves it consistent).
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Revision;

    fn dataset(revision: u64) -> Dataset {
        Dataset {
            name: DatasetName::parse("items").unwrap(),
            current_contract: ContractVersion::FIRST,
            revision: Revision::new(revision),
            created_at: chrono::DateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn rows_are_kept_only_while_changes_are_heard() {
        let known = KnownDatasets::default();
        let name = dataset(1).name;
        known.remember(&dataset(1), known.epoch());
        assert_eq!(known.dataset(&name), None, "nothing is heard yet");

        known.hearing(true);
        known.remember(&dataset(1), known.epoch());
        assert_eq!(known.dataset(&name), Some(dataset(1)));

        known.hearing(false);
        assert_eq!(known.dataset(&name), None, "the relay stopped hearing");
    }

    #[test]
    fn a_change_forgets_the_row_and_a_read_older_than_it_is_not_kept() {
        let known = KnownDatasets::default();
        known.hearing(true);
        let name = dataset(1).name;
        known.remember(&dataset(1), known.epoch());
        known.changed(&name);
        assert_eq!(known.dataset(&name), None);

        // A read began, a change was heard, then the (older) row came back.
        let began = known.epoch();
        known.changed(&name);
        known.remember(&dataset(1), began);
        assert_eq!(
            known.dataset(&name),
            None,
            "a row older than a change was kept"
        );

        known.remember(&dataset(2), known.epoch());
        known.all_may_have_changed();
        assert_eq!(known.dataset(&name), None);
    }

    #[test]
    fn an_older_row_never_replaces_a_newer_one() {
        let known = KnownDatasets::default();
        known.hearing(true);
        let name = dataset(1).name;
        // Two reads began together; the newer one came back first.
        let began = known.epoch();
        known.remember(&dataset(5), began);
        known.remember(&dataset(4), began);
        assert_eq!(known.dataset(&name), Some(dataset(5)));
    }

    #[test]
    fn rows_are_kept_max_age_at_most() {
        let known = KnownDatasets::with_max_age(Duration::from_millis(20));
        known.hearing(true);
        let name = dataset(1).name;
        known.remember(&dataset(1), known.epoch());
        assert_eq!(known.dataset(&name), Some(dataset(1)));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(known.dataset(&name), None, "an old row is read again");
    }
}
