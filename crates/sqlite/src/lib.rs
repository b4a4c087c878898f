//! `intake-sqlite`: the storage ports on SQLite, the embedded default (DESIGN §3).
//!
//! One [`SqliteStore`] implements the dataset and contract stores, the raw vault, the
//! import queue and the record store over one database file in WAL mode. SQLite has
//! one writer at a time: an import's unit of work holds the write lock from
//! its first batch to `finish`, so imports are applied one after another while readers
//! carry on. Every write of the process goes through one pooled connection (ADR 42),
//! so writers queue in the pool, woken in turn, instead of each holding a connection
//! while SQLite's busy handler sleeps and retries; the WAL is checkpointed by a task
//! beside them, not inside their commits. Migrations are in
//! `migrations/sqlite` ([`MIGRATOR`]).

mod analytics;
mod backup;
mod callbacks;
mod catalog;
mod changes;
mod checkpoints;
mod deliveries;
mod jobs;
mod pauses;
mod queue;
mod rebuild;
mod records;
mod rows;
mod sources;
mod vault;
mod writer;

pub use backup::{Restored, SqliteBackups, database_file, restore, verify};
pub use changes::POLL_EVERY;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, SecondsFormat, Utc};
use intake_domain::ports::Unavailable;
use sqlx::ConnectOptions as _;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

/// Uploads older than this without a committed import were abandoned by a crash (a
/// live upload of another process would be younger).
const ABANDONED_AFTER: Duration = Duration::from_secs(24 * 3600);

/// The migrations of `migrations/sqlite`, embedded at build time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");

/// How to reach the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `sqlite://path/to/file.db` (the directory is created when missing).
    pub url: String,
    /// Pool size (readers; writers take turns).
    pub max_connections: u32,
    /// How long a statement waits for the write lock before failing.
    pub busy_timeout: Duration,
    /// How long to wait for a pooled connection.
    pub acquire_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            url: "sqlite://./data/intake.db".into(),
            max_connections: 8,
            busy_timeout: Duration::from_secs(60),
            acquire_timeout: Duration::from_secs(30),
        }
    }
}

/// What [`SqliteStore::probe`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// The database file, as an absolute path.
    pub file: std::path::PathBuf,
    /// Migrations of this build it lacks; `None` when the file does not exist yet.
    pub pending: Option<usize>,
}

/// The storage ports over one SQLite database; cheap to clone.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// Connections for reading.
    pool: SqlitePool,
    /// The one connection every write of this process takes (ADR 42). A writer waits
    /// here, holding no connection, until the one before it commits: the reading pool
    /// stays free for the readers a writer itself needs (an import reads its document's
    /// chunks while it holds the write lock). Other processes on the same file are still
    /// kept apart by SQLite's lock and busy timeout.
    writes: SqlitePool,
    /// The database file's lock, held shared while this store lives, so a restore
    /// knows the file is in use.
    _lock: Option<Arc<std::fs::File>>,
    /// The task copying the WAL into the database file while the store lives.
    checkpoints: Arc<checkpoints::Checkpoints>,
}

