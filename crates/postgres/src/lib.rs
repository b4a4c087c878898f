//! `intake-postgres`: the storage ports on PostgreSQL (DESIGN §3, §15).
//!
//! One [`PgStore`] implements the dataset and contract stores, the raw vault, the
//! import queue and the record store over a connection pool. Any number of processes
//! can share one database: imports are claimed with `FOR UPDATE SKIP LOCKED`, an
//! import's unit of work locks its import row until it commits, and batches are
//! written with one `UNNEST` statement per table (see ADR 0005). Migrations are in
//! `migrations/postgres` ([`MIGRATOR`]).

mod analytics;
mod backup;
mod callbacks;
mod catalog;
mod deliveries;
mod jobs;
mod layout;
mod pauses;
mod queue;
mod rebuild;
mod records;
mod rows;
mod sources;
mod vault;
mod wakeups;
mod writer;

pub use backup::restore;

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
use intake_domain::ports::Unavailable;
use sqlx::ConnectOptions as _;
use sqlx::PgPool;
use sqlx::postgres::{PgArguments, PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::query::Query;

/// The migrations of `migrations/postgres`, embedded at build time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

/// Uploads older than this without a committed import were abandoned by a crash (a
/// live upload of another process would be younger).
const ABANDONED_AFTER: Duration = Duration::from_secs(24 * 3600);

/// How to reach the database.
#[derive(Clone, PartialEq, Eq)]
pub struct Settings {
    /// `postgres://user@host:port/database`.
    pub url: String,
    /// Pool size.
    pub max_connections: u32,
    /// How long to wait for a pooled connection.
    pub acquire_timeout: Duration,
    /// A schema to use instead of `public` (created by [`PgStore::migrate`]).
    pub schema: Option<String>,
}

/// The URL is printed without its password.
impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("url", &intake_domain::redact::url(&self.url))
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("schema", &self.schema)
            .finish()
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            url: "postgres://postgres@127.0.0.1:5432/postgres".into(),
            max_connections: 10,
            acquire_timeout: Duration::from_secs(10),
            schema: None,
        }
    }
}

/// The storage ports over one PostgreSQL database; cheap to clone.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    /// Connections whose commits do not wait for the WAL to reach the disk, for the
    /// bookkeeping of deliveries: a crash may forget the last milliseconds of claims
    /// and outcomes, which only sends those deliveries again (they are at least once
    /// anyway), never loses one. Everything else uses `pool`.
    relaxed: PgPool,
    schema: Option<String>,
    /// Each dataset's typed table and columns (ADR 22).
    layouts: layout::Layouts,
}

