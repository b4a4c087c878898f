//! Looking imports up, reading their documents back, waiting for them, and dry runs
//! of draft contracts over them.

use std::time::Duration;

use super::{ImportService, anyhow};
use crate::contract::Contract;
use crate::ingest::pipeline;
use crate::merge::Verdict;
use crate::model::{Conflict, DatasetName, ImportId, ImportReport, Record};
use crate::ports::{CatalogError, ImportSummary, VaultError, VaultReader};

/// What a draft contract would make of a stored document, merged into an empty
/// dataset; nothing is written.
#[derive(Debug, Clone, PartialEq)]
pub struct DryRun {
    /// Apply or reject.
    pub verdict: Verdict,
    /// The report the import would get.
    pub report: ImportReport,
    /// The first records it would produce, ordered by key.
    pub records: Vec<Record>,
    /// How many records (distinct keys) it would produce in all.
    pub records_total: u64,
    /// The first conflicts it would report, in document order.
    pub conflicts: Vec<Conflict>,
}

/// Why a dry run or a look-up of a dataset's import failed.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// No such dataset.
    #[error("no such dataset")]
    UnknownDataset,
    /// No such import in this dataset.
    #[error("no such import")]
    UnknownImport,
    /// As many dry runs as allowed are running; try again shortly.
    #[error("too many dry runs at once")]
    Busy,
    /// The import deletes records (ADR 40): it has no records to map.
    #[error("the import deletes records: it has no records for a contract to map")]
    NotADocument,
    /// The draft contract is larger than the settings allow.
    #[error(transparent)]
    ContractTooLarge(#[from] crate::contract::ContractTooLarge),
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl ImportService {
    /// One import of a dataset (an import of another dataset is not found).
    ///
    /// # Errors
    /// See [`LookupError`].
    pub async fn get_in(
        &self,
        dataset: &DatasetName,
        id: &ImportId,
    ) -> Result<ImportSummary, LookupError> {
        match self.ports.vault.get(id).await {
            Ok(import) if &import.import.dataset == dataset => Ok(import),
            Ok(_) | Err(VaultError::NotFound) => Err(self.unknown(dataset).await),
            Err(e) => Err(LookupError::Unexpected(anyhow(e))),
        }
    }

    /// A dataset's imports, newest first.
    ///
    /// # Errors
    /// See [`LookupError`].
    pub async fn list(
        &self,
        dataset: &DatasetName,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<ImportSummary>, LookupError> {
        self.dataset_exists(dataset).await?;
        let imports = self.ports.vault.list(dataset, limit, offset).await;
        imports.map_err(|e| LookupError::Unexpected(anyhow(e)))
    }

    /// A dataset's imports received before `before`, newest first (a keyset page).
    ///
    /// # Errors
    /// See [`LookupError`].
    pub async fn list_before(
        &self,
        dataset: &DatasetName,
        before: &ImportId,
        limit: u32,
    ) -> Result<Vec<ImportSummary>, LookupError> {
        self.dataset_exists(dataset).await?;
        let imports = self.ports.vault.list_before(dataset, before, limit).await;
        imports.map_err(|e| LookupError::Unexpected(anyhow(e)))
    }

    /// The stored bytes of one import of a dataset, in chunks.
    ///
    /// # Errors
    /// See [`LookupError`].
    pub async fn document(
        &self,
        dataset: &DatasetName,
        id: &ImportId,
    ) -> Result<(ImportSummary, Box<dyn VaultReader>), LookupError> {
        let import = self.get_in(dataset, id).await?;
        let reader = self.ports.vault.open(id).await;
        Ok((
            import,
            reader.map_err(|e| LookupError::Unexpected(anyhow(e)))?,
        ))
    }

    /// Waits until an import has finished processing or `timeout` has passed, and
    /// gives it as it is then. It is woken when the import finishes (processed in this
    /// process, or in another that the store relays); a slow poll covers a process
    /// whose finishes go unheard (another process on the same SQLite file).
    ///
    /// # Errors
    /// See [`LookupError`].
    pub async fn wait(
        &self,
        dataset: &DatasetName,
        id: &ImportId,
        timeout: Duration,
    ) -> Result<ImportSummary, LookupError> {
        let deadline =
            self.ports.clock.now() + chrono::Duration::from_std(timeout).unwrap_or_default();
        let watch = self.wakeups.watch_import(id);
        let mut pause = Duration::from_millis(10);
        loop {
            let import = self.get_in(dataset, id).await?;
            let left = (deadline - self.ports.clock.now())
                .to_std()
                .unwrap_or_default();
            if import.status.is_finished() || left.is_zero() {
                return Ok(import);
            }
            let poll = self.ports.clock.sleep(pause.min(left));
            futures_lite::future::or(watch.finished(), poll).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }

    /// Maps a stored import through a draft contract into an empty dataset and tells
    /// what it would produce (the first `sample` records and conflicts), writing
    /// nothing: how a maintainer tries a contract before publishing it.
    ///
    /// # Errors
    /// See [`LookupError`]; `Busy` when [`super::IngestSettings::max_dry_runs`] are
    /// running.
    #[tracing::instrument(skip_all, fields(import = %id), err(level = "debug"))]
    pub async fn dry_run(
        &self,
        dataset: &DatasetName,
        id: &ImportId,
        contract: Contract,
        sample: usize,
    ) -> Result<DryRun, LookupError> {
        self.settings.contract_limits.check(&contract)?;
        let _slot = self.dry_runs.take().ok_or(LookupError::Busy)?;
        let (import, reader) = self.document(dataset, id).await?;
        if import.import.content_type == crate::ingest::DELETIONS_MEDIA_TYPE {
            return Err(LookupError::NotADocument);
        }
        let decoder = self.ports.decoder.clone();
        let result = pipeline::dry_run(reader, decoder, contract).await?;
        Ok(DryRun {
            verdict: result.verdict,
            report: result.report,
            records_total: result.records.len() as u64,
            records: result.records.into_values().take(sample).collect(),
            conflicts: result.conflicts.into_iter().take(sample).collect(),
        })
    }

    async fn dataset_exists(&self, dataset: &DatasetName) -> Result<(), LookupError> {
        match self.ports.datasets.get(dataset).await {
            Ok(_) => Ok(()),
            Err(CatalogError::NotFound) => Err(LookupError::UnknownDataset),
            Err(e) => Err(LookupError::Unexpected(anyhow(e))),
        }
    }

    /// An import not found in `dataset`: the dataset may be the unknown part.
    async fn unknown(&self, dataset: &DatasetName) -> LookupError {
        match self.dataset_exists(dataset).await {
            Ok(()) => LookupError::UnknownImport,
            Err(e) => e,
        }
    }
}

/// A fixed number of slots, taken without waiting and given back on drop.
pub(super) struct Slots {
    taken: async_channel::Sender<()>,
    free: async_channel::Receiver<()>,
}

/// One slot, held until dropped.
pub(super) struct Slot<'a>(&'a async_channel::Receiver<()>);

impl Slots {
    pub(super) fn new(count: usize) -> Self {
        let (taken, free) = async_channel::bounded(count.max(1));
        Self { taken, free }
    }

    /// A slot, or `None` when all are taken.
    pub(super) fn take(&self) -> Option<Slot<'_>> {
        self.taken.try_send(()).ok().map(|()| Slot(&self.free))
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let _ = self.0.try_recv();
    }
}

#[cfg(test)]
mod tests {
    use super::Slots;

    #[test]
    fn slots_are_refused_when_all_are_taken_and_come_back_when_dropped() {
        let slots = Slots::new(2);
        let (a, b) = (slots.take(), slots.take());
        assert!(a.is_some() && b.is_some());
        assert!(slots.take().is_none(), "a third is refused");
        drop(a);
        assert!(slots.take().is_some(), "a dropped slot is free again");
    }
}