impl SqliteStore {
    /// Opens (creating when missing) the database file. Call [`SqliteStore::migrate`]
    /// before use.
    ///
    /// # Errors
    /// When the URL is malformed or the file cannot be opened.
    pub async fn connect(settings: &Settings) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(&settings.url)
            .with_context(|| format!("parsing the SQLite URL {:?}", settings.url))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(settings.busy_timeout)
            .foreign_keys(true)
            // Checkpoints run beside the writers, not in their commits (ADR 42).
            .pragma("wal_autocheckpoint", "0")
            // A slow statement is worth a debug line, not a warning holding raw SQL.
            .log_slow_statements(log::LevelFilter::Debug, Duration::from_secs(1));
        if let Some(dir) = options
            .get_filename()
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            create_dir(dir)?;
        }
        let lock = backup::share(options.get_filename())?.map(Arc::new);
        // Another process creating the same file at this moment (two servers started
        // together) holds the lock that switching to WAL needs, and that switch does
        // not wait: try again until the busy timeout.
        let deadline = std::time::Instant::now() + settings.busy_timeout;
        let pool = loop {
            let opened = SqlitePoolOptions::new()
                .max_connections(settings.max_connections)
                .acquire_timeout(settings.acquire_timeout)
                .connect_with(options.clone())
                .await;
            match opened {
                Err(e) if is_busy(&e) && std::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                opened => break opened.with_context(|| format!("opening {}", settings.url))?,
            }
        };
        let writes = SqlitePoolOptions::new()
            .max_connections(1)
            // Waiting for the writer before this one is waiting for SQLite's lock.
            .acquire_timeout(settings.busy_timeout)
            .connect_with(options.clone())
            .await
            .with_context(|| format!("opening {} for writing", settings.url))?;
        Ok(Self {
            pool,
            writes,
            _lock: lock,
            checkpoints: checkpoints::Checkpoints::start(options),
        })
    }

    /// Looks at the database without changing anything (`intake check`): whether its
    /// file exists, and if so, opened read-only, how many of this build's migrations
    /// it lacks.
    ///
    /// # Errors
    /// When the URL is malformed, or the file exists but cannot be read as a database.
    pub async fn probe(settings: &Settings) -> anyhow::Result<Probe> {
        let options = SqliteConnectOptions::from_str(&settings.url)
            .with_context(|| format!("parsing the SQLite URL {:?}", settings.url))?
            .read_only(true)
            .create_if_missing(false);
        let file = options.get_filename().to_path_buf();
        let file = std::path::absolute(&file).unwrap_or(file);
        if !file.exists() {
            return Ok(Probe {
                file,
                pending: None,
            });
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(options)
            .await
            .with_context(|| format!("opening {} read-only", file.display()))?;
        let applied: Result<i64, _> =
            sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
                .fetch_one(&pool)
                .await;
        pool.close().await;
        let applied = match applied {
            Ok(n) => usize::try_from(n).unwrap_or(0),
            // Not a table yet: nothing was ever migrated.
            Err(sqlx::Error::Database(e)) if e.message().contains("no such table") => 0,
            Err(e) => return Err(e).context(format!("reading {}", file.display())),
        };
        let known = MIGRATOR.iter().count();
        Ok(Probe {
            file,
            pending: Some(known.saturating_sub(applied)),
        })
    }

    /// Closes every connection; the store is unusable afterwards.
    pub async fn close(&self) {
        self.checkpoints.close().await;
        self.writes.close().await;
        self.pool.close().await;
    }

    /// Applies pending migrations, then sweeps uploads abandoned a day ago or more.
    ///
    /// # Errors
    /// When a migration fails or the database has migrations this build does not know.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        let file = self.pool.connect_options().get_filename().to_path_buf();
        let _alone = backup::migrating(&file).await?;
        MIGRATOR
            .run(&self.pool)
            .await
            .context("migrating the SQLite database")?;
        let swept = vault::sweep_abandoned_uploads(&self.writes, ABANDONED_AFTER).await?;
        if swept > 0 {
            tracing::info!(
                uploads = swept,
                "deleted the chunks of uploads abandoned by a crash"
            );
        }
        Ok(())
    }

    /// Deletes the chunks of uploads that never committed (their process died) and
    /// started more than `older_than` ago; [`SqliteStore::migrate`] runs it with a
    /// day's margin. The number of uploads swept.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn sweep_abandoned_uploads(&self, older_than: Duration) -> anyhow::Result<u64> {
        vault::sweep_abandoned_uploads(&self.writes, older_than).await
    }

    /// Whether the database answers.
    ///
    /// # Errors
    /// When it does not.
    pub async fn ping(&self) -> anyhow::Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .context("pinging SQLite")?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl intake_domain::ports::Health for SqliteStore {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    async fn check(&self) -> Result<(), intake_domain::ports::HealthError> {
        Ok(self.ping().await?)
    }

    fn pool(&self) -> Option<intake_domain::ports::PoolUsage> {
        Some(intake_domain::ports::PoolUsage {
            size: self.pool.size(),
            idle: u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX),
            max: self.pool.options().get_max_connections(),
        })
    }
}

fn create_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

/// Timestamps as sortable text.
fn ts(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn parse_ts(text: &str) -> anyhow::Result<DateTime<Utc>> {
    let at =
        DateTime::parse_from_rfc3339(text).with_context(|| format!("bad timestamp {text:?}"))?;
    Ok(at.with_timezone(&Utc))
}

/// A time as stored in history: microseconds since the Unix epoch.
fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

fn from_micros(us: i64) -> anyhow::Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(us).with_context(|| format!("bad stored time {us}"))
}

fn now() -> DateTime<Utc> {
    Utc::now()
}

/// A new unique id (time-ordered UUID, simple form).
fn new_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
}

/// Adds context to a driver error for a port's `Unexpected` variant.
/// No connection from the pool in time, or the write lock still taken after the
/// busy timeout, makes the error [`Unavailable`]: the API answers `503`, not `500`.
fn unexpected(doing: &'static str) -> impl FnOnce(sqlx::Error) -> anyhow::Error {
    move |e| {
        let unavailable =
            matches!(e, sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed) || is_busy(&e);
        if unavailable {
            anyhow::Error::new(Unavailable::new("SQLite", e)).context(doing)
        } else {
            anyhow::Error::new(e).context(doing)
        }
    }
}

/// The write lock not had within the busy timeout: SQLite's lock held by another
/// process ([`is_busy`]), or this process's writing connection by another writer.
pub(crate) fn lock_timed_out(e: &sqlx::Error) -> bool {
    is_busy(e) || matches!(e, sqlx::Error::PoolTimedOut)
}

/// SQLite's "database is locked" (`SQLITE_BUSY`, primary code 5).
pub(crate) fn is_busy(e: &sqlx::Error) -> bool {
    let code = e.as_database_error().and_then(|d| d.code());
    code.is_some_and(|c| c.parse::<i32>().is_ok_and(|c| c & 0xff == 5))
}
