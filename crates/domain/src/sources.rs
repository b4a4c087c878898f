//! Pull sources (DESIGN §9, issue 18): external HTTP APIs polled on a schedule through
//! the [`ExternalSource`] adapters, each page saved as an import in the vault together
//! with the source's cursor, then processed by the ordinary pipeline.
//!
//! [`SourceService`] holds the use cases of the sources API; [`SourceWork`] is the kind
//! of leased work the runtime of [`crate::work`] runs to fetch them. A source's health
//! is read, not kept: `paused` when held, `degraded` when its fetches keep failing (the
//! store counts them) or when imports of its pages left records out as failing the
//! contract (a vendor renamed a field), `healthy` otherwise.

mod spec;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sha2::{Digest as _, Sha256};

use crate::contract::DocumentFormat;
use crate::ingest::hex;
use crate::model::DatasetName;
use crate::ports::{
    CatalogError, Clock, ContractStore, DatasetStore, ExternalSource, FetchRequest, Fetched,
    ImportSummary, NewImport, PageToSave, Progress, Source, SourceClaim, SourceError, SourceLease,
    SourceStore, SourceStoreError,
};
use crate::work::{Backoff, Claim, JitterPercent, LeasedWork, Wakeups, WorkError, WorkKind};

pub use spec::{
    Every, Incremental, MIN_SCHEDULE, Pagination, SourceAuth, SourceKind, SourcePatch, SourceSpec,
    SpecIssue, is_secret_name,
};

#[cfg(test)]
mod tests;

/// Secret values by name, from the configuration (never from the API, never stored).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secrets(BTreeMap<String, String>);

impl Secrets {
    /// Secrets from `(name, value)` pairs.
    pub fn new(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        Self(pairs.into_iter().collect())
    }

    /// The value of the secret `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Every value, so that logs and answers can be checked not to hold one.
    pub fn values(&self) -> impl Iterator<Item = &str> {
        self.0.values().map(String::as_str)
    }
}

/// Names only: a value is never printed.
impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// The ports sources work through.
#[derive(Clone)]
pub struct SourcePorts {
    /// Sources and their state.
    pub store: Arc<dyn SourceStore>,
    /// Datasets (a source's dataset and its current contract).
    pub datasets: Arc<dyn DatasetStore>,
    /// Contracts (the format of the pages).
    pub contracts: Arc<dyn ContractStore>,
    /// The adapters, one per kind.
    pub adapters: Vec<Arc<dyn ExternalSource>>,
    /// Time.
    pub clock: Arc<dyn Clock>,
}

/// How sources behave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSettings {
    /// How long a claim lasts without a page saved (longer than a fetch's timeout).
    pub lease: Duration,
    /// Failed attempts in a row after which a source is `degraded` and retried at its
    /// schedule instead of the back-off.
    pub degraded_after: u32,
    /// The wait after the first failed attempt, doubled with each further one.
    pub retry_base: Duration,
    /// The longest wait between attempts.
    pub retry_max: Duration,
    /// A page or file larger than this is refused.
    pub max_page_bytes: u64,
    /// The safety-net poll of an idle worker.
    pub idle_poll: Duration,
    /// Secret values by name.
    pub secrets: Secrets,
}

impl Default for SourceSettings {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(60),
            degraded_after: 5,
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(300),
            max_page_bytes: 16 * 1024 * 1024,
            idle_poll: Duration::from_secs(5),
            secrets: Secrets::default(),
        }
    }
}

impl SourceSettings {
    /// How the runtime treats sources: exponential back-off spread by up to 20 %, and
    /// the last "attempt" is the one that makes the source degraded.
    pub fn work(&self) -> crate::work::WorkSettings {
        crate::work::WorkSettings {
            max_attempts: self.degraded_after.max(1),
            backoff: Backoff::Exponential {
                base: self.retry_base,
                max: self.retry_max,
            },
            jitter: JitterPercent(20),
            idle_poll: self.idle_poll,
        }
    }
}

