//! The one place that builds adapters and services (STYLE rule 3): the storage
//! adapter chosen by the database URL's scheme, the use cases over it, and the clock.
//! `serve`, `import`, `migrate`, `check` and the tests all start here.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use intake_codecs::Codecs;
use intake_domain::callbacks::{CallbackListings, CallbackObserver, CallbackWork};
use intake_domain::datasets::{DatasetPorts, DatasetService};
use intake_domain::delivery::{DeliveryPorts, DeliveryService};
use intake_domain::ingest::{ImportObserver, ImportService, IngestPorts, IngestSettings};
use intake_domain::jobs::{JobPorts, JobService};
use intake_domain::limits::FallbackLimiter;
use intake_domain::ports::{
    Analytics, Backups, Cache, CallbackTimers, Clock, ContractStore, DatasetStore, DeliveryQueue,
    Health, ImportQueue, ImportVault, JobStore, NoCache, PauseStore, RateLimiter, RebuildStore,
    RecordStore, RollupStore, SourceStore, SubscriptionStore,
};
use intake_domain::sources::{SourcePorts, SourceService};
use intake_domain::work::{Wakeups, WorkerControl};

use crate::settings::{Database, Settings};

/// The runtime's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioClock;

#[async_trait::async_trait]
impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

/// The storage ports of the chosen adapter.
#[derive(Clone)]
pub struct Storage {
    datasets: Arc<dyn DatasetStore>,
    contracts: Arc<dyn ContractStore>,
    vault: Arc<dyn ImportVault>,
    queue: Arc<dyn ImportQueue>,
    records: Arc<dyn RecordStore>,
    analytics: Arc<dyn Analytics>,
    /// The database, as readiness and metrics see it.
    pub health: Arc<dyn Health>,
    /// Subscriptions.
    subscriptions: Arc<dyn SubscriptionStore>,
    /// Deliveries waiting to be sent.
    deliveries: Arc<dyn DeliveryQueue>,
    /// Callback timers.
    callbacks: Arc<dyn CallbackTimers>,
    /// Pull sources.
    sources: Arc<dyn SourceStore>,
    /// Jobs.
    jobs: Arc<dyn JobStore>,
    /// History in commit order, and rollup series.
    rollups: Arc<dyn RollupStore>,
    /// Datasets cleared and their imports held for a reprocess.
    rebuilds: Arc<dyn RebuildStore>,
    /// Kinds of work paused by an operator.
    pauses: Arc<dyn PauseStore>,
    /// Who tells this process of changes other processes commit.
    pub relay: Relay,
    /// Backups of the database, where this build makes them (SQLite).
    pub backups: Option<Arc<dyn Backups>>,
}

/// Who tells this process of changes other processes commit to the same database.
#[derive(Clone)]
pub enum Relay {
    /// PostgreSQL's notifications wake this process's workers for work other
    /// instances commit, its waiters for their imports, and tell it of dataset changes.
    Postgres(Arc<intake_postgres::PgStore>),
    /// SQLite is one process's (its wake-ups are in process), but another process
    /// (`intake import`) may commit to the file: the store is asked whether it changed.
    Sqlite(Arc<intake_sqlite::SqliteStore>),
}

impl Storage {
    /// The ports of a store, with the analytics engine that serves it.
    fn over<S>(store: Arc<S>, analytics: Arc<dyn Analytics>, relay: Relay) -> Self
    where
        S: DatasetStore + ContractStore + ImportVault + ImportQueue + RecordStore + Health,
        S: SubscriptionStore + DeliveryQueue + CallbackTimers + SourceStore + PauseStore,
        S: JobStore + RollupStore + RebuildStore + 'static,
    {
        Self {
            datasets: store.clone(),
            contracts: store.clone(),
            vault: store.clone(),
            queue: store.clone(),
            records: store.clone(),
            analytics,
            subscriptions: store.clone(),
            deliveries: store.clone(),
            callbacks: store.clone(),
            sources: store.clone(),
            jobs: store.clone(),
            rollups: store.clone(),
            rebuilds: store.clone(),
            pauses: store.clone(),
            health: store,
            relay,
            backups: None,
        }
    }

    /// Connects to the database the URL names and applies pending migrations.
    ///
    /// # Errors
    /// When the database cannot be reached or migrated.
    pub async fn open(settings: &Settings) -> anyhow::Result<Self> {
        match settings.database()? {
            Database::Sqlite => {
                let store = intake_sqlite::SqliteStore::connect(&settings.sqlite()).await?;
                store.migrate().await?;
                let (_, dir, keep) = settings.backups()?;
                let backups = intake_sqlite::SqliteBackups::new(store.clone(), dir, keep);
                let store = Arc::new(store);
                Ok(Self {
                    backups: Some(Arc::new(backups)),
                    ..Self::over(store.clone(), store.clone(), Relay::Sqlite(store))
                })
            }
            Database::Postgres => {
                let store = intake_postgres::PgStore::connect(&settings.postgres())?;
                store.migrate().await?;
                let store = Arc::new(store);
                Ok(Self::over(
                    store.clone(),
                    store.clone(),
                    Relay::Postgres(store),
                ))
            }
        }
    }
}

