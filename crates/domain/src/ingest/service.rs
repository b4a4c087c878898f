//! The ingestion use cases: receive, claim, process, reprocess, look up.

use std::fmt::Display;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_lite::{Stream, StreamExt};
use sha2::{Digest, Sha256};

use super::fresh::FreshDocuments;
use super::pipeline::{self, Renewal, store};
use crate::merge::Verdict;
use crate::model::{ContractVersion, DatasetName, ImportId, ImportReport, Revision};
use crate::ports::{
    CatalogError, Clock, ContractStore, DatasetStore, DocumentDecoder, ImportQueue, ImportSummary,
    ImportVault, Lease, NewImport, QueueError, RecordStore, StoredRecord, VaultError,
};
use crate::work::{Wakeups, WorkKind};

/// The ports ingestion works through.
#[derive(Clone)]
pub struct IngestPorts {
    /// Datasets (for the current contract).
    pub datasets: Arc<dyn DatasetStore>,
    /// Published contracts.
    pub contracts: Arc<dyn ContractStore>,
    /// The raw vault.
    pub vault: Arc<dyn ImportVault>,
    /// Imports waiting for a worker.
    pub queue: Arc<dyn ImportQueue>,
    /// Latest state, history and conflicts.
    pub records: Arc<dyn RecordStore>,
    /// Wire formats.
    pub decoder: Arc<dyn DocumentDecoder>,
    /// Time.
    pub clock: Arc<dyn Clock>,
}

/// How ingestion behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct IngestSettings {
    /// Records merged and written per batch.
    pub batch_size: usize,
    /// How long a claim lasts without renewal.
    pub lease: Duration,
    /// How often a worker renews its lease while processing.
    pub renew_every: Duration,
    /// How long an idle worker waits before polling the queue again: a safety net, as
    /// workers are woken when imports are committed (in process, and across instances
    /// on PostgreSQL).
    pub idle_poll: Duration,
    /// The largest document accepted, in bytes.
    pub max_document_bytes: u64,
    /// Claims after which an import that keeps failing unexpectedly (a bug, a crash,
    /// not a bad document) is marked failed instead of being retried.
    pub max_attempts: u32,
    /// How long a failed import waits before its next attempt, doubled after each
    /// further failure (and never longer than the lease).
    pub retry_backoff: Duration,
    /// Dry runs at once (each holds a document's records in memory); more are refused.
    pub max_dry_runs: usize,
    /// Uploads at once in this process (each may hold a vault write for as long as
    /// its client takes to send the body); more are refused as `Busy`.
    pub max_uploads: usize,
    /// How large a draft contract a dry run takes.
    pub contract_limits: crate::contract::ContractLimits,
    /// Every callback delay is multiplied by this (1 in production; tests and
    /// replays scale the accounts workload's seconds down to milliseconds).
    pub callback_scale: f64,
    /// Documents received by this process up to this size (bytes) are also kept in
    /// memory until one of its workers processes them, instead of being read back
    /// from the vault (ADR 23).
    pub fresh_document_bytes: usize,
    /// How many bytes of such documents are kept at once, the oldest dropped first
    /// (0: none is kept).
    pub fresh_budget_bytes: usize,
}

impl Default for IngestSettings {
    fn default() -> Self {
        Self {
            batch_size: 1000,
            lease: Duration::from_secs(60),
            renew_every: Duration::from_secs(20),
            idle_poll: Duration::from_secs(5),
            max_document_bytes: 1 << 32,
            max_attempts: 5,
            retry_backoff: Duration::from_secs(1),
            max_dry_runs: 2,
            max_uploads: 32,
            contract_limits: crate::contract::ContractLimits::default(),
            callback_scale: 1.0,
            fresh_document_bytes: 4 << 20,
            fresh_budget_bytes: 32 << 20,
        }
    }
}