/// A source's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Fetching, and its pages pass the contract.
    Healthy,
    /// Its fetches keep failing, or its pages' records fail the contract.
    Degraded,
    /// Held by a client.
    Paused,
}

impl Health {
    /// Its name as shown (`healthy`, `degraded`, `paused`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Degraded => "degraded",
            Self::Paused => "paused",
        }
    }
}

/// A source as shown: its state and its health with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceView {
    /// The source.
    pub source: Source,
    /// Its health.
    pub status: Health,
    /// Why it is degraded.
    pub reason: Option<String>,
}

/// Why a sources request was refused.
#[derive(Debug, thiserror::Error)]
pub enum SourceApiError {
    /// No such dataset.
    #[error("dataset not found")]
    UnknownDataset,
    /// No such source in the dataset.
    #[error("source not found")]
    NotFound,
    /// The dataset already has a source of that name.
    #[error("the dataset already has a source of that name")]
    Taken,
    /// The declaration is wrong; every problem is listed.
    #[error("the source is invalid: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<SpecIssue>),
    /// Anything else.
    #[error(transparent)]
    Unexpected(anyhow::Error),
}

impl From<SourceStoreError> for SourceApiError {
    fn from(e: SourceStoreError) -> Self {
        match e {
            SourceStoreError::NotFound => Self::NotFound,
            SourceStoreError::Taken => Self::Taken,
            e => Self::Unexpected(e.into()),
        }
    }
}

/// The sources use cases.
pub struct SourceService {
    ports: SourcePorts,
    settings: SourceSettings,
    wakeups: Wakeups,
}

impl SourceService {
    /// A service over these ports.
    pub fn new(ports: SourcePorts, settings: SourceSettings) -> Self {
        Self {
            ports,
            settings,
            wakeups: Wakeups::default(),
        }
    }

    /// The same service, waking source workers (and import workers, for the pages it
    /// saves) through `wakeups`.
    pub fn woken_by(mut self, wakeups: Wakeups) -> Self {
        self.wakeups = wakeups;
        self
    }

    /// The settings it runs with.
    pub fn settings(&self) -> &SourceSettings {
        &self.settings
    }

    /// Declares a source of `dataset`, due at once.
    ///
    /// # Errors
    /// See [`SourceApiError`].
    pub async fn create(
        &self,
        dataset: &DatasetName,
        spec: SourceSpec,
    ) -> Result<SourceView, SourceApiError> {
        self.check(dataset, &spec).await?;
        let now = self.ports.clock.now();
        let source = self.ports.store.create(dataset, &spec, now).await?;
        tracing::info!(%dataset, source = %spec.name, kind = %spec.kind,
            url = %crate::redact::url(&spec.url), "source created");
        self.wakeups.notify(WorkKind::Sources);
        self.view(source).await
    }

    /// A dataset's sources, by name.
    ///
    /// # Errors
    /// See [`SourceApiError`].
    pub async fn list(&self, dataset: &DatasetName) -> Result<Vec<SourceView>, SourceApiError> {
        self.dataset_exists(dataset).await?;
        let mut views = Vec::new();
        for source in self.ports.store.list(dataset).await? {
            views.push(self.view(source).await?);
        }
        Ok(views)
    }

    /// One source.
    ///
    /// # Errors
    /// See [`SourceApiError`].
    pub async fn get(
        &self,
        dataset: &DatasetName,
        name: &str,
    ) -> Result<SourceView, SourceApiError> {
        let source = self.ports.store.get(dataset, name).await?;
        self.view(source).await
    }

