use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{ImportSummary, NewImport, UrlRefused};
use crate::model::DatasetName;
use crate::sources::{SourceKind, SourceSpec};

/// What a server said about a file, sent back so an unchanged file costs a `304`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validators {
    /// Its `ETag`.
    pub etag: Option<String>,
    /// Its `Last-Modified`.
    pub last_modified: Option<String>,
}

/// One page to fetch, with everything the adapter needs and nothing it must look up.
#[derive(Clone, PartialEq, Eq)]
pub struct FetchRequest {
    /// The source as declared.
    pub spec: SourceSpec,
    /// Where the run continues: `None` for its first page; otherwise what the previous
    /// page said (a cursor, a page number, a `Link` URL).
    pub cursor: Option<String>,
    /// The incremental parameter's value (the highest value of the last complete run).
    pub since: Option<String>,
    /// Where the records are in a page: object keys from the top (empty: the page is
    /// the array).
    pub records: Vec<String>,
    /// The validators of the last fetch of a file.
    pub validators: Validators,
    /// The authentication header's name and value (the secret resolved).
    pub auth: Option<(String, String)>,
    /// A response larger than this is refused.
    pub max_bytes: u64,
}

/// The secret is never printed.
impl std::fmt::Debug for FetchRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchRequest")
            .field("source", &self.spec.name)
            .field("url", &crate::redact::url(&self.spec.url))
            .field("cursor", &self.cursor)
            .field("since", &self.since)
            .field("auth", &self.auth.as_ref().map(|(h, _)| h))
            .finish_non_exhaustive()
    }
}

/// One page (or file) fetched: a document for the vault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedPage {
    /// The body, as received.
    pub body: Vec<u8>,
    /// Where the next page is; `None` at the end of the run.
    pub next: Option<String>,
    /// Records found in it.
    pub records: u64,
    /// The highest value of the incremental field among them.
    pub highest: Option<String>,
    /// The server's validators for the next fetch.
    pub validators: Validators,
}

/// What a fetch gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// A page.
    Page(FetchedPage),
    /// The file has not changed since the validators sent (`304`).
    NotModified,
}

/// Errors of a pull source.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// 5xx, 429, a timeout or a broken connection: retried with back-off.
    #[error("{reason}")]
    Unavailable {
        /// What happened, for the source's state and the log.
        reason: String,
        /// The server's `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// The source refused us or answered what cannot be read (4xx other than 429, a
    /// page that is not JSON, too large, a redirect): retried at the back-off too, and
    /// it turns the source degraded like any other failure.
    #[error("{0}")]
    Refused(String),
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// An adapter that fetches the pages of one kind of source (DESIGN §9).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait::async_trait]
pub trait ExternalSource: Send + Sync {
    /// The kind of source it fetches.
    fn kind(&self) -> SourceKind;

    /// Fetches one page.
    ///
    /// # Errors
    /// See [`SourceError`]; never the secret in a message.
    async fn fetch(&self, request: &FetchRequest) -> Result<Fetched, SourceError>;

    /// Whether `url` may be fetched (the outbound URL guard of DESIGN §13).
    ///
    /// # Errors
    /// The reason, for the client.
    async fn check_url(&self, url: &str) -> Result<(), UrlRefused>;
}

/// Where a source is, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceState {
    /// Where the run in progress continues; `None`: the next run starts at the start.
    pub cursor: Option<String>,
    /// The incremental parameter's value: the highest seen by the last complete run.
    pub watermark: Option<String>,
    /// The highest value seen so far by the run in progress.
    pub run_watermark: Option<String>,
    /// The file's validators from the last fetch.
    pub validators: Validators,
    /// When the next run (or retry) is due.
    pub next_run_at: DateTime<Utc>,
    /// When a worker last took the source.
    pub last_run_at: Option<DateTime<Utc>>,
    /// When a run last completed.
    pub last_success_at: Option<DateTime<Utc>>,
    /// Pages (or files) fetched and saved, in total.
    pub pages: u64,
    /// Records in them, in total.
    pub records: u64,
    /// Failed attempts since the last page saved.
    pub failures: u32,
    /// Whether the failures reached the setting that makes a source degraded.
    pub degraded: bool,
    /// The last failure, for a person.
    pub last_error: Option<String>,
    /// The worker holding it now (an unexpired lease).
    pub held_by: Option<String>,
}

/// A source and its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// Its dataset.
    pub dataset: DatasetName,
    /// As declared.
    pub spec: SourceSpec,
    /// Where it is.
    pub state: SourceState,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

impl Source {
    /// The `source` of the imports it makes: `source:<name>`.
    pub fn label(&self) -> String {
        label(&self.spec.name)
    }
}

/// The `source` of the imports a source named `name` makes.
pub fn label(name: &str) -> String {
    format!("source:{name}")
}

/// A worker's claim on a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceLease {
    /// The source as claimed.
    pub source: Source,
    /// A token that changes with every claim, so a stale holder cannot save.
    pub token: String,
    /// The failures before this claim, plus one.
    pub attempt: u32,
}

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceClaim {
    /// A due source, now leased.
    Claimed(Box<SourceLease>),
    /// Nothing due; the earliest unpaused source is due then (if any).
    Nothing {
        /// When one is due.
        next_due: Option<DateTime<Utc>>,
    },
}