/// The name of worker `n` of process `pid` on `host`, as
/// [`ImportService::take_back_abandoned`] reads it.
pub fn worker_name(host: &str, pid: u32, n: u32) -> String {
    format!("{host}-{pid}-{n}")
}

/// A document received: its import, and whether it is new or the first import of the
/// same body or idempotency key.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    /// The import (the earlier one when `is_new` is false).
    pub import: ImportSummary,
    /// Whether this call stored it.
    pub is_new: bool,
}

/// Why a document was not received.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// The dataset does not exist.
    #[error("no such dataset")]
    UnknownDataset,
    /// The body is larger than the limit; nothing was stored.
    #[error("the document is larger than {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// The dataset's contract reads another format than the media type sent.
    #[error("the dataset's contract reads {expected} documents, not {sent}")]
    UnsupportedMediaType {
        /// The media type sent.
        sent: String,
        /// The media type of the contract's format.
        expected: &'static str,
    },
    /// Reading the body failed (the client went away); nothing was stored.
    #[error("reading the document failed: {0}")]
    Body(String),
    /// As many uploads as allowed are arriving at once; nothing was read. Retry
    /// shortly.
    #[error("{limit} uploads are arriving already, as many as this instance takes at once")]
    Busy {
        /// The limit ([`IngestSettings::max_uploads`]).
        limit: usize,
    },
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// What processing an import did.
#[derive(Debug, Clone, PartialEq)]
pub struct Processed {
    /// Applied or rejected.
    pub verdict: Verdict,
    /// The report stored with the import.
    pub report: ImportReport,
    /// The dataset's revision afterwards.
    pub revision: Revision,
}

/// Why processing stopped without a verdict (the import stays queued).
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// Another worker claimed the import; this one's work was rolled back.
    #[error("lease lost")]
    LeaseLost,
    /// Anything else (store unreachable, …); the work was rolled back.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Why an import could not be queued for reprocessing.
#[derive(Debug, thiserror::Error)]
pub enum ReprocessError {
    /// No such import.
    #[error("import not found")]
    NotFound,
    /// The dataset has no such contract version.
    #[error("no such contract version")]
    UnknownContract,
    /// The import has not finished processing yet.
    #[error("import is still being processed")]
    Busy,
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Told of every import that finishes processing (metrics); never fails, never blocks.
pub trait ImportObserver: Send + Sync {
    /// An import of `dataset` finished with this verdict and report.
    fn finished(&self, dataset: &DatasetName, verdict: Verdict, report: &ImportReport);

    /// A committed import of `dataset` cancelled `count` pending callbacks (newer
    /// versions arrived before they were due).
    fn callbacks_cancelled(&self, _dataset: &DatasetName, _count: u64) {}
}

/// The observer of a service nobody watches.
struct Unobserved;

impl ImportObserver for Unobserved {
    fn finished(&self, _: &DatasetName, _: Verdict, _: &ImportReport) {}
}

/// The ingestion use cases.
pub struct ImportService {
    ports: IngestPorts,
    settings: IngestSettings,
    observer: Arc<dyn ImportObserver>,
    dry_runs: lookup::Slots,
    uploads: lookup::Slots,
    wakeups: Wakeups,
    fresh: FreshDocuments,
    in_progress: super::progress::InProgress,
}

impl ImportService {
    /// A service over these ports.
    pub fn new(ports: IngestPorts, settings: IngestSettings) -> Self {
        Self {
            dry_runs: lookup::Slots::new(settings.max_dry_runs),
            uploads: lookup::Slots::new(settings.max_uploads),
            fresh: FreshDocuments::new(settings.fresh_document_bytes, settings.fresh_budget_bytes),
            ports,
            settings,
            observer: Arc::new(Unobserved),
            wakeups: Wakeups::default(),
            in_progress: super::progress::InProgress::default(),
        }
    }

    /// Where an import stands while this process works on it: records decoded, bytes
    /// read of its size, and a rate. `None` when this process is not processing it.
    pub fn progress(&self, import: &ImportId) -> Option<super::ImportProgress> {
        self.in_progress.get(import, self.ports.clock.now())
    }