    /// Changes a source; a new URL, records path or pagination starts the run in
    /// progress over from its first page.
    ///
    /// # Errors
    /// See [`SourceApiError`].
    pub async fn patch(
        &self,
        dataset: &DatasetName,
        name: &str,
        patch: &SourcePatch,
    ) -> Result<SourceView, SourceApiError> {
        let source = self.ports.store.get(dataset, name).await?;
        let spec = patch.apply(&source.spec);
        self.check(dataset, &spec).await?;
        let updated = self
            .ports
            .store
            .update(dataset, &spec, patch.moves_pages())
            .await?;
        tracing::info!(%dataset, source = name, restart = patch.moves_pages(), paused = spec.paused,
            "source changed");
        self.wakeups.notify(WorkKind::Sources);
        self.view(updated).await
    }

    /// Deletes a source; the imports it made stay.
    ///
    /// # Errors
    /// See [`SourceApiError`].
    pub async fn delete(&self, dataset: &DatasetName, name: &str) -> Result<(), SourceApiError> {
        self.ports.store.delete(dataset, name).await?;
        tracing::info!(%dataset, source = name, "source deleted");
        Ok(())
    }

    /// Makes a source due now (a paused one stays held); with `reset`, its next run
    /// starts from the beginning, with no cursor, watermark or validators.
    ///
    /// # Errors
    /// See [`SourceApiError`].
    pub async fn run_now(
        &self,
        dataset: &DatasetName,
        name: &str,
        reset: bool,
    ) -> Result<SourceView, SourceApiError> {
        let now = self.ports.clock.now();
        let source = self.ports.store.schedule(dataset, name, now, reset).await?;
        tracing::info!(%dataset, source = name, reset, "source run asked for");
        self.wakeups.notify(WorkKind::Sources);
        self.view(source).await
    }

    /// How many sources of every dataset are in each health (for `/metrics`).
    ///
    /// # Errors
    /// When the store is unreachable.
    pub async fn counts(&self) -> Result<[(Health, u64); 3], SourceApiError> {
        let mut counts = [
            (Health::Healthy, 0),
            (Health::Degraded, 0),
            (Health::Paused, 0),
        ];
        let datasets = self.ports.datasets.list().await;
        for dataset in datasets.map_err(|e| SourceApiError::Unexpected(e.into()))? {
            for source in self.ports.store.list(&dataset.name).await? {
                let status = self.view(source).await?.status;
                if let Some(c) = counts.iter_mut().find(|(h, _)| *h == status) {
                    c.1 += 1;
                }
            }
        }
        Ok(counts)
    }

    async fn dataset_exists(&self, dataset: &DatasetName) -> Result<(), SourceApiError> {
        match self.ports.datasets.get(dataset).await {
            Ok(_) => Ok(()),
            Err(CatalogError::NotFound) => Err(SourceApiError::UnknownDataset),
            Err(e) => Err(SourceApiError::Unexpected(e.into())),
        }
    }

    /// Everything wrong with `spec` for `dataset`: the declaration, an adapter for its
    /// kind, the outbound URL guard, the contract's format and the secret's presence.
    async fn check(&self, dataset: &DatasetName, spec: &SourceSpec) -> Result<(), SourceApiError> {
        let format = match self.ports.datasets.get(dataset).await {
            Ok(d) => {
                let published = self.ports.contracts.get(dataset, d.current_contract).await;
                let published = published.map_err(|e| SourceApiError::Unexpected(e.into()))?;
                published.contract.format().clone()
            }
            Err(CatalogError::NotFound) => return Err(SourceApiError::UnknownDataset),
            Err(e) => return Err(SourceApiError::Unexpected(e.into())),
        };
        let mut issues = spec.issues();
        let issue = |field: &str, message: String| SpecIssue {
            field: field.into(),
            message,
        };
        match self.adapter(spec.kind) {
            None => issues.push(issue(
                "kind",
                format!("no adapter fetches {} sources in this service", spec.kind),
            )),
            Some(adapter) => {
                if !issues.iter().any(|i| i.field == "url")
                    && let Err(e) = adapter.check_url(&spec.url).await
                {
                    issues.push(issue("url", e.0));
                }
            }
        }
        if spec.kind == SourceKind::JsonApi && !matches!(format, DocumentFormat::Json { .. }) {
            issues.push(issue(
                "kind",
                format!(
                    "json_api pages are JSON, but the dataset's contract reads {}: use http_file, or a JSON contract",
                    format.media_type()
                ),
            ));
        }
        if let Some(auth) = &spec.auth
            && is_secret_name(&auth.secret)
            && self.settings.secrets.get(&auth.secret).is_none()
        {
            issues.push(issue(
                "auth.secret",
                format!(
                    "no secret {0} is configured: set INTAKE_SECRET_{0} or {0} under [secrets] and restart",
                    auth.secret
                ),
            ));
        }
        if issues.is_empty() {
            Ok(())
        } else {
            Err(SourceApiError::Invalid(issues))
        }
    }

