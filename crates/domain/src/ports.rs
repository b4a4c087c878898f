//! Ports: the traits adapters implement (DESIGN §3).
//!
//! Each port is small, named for what it does, object-safe and `Send + Sync`, shared
//! as `Arc<dyn Port>`, and speaks only domain types and its own error enum. Every
//! method documents its contract (ordering, idempotency, what each error means): that
//! text is what the conformance suites (feature `testkit`, written with each port's
//! first adapter) assert against every adapter. The `mocks` feature exposes a
//! `mockall` mock of each (`MockRecordStore`, …) for other crates' tests.
//!
//! Ports exist only for IO and nondeterminism. Decoding is here too because wire
//! formats are adapters: the `codecs` crate implements [`DocumentDecoder`].

mod analytics;
mod backups;
mod catalog;
mod clock;
mod control;
mod decoder;
mod delivery;
mod health;
mod imports;
mod jobs;
mod limits;
mod records;
mod sources;

pub use analytics::{
    Analytics, AnalyticsError, AnalyticsQuery, Cache, CacheKey, GroupAggregate, NoCache, TopQuery,
    TopRecord,
};
pub use backups::{Backup, BackupContents, Backups};
pub use catalog::{
    CatalogError, ContractStore, Dataset, DatasetStore, DeletedDataset, PublishedContract,
};
pub use clock::Clock;
pub use control::PauseStore;
pub use decoder::{DocumentDecoder, RecordStream};
pub use delivery::{
    Attempt, CallbackFiring, CallbackInfo, CallbackListing, CallbackStatus, CallbackTimers,
    ClaimLimits, Delivered, Delivery, DeliveryClaim, DeliveryCounts, DeliveryError, DeliveryInfo,
    DeliveryListing, DeliveryQueue, DeliveryResult, DeliveryStatus, DueCallback, Event, EventKind,
    NewSubscription, Replay, Subscription, SubscriptionChange, SubscriptionStatus,
    SubscriptionStore, UrlRefused, Webhook, WebhookSender,
};
pub use health::{Health, HealthError, PoolUsage, Unavailable};
pub use imports::{
    ImportQueue, ImportSummary, ImportVault, Lease, NewImport, QueueError, VaultError, VaultReader,
    VaultWriter,
};
pub use jobs::{
    CheckpointMark, Directive, JOB_HELD, Job, JobAction, JobError, JobProgress, JobStatus,
    JobStore, JobView, NewJob, RebuildError, RebuildStore, RecordChange, RollupError, RollupPoint,
    RollupStore,
};
pub use limits::{RateDecision, RateLimit, RateLimitError, RateLimiter};
pub use records::{
    CancelledCallback, Finished, HistoryEntries, HistoryPage, IdentityMap, ImportWriter,
    RecordFilter, RecordOrder, RecordPage, RecordQuery, RecordScan, RecordStore, StoreError,
    StoredRecord,
};
pub use sources::{
    ExternalSource, FetchRequest, Fetched, FetchedPage, PageSaved, PageToSave, Progress, Source,
    SourceClaim, SourceError, SourceLease, SourceState, SourceStore, SourceStoreError, Validators,
    label as source_label,
};

#[cfg(any(test, feature = "mocks"))]
pub use analytics::{MockAnalytics, MockCache};
#[cfg(any(test, feature = "mocks"))]
pub use backups::MockBackups;
#[cfg(any(test, feature = "mocks"))]
pub use catalog::{MockContractStore, MockDatasetStore};
#[cfg(any(test, feature = "mocks"))]
pub use clock::MockClock;
#[cfg(any(test, feature = "mocks"))]
pub use control::MockPauseStore;
#[cfg(any(test, feature = "mocks"))]
pub use decoder::MockDocumentDecoder;
#[cfg(any(test, feature = "mocks"))]
pub use delivery::{
    MockCallbackTimers, MockDeliveryQueue, MockSubscriptionStore, MockWebhookSender,
};
#[cfg(any(test, feature = "mocks"))]
pub use health::MockHealth;
#[cfg(any(test, feature = "mocks"))]
pub use imports::{MockImportQueue, MockImportVault};
#[cfg(any(test, feature = "mocks"))]
pub use jobs::{MockJobStore, MockRebuildStore, MockRollupStore};
#[cfg(any(test, feature = "mocks"))]
pub use limits::MockRateLimiter;
#[cfg(any(test, feature = "mocks"))]
pub use records::MockRecordStore;
#[cfg(any(test, feature = "mocks"))]
pub use sources::{MockExternalSource, MockSourceStore};