impl PgStore {
    /// Connects the pool (lazily: the first query opens connections).
    ///
    /// # Errors
    /// When the URL or schema name is malformed.
    pub fn connect(settings: &Settings) -> anyhow::Result<Self> {
        let mut options = PgConnectOptions::from_str(&settings.url).with_context(|| {
            format!(
                "parsing the PostgreSQL URL {}",
                intake_domain::redact::url(&settings.url)
            )
        })?;
        if let Some(schema) = &settings.schema {
            anyhow::ensure!(
                schema
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "schema names are letters, digits and '_': {schema:?}"
            );
            options = options.options([("search_path", schema.as_str())]);
        }
        // Who uses the schema, as `pg_stat_activity` shows it (`intake restore` asks).
        let options = options
            .application_name(&application_name(settings.schema.as_deref()))
            // A slow statement is worth a debug line, not a warning holding raw SQL.
            .log_slow_statements(log::LevelFilter::Debug, Duration::from_secs(1));
        let relaxed = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout)
            .connect_lazy_with(options.clone().options([("synchronous_commit", "off")]));
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout)
            .connect_lazy_with(options);
        Ok(Self {
            pool,
            relaxed,
            schema: settings.schema.clone(),
            layouts: layout::Layouts::default(),
        })
    }

    /// How many of this build's migrations the database (its schema) lacks, without
    /// changing anything (`intake check`).
    ///
    /// # Errors
    /// When the database is unreachable.
    pub async fn pending_migrations(&self) -> anyhow::Result<usize> {
        // `to_regclass` follows the search path: the service's schema when one is set.
        let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
            .fetch_one(&self.pool)
            .await
            .context("looking for the migrations table")?;
        let applied: i64 = if exists {
            sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
                .fetch_one(&self.pool)
                .await
                .context("counting applied migrations")?
        } else {
            0
        };
        let known = MIGRATOR.iter().count();
        Ok(known.saturating_sub(usize::try_from(applied).unwrap_or(0)))
    }

    /// Creates the schema (when one is set) and applies pending migrations.
    ///
    /// # Errors
    /// When the database is unreachable or a migration fails.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        if let Some(schema) = &self.schema {
            sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
                .execute(&self.pool)
                .await
                .context("creating the schema")?;
        }
        MIGRATOR
            .run(&self.pool)
            .await
            .context("migrating the PostgreSQL database")?;
        let swept = vault::sweep_abandoned_uploads(&self.pool, ABANDONED_AFTER).await?;
        if swept > 0 {
            tracing::info!(
                uploads = swept,
                "deleted the chunks of uploads abandoned by a crash"
            );
        }
        Ok(())
    }

    /// Whether the database answers.
    ///
    /// # Errors
    /// When it does not.
    pub async fn ping(&self) -> anyhow::Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .context("pinging PostgreSQL")?;
        Ok(())
    }

    /// Runs a read. Inside a deadline ([`intake_domain::deadline`], a request's
    /// `Request-Timeout`) it runs in a transaction whose `statement_timeout` is the time
    /// left, so PostgreSQL stops the statement too when the request is cancelled;
    /// otherwise straight on the pool.
    ///
    /// # Errors
    /// The driver's; a statement past the deadline fails with SQLSTATE 57014.
    pub async fn fetch_all_bounded(
        &self,
        query: Query<'_, sqlx::Postgres, PgArguments>,
    ) -> Result<Vec<PgRow>, sqlx::Error> {
        let Some(deadline) = intake_domain::deadline::current() else {
            return query.fetch_all(&self.pool).await;
        };
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let millis = left.as_millis().max(1).to_string();
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT set_config('statement_timeout', $1, true)")
            .bind(millis)
            .execute(&mut *tx)
            .await?;
        let rows = query.fetch_all(&mut *tx).await?;
        tx.commit().await?;
        Ok(rows)
    }

    /// Drops the schema and everything in it (tests), then closes the pool.
    ///
    /// # Errors
    /// When no schema is set, or dropping fails.
    pub async fn drop_schema(&self) -> anyhow::Result<()> {
        let schema = self.schema.as_deref().context("no schema to drop")?;
        sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
            .execute(&self.pool)
            .await
            .context("dropping the schema")?;
        self.relaxed.close().await;
        self.pool.close().await;
        Ok(())
    }
}

#[async_trait::async_trait]
impl intake_domain::ports::Health for PgStore {
    fn name(&self) -> &'static str {
        "postgres"
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

/// The `application_name` of the service's connections to `schema`: `intake:<schema>`,
/// cut as PostgreSQL cuts it (63 bytes).
pub(crate) fn application_name(schema: Option<&str>) -> String {
    let mut name = format!("intake:{}", schema.unwrap_or("public"));
    name.truncate(63);
    name
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
/// A connection failure (rather than a statement refused) makes the error
/// [`Unavailable`]: the API answers `503`, not `500`.
fn unexpected(doing: &'static str) -> impl FnOnce(sqlx::Error) -> anyhow::Error {
    move |e| {
        let unavailable = is_connection_failure(&e);
        if unavailable {
            anyhow::Error::new(Unavailable::new("PostgreSQL", e)).context(doing)
        } else {
            anyhow::Error::new(e).context(doing)
        }
    }
}

/// Whether the driver could not talk to the server: no connection from the pool in
/// time, a refused or broken connection, or the server shutting down or starting.
fn is_connection_failure(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(d) => d.code().is_some_and(|code| {
            // Class 08: connection exception; 57P01-57P03: shutdown, crash, starting.
            code.starts_with("08") || ["57P01", "57P02", "57P03"].contains(&code.as_ref())
        }),
        _ => false,
    }
}

fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}