/// Looks at the database without creating or migrating anything (`intake check`):
/// one line saying where it is and how it stands.
///
/// # Errors
/// When it cannot be reached or read.
pub async fn probe(settings: &Settings) -> anyhow::Result<String> {
    let location = settings.data_location()?;
    let pending = match settings.database()? {
        Database::Sqlite => {
            let probe = intake_sqlite::SqliteStore::probe(&settings.sqlite()).await?;
            let Some(pending) = probe.pending else {
                return Ok(format!(
                    "no database yet at {location}: `intake serve` or `intake migrate` creates it"
                ));
            };
            pending
        }
        Database::Postgres => {
            let store = intake_postgres::PgStore::connect(&settings.postgres())?;
            store.check().await?;
            store.pending_migrations().await?
        }
    };
    Ok(match pending {
        0 => format!("ok, {location}"),
        n => format!("ok, {location}; {n} migrations to apply at the next start"),
    })
}

/// The Redis cache `redis_url` names, when it names one. It connects on first use.
///
/// # Errors
/// When the URL is not one Redis accepts.
pub fn redis_cache(settings: &Settings) -> Option<anyhow::Result<intake_redis::RedisCache>> {
    let url = settings.redis_url.as_ref()?;
    Some(intake_redis::RedisCache::new(intake_redis::Settings {
        url: url.expose().to_owned(),
        prefix: settings.redis_prefix.clone(),
        ..intake_redis::Settings::default()
    }))
}

/// The analytics cache: Redis when `redis_url` is set (shared by every instance), else
/// an in-process cache of `cache_bytes` (none at 0).
///
/// # Errors
/// When the Redis URL is not one Redis accepts.
pub fn cache(settings: &Settings) -> anyhow::Result<Arc<dyn Cache>> {
    if let Some(redis) = redis_cache(settings) {
        return Ok(Arc::new(redis?));
    }
    Ok(match settings.cache_bytes {
        0 => Arc::new(NoCache),
        bytes => Arc::new(intake_memory::MemoryCache::new(bytes)),
    })
}

/// How many callers' buckets the in-process rate limiter keeps at most.
const LIMITER_KEYS: usize = 100_000;

/// Rate limiting and what readiness reports of Redis.
pub struct Limits {
    /// The limiter (`None` when `rate_limit_per_second` is 0): Redis shared by every
    /// instance with the in-process limiter behind it while Redis is down, or the
    /// in-process one alone without `redis_url`.
    pub limiter: Option<Arc<dyn RateLimiter>>,
    /// Redis as an optional dependency of `/readyz` (down: degraded), when set.
    pub redis: Option<Arc<dyn Health>>,
}

/// The rate limiter `settings` ask for.
///
/// # Errors
/// When the Redis URL is not one Redis accepts.
pub fn limits(settings: &Settings) -> anyhow::Result<Limits> {
    let redis = match &settings.redis_url {
        Some(url) => Some(Arc::new(intake_redis::RedisRateLimiter::new(
            intake_redis::LimiterSettings {
                url: url.expose().to_owned(),
                prefix: settings.redis_prefix.clone(),
                ..intake_redis::LimiterSettings::default()
            },
        )?)),
        None => None,
    };
    let limiter: Option<Arc<dyn RateLimiter>> = match (settings.rate_limit()?, &redis) {
        (None, _) => None,
        (Some(_), Some(redis)) => Some(Arc::new(FallbackLimiter::new(
            redis.clone(),
            Arc::new(intake_memory::MemoryRateLimiter::new(LIMITER_KEYS)),
        ))),
        (Some(_), None) => Some(Arc::new(intake_memory::MemoryRateLimiter::new(
            LIMITER_KEYS,
        ))),
    };
    Ok(Limits {
        limiter,
        redis: redis.map(|r| r as Arc<dyn Health>),
    })
}