    /// The same service, waking its workers through `wakeups` (shared with the other
    /// kinds of work of the process, and with the store's cross-instance signal).
    pub fn woken_by(mut self, wakeups: Wakeups) -> Self {
        self.wakeups = wakeups;
        self
    }

    /// What wakes its workers.
    pub fn wakeups(&self) -> &Wakeups {
        &self.wakeups
    }

    /// The same service, telling `observer` of every finished import.
    pub fn observed_by(mut self, observer: Arc<dyn ImportObserver>) -> Self {
        self.observer = observer;
        self
    }

    /// Imports waiting for a worker.
    ///
    /// # Errors
    /// When the queue is unreachable.
    pub async fn depth(&self) -> Result<u64, QueueError> {
        self.ports.queue.depth().await
    }

    /// The settings it runs with.
    pub fn settings(&self) -> &IngestSettings {
        &self.settings
    }

    /// Streams a document into the vault (hashing it on the way) and queues it for
    /// the dataset's current contract. The same body or idempotency key for the same
    /// dataset gives the first import back, with nothing stored twice.
    ///
    /// At most [`IngestSettings::max_uploads`] bodies arrive at once: a slow client
    /// holds a slot, never more.
    ///
    /// # Errors
    /// See [`ReceiveError`]; on any error nothing is stored.
    #[tracing::instrument(skip_all, fields(dataset = %dataset), err(level = "debug"))]
    pub async fn receive<S, B, E>(
        &self,
        dataset: &DatasetName,
        content_type: &str,
        source: &str,
        idempotency_key: Option<String>,
        body: S,
    ) -> Result<Received, ReceiveError>
    where
        S: Stream<Item = Result<B, E>> + Unpin,
        B: AsRef<[u8]>,
        E: Display,
    {
        let limit = self.settings.max_uploads;
        let _slot = self.uploads.take().ok_or(ReceiveError::Busy { limit })?;
        let current = match self.ports.datasets.get(dataset).await {
            Ok(d) => d.current_contract,
            Err(CatalogError::NotFound) => return Err(ReceiveError::UnknownDataset),
            Err(e) => return Err(ReceiveError::Unexpected(e.into())),
        };
        let format = self.ports.contracts.get(dataset, current).await;
        let format = format.map_err(anyhow)?.contract.format().clone();
        // Deletion documents are written by `delete_record` alone (ADR 40).
        if !format.accepts(content_type) || super::deletions::is_deletion(content_type) {
            return Err(ReceiveError::UnsupportedMediaType {
                sent: content_type.to_owned(),
                expected: format.media_type(),
            });
        }
        let new = NewImport {
            dataset: dataset.clone(),
            contract: current,
            content_type: content_type.to_owned(),
            source: source.to_owned(),
            idempotency_key,
        };
        self.store(&new, body).await
    }

    /// Deletes a record (ADR 40): stores a deletion document naming the state it has
    /// and queues it like any import, so that the deletion is in the vault, in the
    /// dataset's imports, replayed by a reprocess, and applied by a worker with its
    /// history entry, `record.deleted` event and cancelled callback in one unit of
    /// work. Each call is a document of its own; the same idempotency key gives the
    /// first import back.
    ///
    /// # Errors
    /// As [`ImportService::receive`].
    #[tracing::instrument(skip_all, fields(dataset = %dataset, key = %record.record.key), err(level = "debug"))]
    pub async fn delete_record(
        &self,
        dataset: &DatasetName,
        record: &StoredRecord,
        source: &str,
        idempotency_key: Option<String>,
    ) -> Result<Received, ReceiveError> {
        let current = match self.ports.datasets.get(dataset).await {
            Ok(d) => d.current_contract,
            Err(CatalogError::NotFound) => return Err(ReceiveError::UnknownDataset),
            Err(e) => return Err(ReceiveError::Unexpected(e.into())),
        };
        let new = NewImport {
            dataset: dataset.clone(),
            contract: current,
            content_type: super::deletions::MEDIA_TYPE.to_owned(),
            source: source.to_owned(),
            idempotency_key,
        };
        let at = self.ports.clock.now();
        let body = super::deletions::document(std::slice::from_ref(record), at);
        self.store(
            &new,
            futures_lite::stream::once(Ok::<_, ReceiveError>(body)),
        )
        .await
    }