/// Where a saved page moves its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// The next page; `None` when the run is complete (the next run starts at the
    /// start, and `run_watermark` becomes the watermark if higher).
    pub cursor: Option<String>,
    /// The highest incremental value of the run so far.
    pub run_watermark: Option<String>,
    /// The file's validators.
    pub validators: Validators,
    /// Records in the page.
    pub records: u64,
    /// When the next run is due, if the run is complete.
    pub next_run_at: DateTime<Utc>,
    /// The lease is renewed to this.
    pub lease_until: DateTime<Utc>,
}

/// A page for the vault, saved with its source's progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageToSave {
    /// Its import.
    pub import: NewImport,
    /// Its bytes.
    pub body: Vec<u8>,
    /// Hex SHA-256 of the bytes.
    pub sha256: String,
}

/// What saving a page did.
#[derive(Debug, Clone, PartialEq)]
pub enum PageSaved {
    /// A new import, queued.
    New(ImportSummary),
    /// The same bytes were received before for this dataset: that import; the
    /// progress was saved all the same.
    Duplicate(ImportSummary),
}

/// Errors of the source store.
#[derive(Debug, thiserror::Error)]
pub enum SourceStoreError {
    /// No such source in that dataset (or no such dataset).
    #[error("source not found")]
    NotFound,
    /// The dataset already has a source of that name.
    #[error("the dataset already has a source of that name")]
    Taken,
    /// The lease lapsed or was taken over: nothing was saved.
    #[error("lease lost")]
    LeaseLost,
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Sources, their state and their leases.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait::async_trait]
pub trait SourceStore: Send + Sync {
    /// Creates a source, due at `first_run`.
    ///
    /// # Errors
    /// - `Taken` when the dataset has a source of that name (also under races);
    /// - `NotFound` when there is no such dataset.
    async fn create(
        &self,
        dataset: &DatasetName,
        spec: &SourceSpec,
        first_run: DateTime<Utc>,
    ) -> Result<Source, SourceStoreError>;

    /// A dataset's sources, by name.
    ///
    /// # Errors
    /// - `Unexpected` only.
    async fn list(&self, dataset: &DatasetName) -> Result<Vec<Source>, SourceStoreError>;

    /// One source.
    ///
    /// # Errors
    /// - `NotFound`.
    async fn get(&self, dataset: &DatasetName, name: &str) -> Result<Source, SourceStoreError>;

    /// Replaces a source's declaration (same name); with `restart`, the run in
    /// progress starts over at the first page (its cursor and run watermark cleared).
    ///
    /// # Errors
    /// - `NotFound`.
    async fn update(
        &self,
        dataset: &DatasetName,
        spec: &SourceSpec,
        restart: bool,
    ) -> Result<Source, SourceStoreError>;

    /// Deletes a source (its imports stay in the vault).
    ///
    /// # Errors
    /// - `NotFound`.
    async fn delete(&self, dataset: &DatasetName, name: &str) -> Result<(), SourceStoreError>;

    /// Makes a source due at `at`; with `reset`, it also forgets where it was (cursor,
    /// watermarks, validators, failures), so the next run starts from the beginning.
    ///
    /// # Errors
    /// - `NotFound`.
    async fn schedule(
        &self,
        dataset: &DatasetName,
        name: &str,
        at: DateTime<Utc>,
        reset: bool,
    ) -> Result<Source, SourceStoreError>;

    /// Claims the unpaused source due earliest at `now` (its lease lapsed or never
    /// taken) for `lease`. Concurrent claimers never get the same source.
    ///
    /// # Errors
    /// - `Unexpected` only.
    async fn claim(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<SourceClaim, SourceStoreError>;

    /// In one transaction: stores `page` in the vault as a `received` import (or finds
    /// the earlier import of the same bytes) and moves the source to `progress`,
    /// clearing its failures. Without a page (an unchanged file), only the progress.
    ///
    /// # Errors
    /// - `LeaseLost` when the lease lapsed or was taken over: nothing is saved.
    async fn save_page(
        &self,
        lease: &SourceLease,
        page: Option<PageToSave>,
        progress: &Progress,
    ) -> Result<Option<PageSaved>, SourceStoreError>;

    /// Records a failed attempt and ends the lease: one more failure, `reason`, due
    /// again at `retry_at`, and `degraded` as given. The cursor stays.
    ///
    /// # Errors
    /// - `LeaseLost` when the lease lapsed or was taken over.
    async fn fail(
        &self,
        lease: &SourceLease,
        retry_at: DateTime<Utc>,
        reason: &str,
        degraded: bool,
    ) -> Result<(), SourceStoreError>;

    /// Gives a source back untouched (shutdown): claimable at once, the claim not
    /// counted.
    ///
    /// # Errors
    /// - `LeaseLost` when the lease lapsed or was taken over.
    async fn release(&self, lease: &SourceLease) -> Result<(), SourceStoreError>;

    /// The finished imports of `dataset` whose `source` is `label` that failed or left
    /// records out as invalid, oldest first, at most `limit`.
    ///
    /// # Errors
    /// - `Unexpected` only.
    async fn faulty_imports(
        &self,
        dataset: &DatasetName,
        label: &str,
        limit: u32,
    ) -> Result<Vec<ImportSummary>, SourceStoreError>;
}
