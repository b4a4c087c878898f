use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::model::{ContractVersion, DatasetName, ImportId, ImportReport, ImportStatus};

/// What is known about a document before its bytes arrive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewImport {
    /// Its dataset.
    pub dataset: DatasetName,
    /// The contract it will be processed with.
    pub contract: ContractVersion,
    /// The media type it arrived with.
    pub content_type: String,
    /// Where it came from (`api`, `cli`, `source:<name>`).
    pub source: String,
    /// The client's `Idempotency-Key`, if it sent one.
    pub idempotency_key: Option<String>,
}

/// An import as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportSummary {
    /// Its id.
    pub id: ImportId,
    /// What arrived.
    pub import: NewImport,
    /// Bytes stored.
    pub size: u64,
    /// Hex SHA-256 of the bytes.
    pub sha256: String,
    /// When the last byte was committed.
    pub received_at: DateTime<Utc>,
    /// Where it is in its life.
    pub status: ImportStatus,
    /// The report, once processed.
    pub report: Option<ImportReport>,
}

/// Errors of the vault.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// No such import.
    #[error("import not found")]
    NotFound,
    /// The same bytes (same SHA-256) or the same idempotency key were already received
    /// for this dataset: this is the first import, and nothing new was stored.
    #[error("already received as import {}", .0.id)]
    AlreadyReceived(Box<ImportSummary>),
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Receives a document's bytes in chunks. Dropping it without [`VaultWriter::commit`]
/// discards everything written.
#[async_trait::async_trait]
pub trait VaultWriter: Send {
    /// Appends a chunk. Chunks MUST NOT be held in memory beyond a bounded buffer.
    ///
    /// # Errors
    /// - `Unexpected` when storing failed; the writer is then unusable.
    async fn write(&mut self, chunk: &[u8]) -> Result<(), VaultError>;

    /// Stores the document durably with its size and hash and queues it for
    /// processing (status `received`), in one step.
    ///
    /// # Errors
    /// - `AlreadyReceived` with the first import when the hash or idempotency key was
    ///   seen before for this dataset (MUST be detected also under races).
    async fn commit(self: Box<Self>, sha256: &str) -> Result<ImportSummary, VaultError>;
}

/// Reads a stored document back in chunks, in order.
#[async_trait::async_trait]
pub trait VaultReader: Send {
    /// The next chunk, or `None` at the end.
    ///
    /// # Errors
    /// - `Unexpected` when reading failed.
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, VaultError>;
}

/// The raw vault: every received document, byte for byte, before anything else.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait::async_trait]
pub trait ImportVault: Send + Sync {
    /// Starts receiving a document.
    ///
    /// # Errors
    /// - `AlreadyReceived` when `idempotency_key` was already used for this dataset.
    async fn begin(&self, import: &NewImport) -> Result<Box<dyn VaultWriter>, VaultError>;

    /// Opens a stored document for reading.
    ///
    /// # Errors
    /// - `NotFound` when there is no such import.
    async fn open(&self, id: &ImportId) -> Result<Box<dyn VaultReader>, VaultError>;

    /// One import's metadata, status and report.
    ///
    /// # Errors
    /// - `NotFound` when there is no such import.
    async fn get(&self, id: &ImportId) -> Result<ImportSummary, VaultError>;

    /// A dataset's imports, newest first, at most `limit` after skipping `offset`.
    ///
    /// # Errors
    /// - `Unexpected` only.
    async fn list(
        &self,
        dataset: &DatasetName,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<ImportSummary>, VaultError>;

    /// A dataset's imports received before `before` (one of them), newest first, at
    /// most `limit`: a keyset page, stable while imports arrive. An id the dataset
    /// does not have gives an empty page.
    ///
    /// # Errors
    /// - `Unexpected` only.
    async fn list_before(
        &self,
        dataset: &DatasetName,
        before: &ImportId,
        limit: u32,
    ) -> Result<Vec<ImportSummary>, VaultError>;
}

/// A worker's claim on an import, valid until `expires_at` unless renewed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The claimed import.
    pub import: ImportId,
    /// Who holds it.
    pub worker: String,
    /// A token that changes with every claim, so a stale holder cannot renew.
    pub token: String,
    /// When it lapses.
    pub expires_at: DateTime<Utc>,
    /// How many times the import has been claimed since it was received or requeued,
    /// this claim included; a release gives the claim back.
    pub attempt: u32,
}

/// Errors of the import queue.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The lease expired and was (or may be) claimed by another worker.
    #[error("lease lost")]
    LeaseLost,
    /// No such import.
    #[error("import not found")]
    NotFound,
    /// The import is being processed; it can be requeued once it has finished.
    #[error("import is being processed")]
    Busy,
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Imports waiting for a worker, handed out under leases.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait::async_trait]
pub trait ImportQueue: Send + Sync {
    /// Claims the oldest `received` import, or one whose lease expired, for `lease`,
    /// counting the attempt. Concurrent claimers (threads or processes) MUST never get
    /// the same import.
    ///
    /// # Errors
    /// - `Unexpected` only; `Ok(None)` when nothing is waiting.
    async fn claim(&self, worker: &str, lease: Duration) -> Result<Option<Lease>, QueueError>;

    /// Extends a lease still held, to `by` from now. While an import's
    /// [`crate::ports::ImportWriter`] is open, renew through it instead.
    ///
    /// # Errors
    /// - `LeaseLost` when it expired or was claimed by another worker.
    async fn renew(&self, lease: &Lease, by: Duration) -> Result<Lease, QueueError>;

    /// Gives an import back (graceful shutdown): it becomes `received` again, and the
    /// claim does not count as an attempt.
    ///
    /// # Errors
    /// - `LeaseLost` when the lease was no longer held.
    async fn release(&self, lease: &Lease) -> Result<(), QueueError>;

    /// The workers holding a lease that has not expired, each named once.
    ///
    /// # Errors
    /// - `Unexpected` only.
    async fn holders(&self) -> Result<Vec<String>, QueueError>;

    /// Ends every unexpired lease `worker` holds, as if it had expired: its imports
    /// can be claimed at once (what start-up does for the workers of a process that
    /// died). The claims keep counting as attempts. Gives how many leases ended.
    ///
    /// # Errors
    /// - `Unexpected` only.
    async fn expire(&self, worker: &str) -> Result<u64, QueueError>;

    /// Number of imports waiting (`received`, or `processing` under an expired lease).
    ///
    /// # Errors
    /// - `Unexpected` only.
    async fn depth(&self) -> Result<u64, QueueError>;

    /// Queues a finished import again, to be processed with `contract` (reprocessing):
    /// it becomes `received` with that contract version; its report and attempts are
    /// cleared.
    ///
    /// # Errors
    /// - `NotFound` when there is no such import;
    /// - `Busy` when it is `received` or `processing` (not finished yet).
    async fn requeue(
        &self,
        id: &ImportId,
        contract: ContractVersion,
    ) -> Result<ImportSummary, QueueError>;
}