    /// The adapter, first request and import of `source`'s pages, as its dataset's
    /// current contract reads them.
    pub(crate) async fn prepare(&self, source: &Source) -> Result<Prepared, WorkError> {
        let spec = &source.spec;
        let adapter = self
            .adapter(spec.kind)
            .ok_or_else(|| refused(format!("no adapter fetches {} sources", spec.kind)))?
            .clone();
        let dataset = self
            .ports
            .datasets
            .get(&source.dataset)
            .await
            .map_err(WorkError::failed)?;
        let contract = self
            .ports
            .contracts
            .get(&source.dataset, dataset.current_contract)
            .await
            .map_err(WorkError::failed)?;
        let format = contract.contract.format();
        let records = match (&spec.records, format) {
            (Some(path), _) => path.split('.').map(str::to_owned).collect(),
            (None, DocumentFormat::Json { records }) => records.clone(),
            (None, _) => Vec::new(),
        };
        let auth = match &spec.auth {
            None => None,
            Some(a) => {
                let value = self.settings.secrets.get(&a.secret).ok_or_else(|| {
                    refused(format!(
                        "no secret {0} is configured (INTAKE_SECRET_{0} or [secrets])",
                        a.secret
                    ))
                })?;
                Some((a.header.clone(), format!("{}{value}", a.prefix)))
            }
        };
        Ok(Prepared {
            adapter,
            request: FetchRequest {
                spec: spec.clone(),
                cursor: None,
                since: None,
                records,
                validators: crate::ports::Validators::default(),
                auth,
                max_bytes: self.settings.max_page_bytes,
            },
            import: NewImport {
                dataset: source.dataset.clone(),
                contract: dataset.current_contract,
                content_type: format.media_type().to_owned(),
                source: source.label(),
                idempotency_key: None,
            },
        })
    }

    /// A source as stored (for a backfill job).
    pub(crate) async fn source(
        &self,
        dataset: &DatasetName,
        name: &str,
    ) -> Result<Source, SourceApiError> {
        Ok(self.ports.store.get(dataset, name).await?)
    }

    fn adapter(&self, kind: SourceKind) -> Option<&Arc<dyn ExternalSource>> {
        self.ports.adapters.iter().find(|a| a.kind() == kind)
    }

    /// A source with its health.
    async fn view(&self, source: Source) -> Result<SourceView, SourceApiError> {
        if source.spec.paused {
            return Ok(SourceView {
                source,
                status: Health::Paused,
                reason: None,
            });
        }
        if source.state.degraded {
            let reason = format!(
                "{} attempts in a row failed; the last: {}",
                source.state.failures,
                source.state.last_error.as_deref().unwrap_or("unknown")
            );
            return Ok(SourceView {
                source,
                status: Health::Degraded,
                reason: Some(reason),
            });
        }
        let faulty = self
            .ports
            .store
            .faulty_imports(&source.dataset, &source.label(), 100)
            .await?;
        let reason = contract_faults(&faulty);
        Ok(SourceView {
            status: if reason.is_some() {
                Health::Degraded
            } else {
                Health::Healthy
            },
            source,
            reason,
        })
    }
}