    /// Streams a body into the vault as `new`, hashing it on the way, and queues it.
    async fn store<S, B, E>(&self, new: &NewImport, mut body: S) -> Result<Received, ReceiveError>
    where
        S: Stream<Item = Result<B, E>> + Unpin,
        B: AsRef<[u8]>,
        E: Display,
    {
        let mut writer = match self.ports.vault.begin(new).await {
            Ok(w) => w,
            Err(e) => return earlier(e),
        };
        let (mut hasher, mut size) = (Sha256::new(), 0u64);
        // A copy for this process's workers while the document is small enough.
        let mut copy = Some(Vec::new());
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| ReceiveError::Body(e.to_string()))?;
            let chunk = chunk.as_ref();
            size += chunk.len() as u64;
            if size > self.settings.max_document_bytes {
                let limit = self.settings.max_document_bytes;
                return Err(ReceiveError::TooLarge { limit });
            }
            hasher.update(chunk);
            if !self.fresh.fits(size) {
                copy = None;
            }
            if let Some(copy) = &mut copy {
                copy.push(chunk.to_vec());
            }
            writer.write(chunk).await.map_err(vault_error)?;
        }
        let sha256 = hex(&hasher.finalize());
        match writer.commit(&sha256).await {
            Ok(import) => {
                if let Some(copy) = copy {
                    self.fresh.keep(import.id.clone(), copy);
                }
                self.wakeups.notify(WorkKind::Imports);
                tracing::info!(import = %import.id, size, "document received");
                Ok(Received {
                    import,
                    is_new: true,
                })
            }
            Err(e) => earlier(e),
        }
    }

    /// Claims the next waiting import for `worker`.
    ///
    /// # Errors
    /// When the queue is unreachable.
    pub async fn claim(&self, worker: &str) -> Result<Option<Lease>, QueueError> {
        self.ports.queue.claim(worker, self.settings.lease).await
    }

    /// Gives a claimed import back to the queue.
    ///
    /// # Errors
    /// When the lease was lost or the queue is unreachable.
    pub async fn release(&self, lease: &Lease) -> Result<(), QueueError> {
        self.ports.queue.release(lease).await
    }

    /// After a failed attempt, lets the import be claimed again at `at` (its back-off)
    /// rather than when the whole lease expires.
    ///
    /// # Errors
    /// When the lease was lost or the queue is unreachable (the lease then expires).
    pub async fn retry_at(&self, lease: &Lease, at: DateTime<Utc>) -> Result<(), QueueError> {
        let wait = (at - self.ports.clock.now()).to_std().unwrap_or_default();
        self.ports
            .queue
            .renew(lease, wait.min(self.settings.lease))
            .await?;
        Ok(())
    }

    /// Takes back at once the imports held by workers of this host's processes that
    /// died (a crash, a kill -9, a restart), instead of waiting for their leases to
    /// expire. Workers are named `{host}-{pid}-{n}` ([`worker_name`]; a job worker
    /// holding an import for a reprocess, `{host}-{pid}-job-{n}`); `is_alive` tells
    /// whether a process id still runs. Gives how many imports were taken back.
    ///
    /// # Errors
    /// When the queue is unreachable.
    pub async fn take_back_abandoned(
        &self,
        host: &str,
        is_alive: &(dyn Fn(u32) -> bool + Sync),
    ) -> Result<u64, QueueError> {
        let mut taken = 0;
        for holder in self.ports.queue.holders().await? {
            // `{host}-{pid}-{n}`, or `{host}-{pid}-job-{n}` for an import a reprocess
            // job holds, read from the right: a host may hold `-` and digits.
            let pid = holder.rsplit_once('-').and_then(|(rest, _n)| {
                let rest = rest.strip_suffix("-job").unwrap_or(rest);
                let (of, pid) = rest.rsplit_once('-')?;
                (of == host).then(|| pid.parse::<u32>().ok()).flatten()
            });
            let Some(pid) = pid.filter(|pid| !is_alive(*pid)) else {
                continue;
            };
            let expired = self.ports.queue.expire(&holder).await?;
            tracing::info!(worker = %holder, pid, imports = expired,
                "took back the imports of a worker whose process is gone");
            taken += expired;
        }
        Ok(taken)
    }

    /// Processes a claimed import: decode, map and merge in batches, write, and finish
    /// with the verdict, all in the store's one unit of work.
    ///
    /// # Errors
    /// See [`ProcessError`]; nothing is committed then.
    #[tracing::instrument(skip_all, fields(import = %lease.import), err)]
    pub async fn process(&self, lease: &Lease) -> Result<Processed, ProcessError> {
        let import = self.ports.vault.get(&lease.import).await.map_err(anyhow)?;
        let dataset = &import.import.dataset;
        let contract = self
            .ports
            .contracts
            .get(dataset, import.import.contract)
            .await
            .map_err(anyhow)?
            .contract;
        let reader = match self.fresh.take(&lease.import) {
            Some(kept) => kept,
            None => self.ports.vault.open(&lease.import).await.map_err(anyhow)?,
        };
        let mut writer = self.ports.records.begin_apply(lease).await.map_err(store)?;
        let tracking = self
            .in_progress
            .start(&lease.import, import.size, self.ports.clock.now());
        let renewal = Renewal::new(self.ports.clock.clone(), &self.settings);
        let decoder = self.ports.decoder.clone();
        let batch = pipeline::Batching {
            size: self.settings.batch_size,
            callback_scale: self.settings.callback_scale,
        };
        let tally = tracking.tally.clone();
        let (verdict, report) = if import.import.content_type == super::deletions::MEDIA_TYPE {
            super::deletions::apply(reader, &contract, writer.as_mut()).await?
        } else {
            let run = pipeline::run(
                reader,
                decoder,
                contract,
                writer.as_mut(),
                renewal,
                batch,
                tally,
            );
            run.await?
        };
        let finished = writer.finish(verdict, &report).await.map_err(store)?;
        // Its revision is committed: the next answer about the dataset reads it.
        self.wakeups.datasets().changed(dataset);
        // Its events' deliveries and its callback timers are committed: the workers of
        // this process look at once (other instances hear of them from the store, or
        // poll).
        self.wakeups.notify(WorkKind::Deliveries);
        self.wakeups.notify(WorkKind::Callbacks);
        self.wakeups.import_finished(&lease.import);
        super::events::log_cancelled(dataset, &lease.import, &finished.cancelled);
        self.observer.finished(dataset, verdict, &report);
        if !finished.cancelled.is_empty() {
            self.observer
                .callbacks_cancelled(dataset, finished.cancelled.len() as u64);
        }
        let revision = finished.revision;
        let outcome = match verdict {
            Verdict::Commit => "applied",
            Verdict::Reject => "rejected",
        };
        tracing::info!(
            %dataset,
            ?verdict,
            seen = report.seen,
            invalid = report.invalid,
            "import of {dataset} processed: {outcome}; {} records seen, {} inserted, {} updated, \
             {} deleted, {} unchanged, {} superseded, {} invalid, {} conflicts",
            report.seen,
            report.inserted,
            report.updated,
            report.deleted,
            report.unchanged,
            report.superseded,
            report.invalid,
            report.conflicts,
        );
        Ok(Processed {
            verdict,
            report,
            revision,
        })
    }

    /// Marks a claimed import failed without applying anything, with `reason` as its
    /// report's one error: what a worker does once an import has failed
    /// unexpectedly [`IngestSettings::max_attempts`] times.
    ///
    /// # Errors
    /// See [`ProcessError`].
    #[tracing::instrument(skip_all, fields(import = %lease.import), err)]
    pub async fn give_up(&self, lease: &Lease, reason: String) -> Result<(), ProcessError> {
        let writer = self.ports.records.begin_apply(lease).await.map_err(store)?;
        let error = crate::model::RecordError {
            location: crate::model::Location::default(),
            field: None,
            message: reason,
        };
        let report = ImportReport {
            errors: vec![error],
            ..ImportReport::default()
        };
        writer
            .finish(Verdict::Reject, &report)
            .await
            .map_err(store)?;
        self.wakeups.import_finished(&lease.import);
        if let Ok(import) = self.ports.vault.get(&lease.import).await {
            self.observer
                .finished(&import.import.dataset, Verdict::Reject, &report);
        }
        Ok(())
    }

    /// Queues a finished import again with another contract version (the dataset's
    /// current one when `None`).
    ///
    /// # Errors
    /// See [`ReprocessError`].
    #[tracing::instrument(skip_all, fields(import = %id), err(level = "debug"))]
    pub async fn reprocess(
        &self,
        id: &ImportId,
        contract: Option<ContractVersion>,
    ) -> Result<ImportSummary, ReprocessError> {
        let import = match self.ports.vault.get(id).await {
            Ok(i) => i,
            Err(VaultError::NotFound) => return Err(ReprocessError::NotFound),
            Err(e) => return Err(ReprocessError::Unexpected(anyhow(e))),
        };
        let dataset = &import.import.dataset;
        // A deleted dataset's documents are kept to be read, not processed (ADR 37).
        let current = match self.ports.datasets.get(dataset).await {
            Ok(d) => d.current_contract,
            Err(CatalogError::NotFound) => return Err(ReprocessError::NotFound),
            Err(e) => return Err(ReprocessError::Unexpected(anyhow(e))),
        };
        let version = contract.unwrap_or(current);
        match self.ports.contracts.get(dataset, version).await {
            Ok(_) => {}
            Err(CatalogError::NotFound) => return Err(ReprocessError::UnknownContract),
            Err(e) => return Err(ReprocessError::Unexpected(anyhow(e))),
        }
        let requeued = self.ports.queue.requeue(id, version).await;
        let requeued = requeued.map_err(|e| match e {
            QueueError::NotFound => ReprocessError::NotFound,
            QueueError::Busy => ReprocessError::Busy,
            e => ReprocessError::Unexpected(anyhow(e)),
        })?;
        self.wakeups.notify(WorkKind::Imports);
        Ok(requeued)
    }

    /// One import's metadata, status and report.
    ///
    /// # Errors
    /// `VaultError::NotFound` when there is no such import.
    pub async fn get(&self, id: &ImportId) -> Result<ImportSummary, VaultError> {
        self.ports.vault.get(id).await
    }
}

/// `AlreadyReceived` is an answer, not an error: the first import.
fn earlier(e: VaultError) -> Result<Received, ReceiveError> {
    match e {
        VaultError::AlreadyReceived(import) => {
            tracing::info!(import = %import.id, "document already received");
            Ok(Received {
                import: *import,
                is_new: false,
            })
        }
        e => Err(vault_error(e)),
    }
}

fn vault_error(e: VaultError) -> ReceiveError {
    ReceiveError::Unexpected(anyhow(e))
}

fn anyhow<E: std::error::Error + Send + Sync + 'static>(e: E) -> anyhow::Error {
    anyhow::Error::new(e)
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

mod lookup;

pub use lookup::{DryRun, LookupError};
#[cfg(test)]
mod tests;