/// The use cases over the storage.
pub struct Services {
    /// Datasets, contracts, records.
    pub datasets: Arc<DatasetService>,
    /// Imports.
    pub imports: Arc<ImportService>,
    /// The clock they use.
    pub clock: Arc<dyn Clock>,
    /// Subscriptions and their deliveries.
    pub deliveries: Arc<DeliveryService>,
    /// Callback timers, as their workers fire them.
    pub callbacks: Arc<CallbackWork>,
    /// Callback timers, as operators list them.
    pub callback_listings: Arc<CallbackListings>,
    /// Pull sources.
    pub sources: Arc<SourceService>,
    /// Long-running jobs.
    pub jobs: Arc<JobService>,
    /// What wakes the workers of every kind.
    pub wakeups: Wakeups,
    /// Pausing and resuming each kind of work, and what this process's workers hold.
    pub workers: Arc<WorkerControl>,
}

/// Who is told of finished imports and fired callbacks (the metrics).
pub struct Observers {
    /// Told of every finished import.
    pub imports: Arc<dyn ImportObserver>,
    /// Told of every fired callback.
    pub callbacks: Arc<dyn CallbackObserver>,
}

impl Services {
    /// Builds them, telling `observers` (the metrics) of finished imports and fired
    /// callbacks.
    ///
    /// # Errors
    /// When the cache's configuration is refused.
    pub fn new(
        storage: &Storage,
        settings: &Settings,
        observers: Option<Observers>,
    ) -> anyhow::Result<Self> {
        let clock: Arc<dyn Clock> = Arc::new(TokioClock);
        let ports = IngestPorts {
            datasets: storage.datasets.clone(),
            contracts: storage.contracts.clone(),
            vault: storage.vault.clone(),
            queue: storage.queue.clone(),
            records: storage.records.clone(),
            decoder: Arc::new(Codecs::default()),
            clock: clock.clone(),
        };
        let ingest = IngestSettings {
            max_document_bytes: settings.max_document_bytes,
            max_uploads: settings.max_concurrent_uploads,
            contract_limits: settings.contract_limits(),
            callback_scale: settings.callback_time_scale,
            // No worker here processes what this instance receives: keep no copies.
            fresh_budget_bytes: if settings.workers == 0 {
                0
            } else {
                IngestSettings::default().fresh_budget_bytes
            },
            ..IngestSettings::default()
        };
        let wakeups = Wakeups::default();
        let mut imports = ImportService::new(ports, ingest).woken_by(wakeups.clone());
        let mut callbacks = CallbackWork::new(
            storage.callbacks.clone(),
            clock.clone(),
            settings.callbacks()?,
        );
        if let Some(observers) = observers {
            imports = imports.observed_by(observers.imports);
            callbacks = callbacks.observed_by(observers.callbacks);
        }
        let datasets = DatasetService::new(DatasetPorts {
            datasets: storage.datasets.clone(),
            contracts: storage.contracts.clone(),
            records: storage.records.clone(),
            analytics: storage.analytics.clone(),
            cache: cache(settings)?,
        })
        .with_contract_limits(settings.contract_limits())
        .knowing(wakeups.datasets().clone());
        let sender = intake_http_source::HttpWebhookSender::new(&settings.outbound())?;
        let deliveries = DeliveryService::new(
            DeliveryPorts {
                subscriptions: storage.subscriptions.clone(),
                queue: storage.deliveries.clone(),
                sender: Arc::new(sender),
                clock: clock.clone(),
            },
            settings.deliveries()?,
        )
        .woken_by(wakeups.clone());
        let callback_listings =
            CallbackListings::new(storage.callbacks.clone(), storage.datasets.clone());
        let pulls = settings.pulls();
        let sources = SourceService::new(
            SourcePorts {
                store: storage.sources.clone(),
                datasets: storage.datasets.clone(),
                contracts: storage.contracts.clone(),
                adapters: vec![
                    Arc::new(intake_http_source::JsonApiSource::new(&pulls)?),
                    Arc::new(intake_http_source::HttpFileSource::new(&pulls)?),
                ],
                clock: clock.clone(),
            },
            settings.sources()?,
        )
        .woken_by(wakeups.clone());
        let datasets = Arc::new(datasets);
        let imports = Arc::new(imports);
        let sources = Arc::new(sources);
        let jobs = JobService::new(
            JobPorts {
                store: storage.jobs.clone(),
                rollups: storage.rollups.clone(),
                rebuilds: storage.rebuilds.clone(),
                imports: imports.clone(),
                sources: sources.clone(),
                datasets: datasets.clone(),
                clock: clock.clone(),
            },
            settings.jobs()?,
        )
        .woken_by(wakeups.clone());
        Ok(Self {
            datasets,
            jobs: Arc::new(jobs),
            imports,
            deliveries: Arc::new(deliveries),
            callbacks: Arc::new(callbacks),
            callback_listings: Arc::new(callback_listings),
            sources,
            workers: Arc::new(WorkerControl::new(
                storage.pauses.clone(),
                wakeups.clone(),
                clock.clone(),
            )),
            clock,
            wakeups,
        })
    }
}