/// What the faulty imports of a source say, for a person: how many records in how many
/// pages failed the contract, on which fields, and the first import to look at.
fn contract_faults(faulty: &[ImportSummary]) -> Option<String> {
    let first = faulty.first()?;
    let mut records = 0;
    let mut fields = BTreeSet::new();
    let mut messages = BTreeSet::new();
    for import in faulty {
        if let Some(report) = &import.report {
            records += report.invalid;
            for e in &report.errors {
                match &e.field {
                    Some(f) => fields.insert(f.clone()),
                    None => messages.insert(e.message.clone()),
                };
            }
        }
    }
    let what = if fields.is_empty() {
        let m: Vec<String> = messages.into_iter().take(3).collect();
        format!("({})", m.join("; "))
    } else {
        let f: Vec<String> = fields.into_iter().take(10).collect();
        format!("on fields {}", f.join(", "))
    };
    Some(format!(
        "{records} records in {} pages failed the contract {what}; the first such page is import {}: dry-run a new contract version on it, publish it, reprocess the failed pages",
        faulty.len(),
        first.id
    ))
}

/// The higher of two incremental values: as numbers when both are numbers, otherwise
/// as text (ISO 8601 timestamps order as text). Adapters use it for a page's highest.
pub fn higher(a: Option<String>, b: Option<String>) -> Option<String> {
    match (a, b) {
        (Some(a), Some(b)) => {
            let greater = match (a.parse::<f64>(), b.parse::<f64>()) {
                (Ok(x), Ok(y)) => y > x,
                _ => b > a,
            };
            Some(if greater { b } else { a })
        }
        (a, b) => a.or(b),
    }
}

/// Sources as a kind of leased work: a claim takes one due source, and its work fetches
/// page after page until the run is complete, saving each page with the cursor.
pub struct SourceWork {
    service: Arc<SourceService>,
}

impl SourceWork {
    /// The work of `service`'s sources.
    pub fn new(service: Arc<SourceService>) -> Self {
        Self { service }
    }

    /// Fetches and saves pages from where the source is until its run is complete.
    async fn run(&self, lease: &SourceLease) -> Result<(), WorkError> {
        let s = &self.service;
        let source = &lease.source;
        let spec = &source.spec;
        let Prepared {
            adapter,
            mut request,
            import,
        } = s.prepare(source).await?;
        request.cursor.clone_from(&source.state.cursor);
        request.since = spec
            .incremental
            .as_ref()
            .and(source.state.watermark.clone());
        request.validators = source.state.validators.clone();
        let mut run_watermark = source.state.run_watermark.clone();
        loop {
            let fetched = adapter.fetch(&request).await.map_err(fetch_failed)?;
            let now = s.ports.clock.now();
            let after = |d: Duration| now + chrono::Duration::from_std(d).unwrap_or_default();
            let mut progress = Progress {
                cursor: None,
                run_watermark: run_watermark.clone(),
                validators: request.validators.clone(),
                records: 0,
                next_run_at: after(spec.schedule.get()),
                lease_until: after(s.settings.lease),
            };
            let page = match fetched {
                Fetched::NotModified => None,
                Fetched::Page(page) => Some(page),
            };
            let Some(page) = page else {
                self.save(lease, None, &progress).await?;
                tracing::info!(dataset = %source.dataset, source = %spec.name, "unchanged since the last fetch");
                return Ok(());
            };
            run_watermark = higher(run_watermark, page.highest.clone());
            progress.cursor.clone_from(&page.next);
            progress.run_watermark.clone_from(&run_watermark);
            progress.validators = page.validators.clone();
            progress.records = page.records;
            let to_save =
                (page.records > 0 || spec.kind == SourceKind::HttpFile).then(|| PageToSave {
                    import: import.clone(),
                    sha256: hex(&Sha256::digest(&page.body)),
                    body: page.body,
                });
            let saved = self.save(lease, to_save, &progress).await?;
            if saved {
                s.wakeups.notify(WorkKind::Imports);
            }
            tracing::debug!(dataset = %source.dataset, source = %spec.name, records = page.records,
                next = ?page.next, "page saved");
            match page.next {
                None => {
                    tracing::info!(dataset = %source.dataset, source = %spec.name, "run complete");
                    return Ok(());
                }
                Some(next) => {
                    request.cursor = Some(next);
                    request.validators = progress.validators;
                }
            }
        }
    }

    /// Saves a page (or only the progress); gives whether a new import was queued.
    async fn save(
        &self,
        lease: &SourceLease,
        page: Option<PageToSave>,
        progress: &Progress,
    ) -> Result<bool, WorkError> {
        match self
            .service
            .ports
            .store
            .save_page(lease, page, progress)
            .await
        {
            Ok(saved) => Ok(matches!(saved, Some(crate::ports::PageSaved::New(_)))),
            Err(SourceStoreError::LeaseLost) => Err(WorkError::LeaseLost),
            Err(e) => Err(WorkError::failed(e)),
        }
    }
}

/// A failed fetch as the runtime retries it: at the server's `Retry-After` when it
/// gave one.
pub(crate) fn fetch_failed(e: SourceError) -> WorkError {
    match e {
        SourceError::Unavailable {
            reason,
            retry_after,
        } => WorkError::Failed {
            error: anyhow::anyhow!(reason),
            retry_after,
        },
        e => WorkError::failed(e),
    }
}

/// What fetching a source's pages needs: its adapter, a request for its first page
/// (from the start, without an incremental value or validators), and the import each
/// page becomes.
pub(crate) struct Prepared {
    pub(crate) adapter: Arc<dyn ExternalSource>,
    pub(crate) request: FetchRequest,
    pub(crate) import: NewImport,
}

fn refused(reason: String) -> WorkError {
    WorkError::failed(anyhow::anyhow!(reason))
}

#[async_trait::async_trait]
impl LeasedWork for SourceWork {
    type Item = SourceLease;

    fn kind(&self) -> WorkKind {
        WorkKind::Sources
    }

    fn describe(&self, item: &SourceLease) -> String {
        format!("{}/{}", item.source.dataset, item.source.spec.name)
    }

    fn attempt(&self, item: &SourceLease) -> u32 {
        item.attempt
    }

    /// A source is never given up: it turns degraded and keeps trying at its schedule.
    fn gives_up(&self) -> bool {
        false
    }

    async fn claim(&self, worker: &str, now: DateTime<Utc>) -> anyhow::Result<Claim<SourceLease>> {
        let lease = self.service.settings.lease;
        Ok(
            match self.service.ports.store.claim(worker, now, lease).await? {
                SourceClaim::Claimed(l) => Claim::Items(vec![*l]),
                SourceClaim::Nothing { next_due } => Claim::Nothing { next_due },
            },
        )
    }

    async fn work(&self, item: &SourceLease) -> Result<(), WorkError> {
        self.run(item).await
    }

    async fn fail(
        &self,
        item: &SourceLease,
        retry_at: Option<DateTime<Utc>>,
        reason: &str,
    ) -> anyhow::Result<()> {
        let s = &self.service;
        let degraded = retry_at.is_none();
        let at = retry_at.unwrap_or_else(|| {
            let every = item.source.spec.schedule.get();
            s.ports.clock.now() + chrono::Duration::from_std(every).unwrap_or_default()
        });
        if degraded {
            tracing::warn!(dataset = %item.source.dataset, source = %item.source.spec.name,
                attempts = item.attempt, reason, "source degraded; retried at its schedule");
        }
        Ok(s.ports.store.fail(item, at, reason, degraded).await?)
    }

    async fn release(&self, item: &SourceLease) -> Result<(), WorkError> {
        match self.service.ports.store.release(item).await {
            Ok(()) => Ok(()),
            Err(SourceStoreError::LeaseLost) => Err(WorkError::LeaseLost),
            Err(e) => Err(WorkError::failed(e)),
        }
    }
}
