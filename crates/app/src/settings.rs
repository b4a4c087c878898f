//! Configuration (DESIGN §14): defaults that run the embedded stack, overridden by one
//! TOML file (`--config` or `INTAKE_CONFIG`), overridden by `INTAKE_*` environment
//! variables, one per key (`listen` is `INTAKE_LISTEN`). Unknown keys in the file are
//! refused; every value is checked before anything starts.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use intake_actix_web_api::auth::Token;
use intake_domain::ports::RateLimit;
use serde::{Deserialize, Serialize};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// JSON when standard error is not a terminal, pretty otherwise.
    Auto,
    /// One JSON object per line, with the span fields (the request id).
    Json,
    /// Human-readable, coloured on a terminal.
    Pretty,
}

/// Every setting; see the README's configuration reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The address the HTTP server binds.
    pub listen: String,
    /// `sqlite://path` (embedded default) or `postgres://user@host:port/db`.
    pub database_url: SecretUrl,
    /// A PostgreSQL schema to use instead of `public` (created when missing).
    pub database_schema: Option<String>,
    /// Connections in the database pool.
    pub database_max_connections: u32,
    /// How long a request or worker waits for a pooled connection before the database
    /// counts as unavailable (`503`), in milliseconds.
    pub database_acquire_timeout_ms: u64,
    /// `redis://host:port` for the shared cache and rate limiter; unset: in-process.
    pub redis_url: Option<SecretUrl>,
    /// What every Redis key of this deployment starts with (deployments sharing one
    /// Redis need different prefixes).
    pub redis_prefix: String,
    /// The in-process analytics cache's size in bytes (0: no cache); unused with Redis.
    pub cache_bytes: u64,
    /// A tracing filter (`info`, `intake=debug,sqlx=warn`).
    pub log: String,
    /// `auto`, `json` or `pretty`.
    pub log_format: LogFormat,
    /// Import workers in this process.
    pub workers: u32,
    /// HTTP worker threads (0: one per core).
    pub http_workers: usize,
    /// The largest document an import accepts, in bytes.
    pub max_document_bytes: u64,
    /// The largest JSON request body, in bytes.
    pub max_json_bytes: usize,
    /// Uploads (import bodies) arriving at once in this process; more are `503`.
    pub max_concurrent_uploads: usize,
    /// The most fields a contract may have.
    pub max_contract_fields: usize,
    /// The most key parts a contract may have.
    pub max_contract_key_fields: usize,
    /// The most dimensions a contract may have.
    pub max_contract_dimensions: usize,
    /// The most measures a contract may have.
    pub max_contract_measures: usize,
    /// The longest `?wait=true` waits for an import's report, in seconds.
    pub import_wait_seconds: u64,
    /// How long in-flight requests get to finish at shutdown, in seconds.
    pub shutdown_grace_seconds: u64,
    /// Bearer tokens and their scopes (none: authentication is off and only a
    /// loopback address may be bound).
    pub auth_tokens: AuthTokens,
    /// Requests a second each caller (token, or IP without one) gets on average
    /// (0: no rate limit).
    pub rate_limit_per_second: f64,
    /// The most requests a caller may make in a burst.
    pub rate_limit_burst: u32,
    /// The deadline of a request without a `Request-Timeout` header, in milliseconds.
    pub request_timeout_ms: u64,
    /// The longest deadline a `Request-Timeout` header may ask for, in milliseconds.
    pub max_request_timeout_ms: u64,
    /// The longest path and query string a request may have, in bytes.
    pub max_url_bytes: usize,
    /// The most bytes of headers (names and values) a request may have.
    pub max_header_bytes: usize,
    /// Delivery workers in this process (each claims a batch and sends it at once).
    pub delivery_workers: u32,
    /// Webhook requests in flight at once to one subscription, per process.
    pub delivery_concurrency: u32,
    /// Callback timer workers in this process (each fires a batch of due timers at once;
    /// two, so one claims the next batch while the other commits).
    pub callback_workers: u32,
    /// Fired and cancelled callbacks stay listed this long, then are deleted (`7d`).
    pub callback_retention: String,
    /// Every callback delay is multiplied by this (1; tests and replays use less, to
    /// run the accounts workload's seconds as milliseconds). 0 to 1000.
    pub callback_time_scale: f64,
    /// The wait before each delivery attempt, comma-separated (`0s,5s,5m,30m,2h`):
    /// its length is the number of attempts, after which a delivery is dead.
    pub delivery_retry_schedule: String,
    /// A delivery whose event is older than this is dead at its next failure (`5d`).
    pub delivery_max_age: String,
    /// A subscription whose every attempt has failed for this long is disabled (`5d`).
    pub delivery_disable_after: String,
    /// Delivered events are deleted this long after they were written (`7d`).
    pub delivery_retention: String,
    /// How long connecting to a receiver may take, in milliseconds.
    pub delivery_connect_timeout_ms: u64,
    /// How long a whole webhook request may take, in milliseconds.
    pub delivery_timeout_ms: u64,
    /// Whether subscriptions may send to, and sources fetch from, loopback, private,
    /// link-local and multicast addresses (tests, single-host deployments).
    pub outbound_allow_private: bool,
    /// Pull source workers in this process (each runs one source at a time).
    pub source_workers: u32,
    /// Failed attempts in a row after which a source is `degraded` and retried at its
    /// schedule instead of the back-off.
    pub source_degraded_after: u32,
    /// The longest wait between a source's retries (`5m`); the first is 1s, doubled
    /// each time.
    pub source_retry_max: String,
    /// How long one page or file request may take, in milliseconds.
    pub source_timeout_ms: u64,
    /// The largest page or file a source accepts, in bytes.
    pub source_max_page_bytes: u64,
    /// Job workers in this process (each runs one job at a time).
    pub job_workers: u32,
    /// A job worker's lease (`30s`): after a crash, another worker takes the job this
    /// long after its last save.
    pub job_lease: String,
    /// A job keeps a checkpoint after this many items…
    pub job_checkpoint_items: u64,
    /// …or this long (`5s`), whichever comes first.
    pub job_checkpoint_every: String,
    /// Checkpoints kept per job (older ones are deleted).
    pub job_checkpoints_kept: u32,
    /// Items a job reads at a time (1 to 100000); its progress is saved after each.
    pub job_page: u32,
    /// How often `intake serve` backs the SQLite database up (`24h`; `off`: never).
    pub backup_every: String,
    /// Where backups go (empty: `backups/` beside the database file).
    pub backup_dir: String,
    /// How many backups are kept; older ones are deleted.
    pub backup_keep: u32,
    /// Secret values by name, for sources' `auth.secret` (a `[secrets]` table in the
    /// file; `INTAKE_SECRET_<NAME>` in the environment). Never printed.
    pub secrets: SecretValues,
}

/// Secret values by name. `Debug` prints the names only.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretValues(std::collections::BTreeMap<String, String>);

impl SecretValues {
    /// The names, each with `[redacted]` for its value.
    fn redacted(&self) -> Self {
        Self(
            self.0
                .keys()
                .map(|k| (k.clone(), "[redacted]".into()))
                .collect(),
        )
    }

    /// The secrets, for the sources that name them.
    pub fn to_domain(&self) -> intake_domain::sources::Secrets {
        intake_domain::sources::Secrets::new(self.0.clone())
    }
}

impl std::fmt::Debug for SecretValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// A URL that may carry a password. `Debug` and `Display` print it redacted
/// ([`intake_domain::redact::url`]); only the adapter that connects sees it whole.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretUrl(String);

impl SecretUrl {
    /// The URL itself, for the client that connects with it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for SecretUrl {
    fn from(url: String) -> Self {
        Self(url)
    }
}

impl From<&str> for SecretUrl {
    fn from(url: &str) -> Self {
        Self(url.to_owned())
    }
}

impl std::fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&intake_domain::redact::url(&self.0))
    }
}

impl std::fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", intake_domain::redact::url(&self.0))
    }
}

/// Bearer tokens, as `INTAKE_AUTH_TOKENS` gives them (`name:sha256hex:scope,scope`
/// entries separated by `;`) or as a list of tables in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AuthTokens {
    /// The environment's form.
    Text(String),
    /// `[[auth_tokens]]` tables.
    Tables(Vec<TokenTable>),
}

/// One `[[auth_tokens]]` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenTable {
    /// Who holds it: logged, and the key its rate limit is counted under.
    pub name: String,
    /// The hex SHA-256 of the token's text (`printf %s TOKEN | sha256sum`).
    pub sha256: String,
    /// `read`, `write`, `admin`.
    pub scopes: Vec<String>,
}

impl AuthTokens {
    /// The tokens, checked.
    ///
    /// # Errors
    /// The first entry at fault.
    pub fn tokens(&self) -> anyhow::Result<Vec<Token>> {
        let tokens = match self {
            Self::Text(text) => Token::parse_list(text),
            Self::Tables(tables) => tables
                .iter()
                .map(|t| {
                    let scopes: Vec<&str> = t.scopes.iter().map(String::as_str).collect();
                    Token::new(&t.name, &t.sha256, &scopes)
                })
                .collect(),
        };
        tokens.map_err(|e| anyhow::anyhow!("auth_tokens: {e}"))
    }

    fn redacted(&self) -> Self {
        match self {
            Self::Text(text) => Self::Text(
                text.split(';')
                    .filter(|e| !e.trim().is_empty())
                    .map(|entry| {
                        let mut parts = entry.splitn(3, ':');
                        let name = parts.next().unwrap_or_default();
                        let _hash = parts.next();
                        let scopes = parts.next().unwrap_or_default();
                        format!("{name}:[redacted]:{scopes}")
                    })
                    .collect::<Vec<_>>()
                    .join(";"),
            ),
            Self::Tables(tables) => Self::Tables(
                tables
                    .iter()
                    .map(|t| TokenTable {
                        sha256: "[redacted]".into(),
                        ..t.clone()
                    })
                    .collect(),
            ),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            database_url: "sqlite://./data/intake.db".into(),
            database_schema: None,
            database_max_connections: 10,
            database_acquire_timeout_ms: 2_000,
            redis_url: None,
            redis_prefix: "intake:".into(),
            cache_bytes: 64 << 20,
            log: "info".into(),
            log_format: LogFormat::Auto,
            workers: 2,
            http_workers: 0,
            max_document_bytes: 4 << 30,
            max_json_bytes: 1 << 20,
            max_concurrent_uploads: 32,
            max_contract_fields: 256,
            max_contract_key_fields: 8,
            max_contract_dimensions: 32,
            max_contract_measures: 64,
            import_wait_seconds: 30,
            shutdown_grace_seconds: 30,
            auth_tokens: AuthTokens::Text(String::new()),
            rate_limit_per_second: 50.0,
            rate_limit_burst: 100,
            request_timeout_ms: 60_000,
            max_request_timeout_ms: 600_000,
            max_url_bytes: 8 * 1024,
            max_header_bytes: 16 * 1024,
            delivery_workers: 4,
            delivery_concurrency: 16,
            callback_workers: 2,
            callback_retention: "7d".into(),
            callback_time_scale: 1.0,
            delivery_retry_schedule: "0s,5s,5m,30m,2h,5h,10h,10h".into(),
            delivery_max_age: "5d".into(),
            delivery_disable_after: "5d".into(),
            delivery_retention: "7d".into(),
            delivery_connect_timeout_ms: 5_000,
            delivery_timeout_ms: 15_000,
            outbound_allow_private: false,
            source_workers: 2,
            source_degraded_after: 5,
            source_retry_max: "5m".into(),
            source_timeout_ms: 30_000,
            source_max_page_bytes: 16 * 1024 * 1024,
            job_workers: 1,
            job_lease: "30s".into(),
            job_checkpoint_items: 10_000,
            job_checkpoint_every: "5s".into(),
            job_checkpoints_kept: 5,
            job_page: 1000,
            backup_every: "24h".into(),
            backup_dir: String::new(),
            backup_keep: 7,
            secrets: SecretValues::default(),
        }
    }
}

/// `INTAKE_*` variables that are not settings: the config file, the command line's
/// server and token, and those of the test suites and CI scripts.
const OTHER_VARIABLES: [&str; 9] = [
    "CONFIG",
    "TOKEN",
    "SERVER",
    "BIN",
    "CI_TOOLS",
    "RECORD_GOLDEN",
    "REQUIRE_SERVICES",
    "UPDATE_OPENAPI",
    "FUZZ_SECONDS",
];

/// Prefixes of `INTAKE_*` variables that are not settings: secrets by name, and the
/// test suites' own.
const OTHER_PREFIXES: [&str; 2] = ["SECRET_", "TEST_"];

/// The `INTAKE_*` variables of `names` that no setting (or other use) reads, each with
/// the setting's variable it is closest to, when one is close: a misspelled setting is
/// otherwise silently ignored.
pub fn unknown_variables(names: impl IntoIterator<Item = String>) -> Vec<(String, Option<String>)> {
    let mut unknown = Vec::new();
    for name in names {
        let Some(rest) = name.strip_prefix("INTAKE_") else {
            continue;
        };
        let key = rest.to_ascii_lowercase();
        let known = KEYS.contains(&key.as_str())
            || OTHER_VARIABLES.contains(&rest)
            || OTHER_PREFIXES.iter().any(|p| rest.starts_with(p));
        if known {
            continue;
        }
        let closest = KEYS
            .iter()
            .map(|k| (distance(k, &key), k))
            .min()
            .filter(|(d, k)| *d <= 2.max(k.len() / 4))
            .map(|(_, k)| format!("INTAKE_{}", k.to_ascii_uppercase()));
        unknown.push((name, closest));
    }
    unknown.sort();
    unknown
}

/// The edit distance (insertions, deletions, substitutions) between `a` and `b`.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if ca == *cb {
                diagonal
            } else {
                1 + diagonal.min(above).min(row[j])
            };
            diagonal = above;
        }
    }
    row[b.len()]
}

/// The keys, as `INTAKE_<KEY>` reads them.
const KEYS: [&str; 54] = [
    "listen",
    "database_url",
    "database_schema",
    "database_max_connections",
    "database_acquire_timeout_ms",
    "redis_url",
    "redis_prefix",
    "cache_bytes",
    "log",
    "log_format",
    "workers",
    "http_workers",
    "max_document_bytes",
    "max_json_bytes",
    "max_concurrent_uploads",
    "max_contract_fields",
    "max_contract_key_fields",
    "max_contract_dimensions",
    "max_contract_measures",
    "import_wait_seconds",
    "shutdown_grace_seconds",
    "auth_tokens",
    "rate_limit_per_second",
    "rate_limit_burst",
    "request_timeout_ms",
    "max_request_timeout_ms",
    "max_url_bytes",
    "max_header_bytes",
    "delivery_workers",
    "delivery_concurrency",
    "callback_workers",
    "callback_retention",
    "callback_time_scale",
    "delivery_retry_schedule",
    "delivery_max_age",
    "delivery_disable_after",
    "delivery_retention",
    "delivery_connect_timeout_ms",
    "delivery_timeout_ms",
    "outbound_allow_private",
    "source_workers",
    "source_degraded_after",
    "source_retry_max",
    "source_timeout_ms",
    "source_max_page_bytes",
    "job_workers",
    "job_lease",
    "job_checkpoint_items",
    "job_checkpoint_every",
    "job_checkpoints_kept",
    "job_page",
    "backup_every",
    "backup_dir",
    "backup_keep",
];

/// Environment variables naming a secret: `INTAKE_SECRET_<NAME>`.
const SECRET_PREFIX: &str = "INTAKE_SECRET_";

/// How often to look for what is older than any of `periods`: every minute, or often
/// enough for short periods (tests), never more than ten times a second.
fn housekeeping(periods: &[Duration]) -> Duration {
    periods
        .iter()
        .map(|p| *p / 4)
        .fold(Duration::from_secs(60), Duration::min)
        .max(Duration::from_millis(100))
}

/// A duration as settings write it: a whole number and `ms`, `s`, `m`, `h` or `d`.
fn duration(text: &str) -> anyhow::Result<Duration> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| anyhow::anyhow!("{text:?} has no unit (ms, s, m, h, d)"))?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| anyhow::anyhow!("{text:?} does not start with a whole number"))?;
    let seconds = match unit {
        "ms" => return Ok(Duration::from_millis(n)),
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => anyhow::bail!("{other:?} is not a unit (ms, s, m, h, d)"),
    };
    Ok(Duration::from_secs(n.saturating_mul(seconds)))
}

/// Which database a URL selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Database {
    /// `sqlite:`.
    Sqlite,
    /// `postgres:` or `postgresql:`.
    Postgres,
}

impl Settings {
    /// Defaults, then `file` (when given), then the environment; checked.
    ///
    /// # Errors
    /// A message naming the key at fault, or the file that cannot be read.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let mut figment = Figment::from(Serialized::defaults(Self::default()));
        if let Some(file) = file {
            anyhow::ensure!(file.is_file(), "config file {} not found", file.display());
            figment = figment.merge(Toml::file_exact(file));
        }
        let mut settings: Self = figment
            .merge(Env::prefixed("INTAKE_").only(&KEYS))
            .extract()
            .map_err(|e| anyhow::anyhow!("{}", describe(e)))?;
        for (name, value) in std::env::vars_os() {
            let (Some(name), Some(value)) = (name.to_str(), value.to_str()) else {
                continue;
            };
            if let Some(secret) = name.strip_prefix(SECRET_PREFIX) {
                settings
                    .secrets
                    .0
                    .insert(secret.to_owned(), value.to_owned());
            }
        }
        settings.validate()?;
        Ok(settings)
    }

    /// Checks what a type cannot: addresses, URLs and ranges.
    ///
    /// # Errors
    /// The first value at fault, named.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.listen_addr()?;
        if self.database()? == Database::Sqlite {
            self.backups()?;
        }
        self.auth_tokens.tokens()?;
        anyhow::ensure!(
            self.rate_limit_per_second >= 0.0 && self.rate_limit_per_second.is_finite(),
            "rate_limit_per_second: 0 (no limit) or more (got {})",
            self.rate_limit_per_second
        );
        self.rate_limit()?;
        anyhow::ensure!(
            self.request_timeout_ms > 0 && self.max_request_timeout_ms > 0,
            "request_timeout_ms, max_request_timeout_ms: more than 0"
        );
        anyhow::ensure!(
            self.max_request_timeout_ms <= 86_400_000,
            "max_request_timeout_ms: at most a day (86400000)"
        );
        anyhow::ensure!(
            self.workers <= 64,
            "workers: at most 64 (got {})",
            self.workers
        );
        anyhow::ensure!(
            (1..=1000).contains(&self.database_max_connections),
            "database_max_connections: 1 to 1000 (got {})",
            self.database_max_connections
        );
        anyhow::ensure!(
            self.max_document_bytes > 0,
            "max_document_bytes: more than 0"
        );
        anyhow::ensure!(self.max_json_bytes > 0, "max_json_bytes: more than 0");
        anyhow::ensure!(
            (100..=600_000).contains(&self.database_acquire_timeout_ms),
            "database_acquire_timeout_ms: 100 to 600000 (got {})",
            self.database_acquire_timeout_ms
        );
        anyhow::ensure!(
            self.max_concurrent_uploads > 0,
            "max_concurrent_uploads: more than 0"
        );
        let limits = self.contract_limits();
        anyhow::ensure!(
            limits.fields > 0 && limits.key_fields > 0,
            "max_contract_fields, max_contract_key_fields: more than 0"
        );
        anyhow::ensure!(
            self.max_url_bytes >= 256 && self.max_header_bytes >= 1024,
            "max_url_bytes: at least 256; max_header_bytes: at least 1024"
        );
        if let Some(url) = &self.redis_url {
            anyhow::ensure!(
                url.expose().starts_with("redis://"),
                "redis_url: expected redis://host:port (got {url})"
            );
        }
        anyhow::ensure!(
            self.delivery_workers <= 256,
            "delivery_workers: at most 256 (got {})",
            self.delivery_workers
        );
        anyhow::ensure!(
            self.source_workers <= 256,
            "source_workers: at most 256 (got {})",
            self.source_workers
        );
        anyhow::ensure!(
            self.job_workers <= 64,
            "job_workers: at most 64 (got {})",
            self.job_workers
        );
        anyhow::ensure!(
            (1..=1000).contains(&self.job_checkpoints_kept)
                && self.job_checkpoint_items > 0
                && (1..=100_000).contains(&self.job_page),
            "job_checkpoints_kept: 1 to 1000, job_checkpoint_items: more than 0, job_page: 1 to 100000"
        );
        self.jobs()?;
        anyhow::ensure!(
            (1..=1000).contains(&self.source_degraded_after),
            "source_degraded_after: 1 to 1000 (got {})",
            self.source_degraded_after
        );
        anyhow::ensure!(
            self.source_timeout_ms > 0 && self.source_max_page_bytes > 0,
            "source_timeout_ms, source_max_page_bytes: more than 0"
        );
        if let Some(bad) = self
            .secrets
            .0
            .keys()
            .find(|n| !intake_domain::sources::is_secret_name(n))
        {
            anyhow::bail!("secrets: {bad:?} is not a secret's name (1-64 of A-Z, 0-9 and '_')");
        }
        self.sources()?;
        anyhow::ensure!(
            self.callback_workers <= 256,
            "callback_workers: at most 256 (got {})",
            self.callback_workers
        );
        anyhow::ensure!(
            (1..=1000).contains(&self.delivery_concurrency),
            "delivery_concurrency: 1 to 1000 (got {})",
            self.delivery_concurrency
        );
        anyhow::ensure!(
            self.delivery_connect_timeout_ms > 0 && self.delivery_timeout_ms > 0,
            "delivery_connect_timeout_ms, delivery_timeout_ms: more than 0"
        );
        anyhow::ensure!(
            (0.0..=1000.0).contains(&self.callback_time_scale),
            "callback_time_scale: 0 to 1000 (got {})",
            self.callback_time_scale
        );
        self.deliveries()?;
        self.callbacks()?;
        Ok(())
    }

    /// How callback timers are fired and kept.
    ///
    /// # Errors
    /// Naming `callback_retention` when malformed.
    pub fn callbacks(&self) -> anyhow::Result<intake_domain::callbacks::CallbackSettings> {
        let retention = duration(self.callback_retention.trim()).with_context(|| {
            format!(
                "callback_retention: a duration such as 7d or 12h (got {:?})",
                self.callback_retention
            )
        })?;
        Ok(intake_domain::callbacks::CallbackSettings {
            retention,
            housekeeping: housekeeping(&[retention]),
            ..intake_domain::callbacks::CallbackSettings::default()
        })
    }

    /// How deliveries are retried and how long they may wait.
    ///
    /// # Errors
    /// Naming the setting (`delivery_retry_schedule`, `delivery_max_age`, …) when
    /// malformed.
    pub fn deliveries(&self) -> anyhow::Result<intake_domain::delivery::DeliverySettings> {
        let schedule = self
            .delivery_retry_schedule
            .split(',')
            .map(|w| duration(w.trim()))
            .collect::<anyhow::Result<Vec<_>>>()
            .with_context(|| {
                format!(
                    "delivery_retry_schedule: comma-separated durations such as 0s,100ms,5m,2h \
                     (got {:?})",
                    self.delivery_retry_schedule
                )
            })?;
        anyhow::ensure!(
            (1..=50).contains(&schedule.len()),
            "delivery_retry_schedule: 1 to 50 attempts (got {})",
            schedule.len()
        );
        let period = |name: &str, value: &str| {
            duration(value.trim())
                .with_context(|| format!("{name}: a duration such as 5d or 12h (got {value:?})"))
        };
        let max_age = period("delivery_max_age", &self.delivery_max_age)?;
        let disable_after = period("delivery_disable_after", &self.delivery_disable_after)?;
        let retention = period("delivery_retention", &self.delivery_retention)?;
        let timeout = Duration::from_millis(self.delivery_timeout_ms);
        Ok(intake_domain::delivery::DeliverySettings {
            retry_schedule: schedule,
            max_age,
            // A claim outlives the request it covers; a killed server's claims come
            // back this long after.
            lease: timeout * 2 + Duration::from_secs(5),
            concurrency: self.delivery_concurrency,
            disable_after,
            retention,
            // Every minute, or often enough for short periods (tests).
            housekeeping: housekeeping(&[disable_after, retention]),
            ..intake_domain::delivery::DeliverySettings::default()
        })
    }

    /// How pull sources run.
    ///
    /// # Errors
    /// Naming `source_retry_max` when malformed.
    pub fn sources(&self) -> anyhow::Result<intake_domain::sources::SourceSettings> {
        let retry_max = duration(self.source_retry_max.trim()).with_context(|| {
            format!(
                "source_retry_max: a duration such as 5m (got {:?})",
                self.source_retry_max
            )
        })?;
        let timeout = Duration::from_millis(self.source_timeout_ms);
        Ok(intake_domain::sources::SourceSettings {
            degraded_after: self.source_degraded_after,
            retry_max: retry_max.max(Duration::from_secs(1)),
            max_page_bytes: self.source_max_page_bytes,
            // A claim outlives the request between two saved pages.
            lease: timeout * 2 + Duration::from_secs(5),
            secrets: self.secrets.to_domain(),
            ..intake_domain::sources::SourceSettings::default()
        })
    }

    /// How jobs run.
    ///
    /// # Errors
    /// Naming `job_lease` or `job_checkpoint_every` when malformed, or when the lease
    /// is not longer than the checkpoint period.
    pub fn jobs(&self) -> anyhow::Result<intake_domain::jobs::JobSettings> {
        let read = |name: &str, text: &str| {
            duration(text.trim())
                .with_context(|| format!("{name}: a duration such as 30s (got {text:?})"))
        };
        let lease = read("job_lease", &self.job_lease)?;
        let every = read("job_checkpoint_every", &self.job_checkpoint_every)?;
        anyhow::ensure!(
            lease >= Duration::from_secs(1) && lease > every,
            "job_lease: at least 1s and longer than job_checkpoint_every (got {} and {})",
            self.job_lease,
            self.job_checkpoint_every
        );
        Ok(intake_domain::jobs::JobSettings {
            lease,
            checkpoint_items: self.job_checkpoint_items,
            checkpoint_every: every,
            keep: self.job_checkpoints_kept,
            page: self.job_page,
            ..intake_domain::jobs::JobSettings::default()
        })
    }

    /// Where the data is, for people: the SQLite file as an absolute path (a relative
    /// URL depends on the directory the process started in), or PostgreSQL's URL
    /// without its password, with the schema.
    ///
    /// # Errors
    /// When the URL is not one this build reads.
    pub fn data_location(&self) -> anyhow::Result<String> {
        Ok(match self.database()? {
            Database::Sqlite => {
                let file = intake_sqlite::database_file(self.database_url.expose())?;
                let file = std::path::absolute(&file).unwrap_or(file);
                format!("{} (SQLite)", file.display())
            }
            Database::Postgres => {
                let url = intake_domain::redact::url(self.database_url.expose());
                match &self.database_schema {
                    Some(schema) => format!("{url}, schema {schema} (PostgreSQL)"),
                    None => format!("{url} (PostgreSQL)"),
                }
            }
        })
    }

    /// How to open SQLite, when `database_url` names it.
    pub fn sqlite(&self) -> intake_sqlite::Settings {
        intake_sqlite::Settings {
            url: self.database_url.expose().to_owned(),
            acquire_timeout: self.database_acquire_timeout(),
            ..intake_sqlite::Settings::default()
        }
    }

    /// How to reach PostgreSQL, when `database_url` names it.
    pub fn postgres(&self) -> intake_postgres::Settings {
        intake_postgres::Settings {
            url: self.database_url.expose().to_owned(),
            max_connections: self.database_max_connections,
            acquire_timeout: self.database_acquire_timeout(),
            schema: self.database_schema.clone(),
        }
    }

    /// How often to back the SQLite database up (`None`: never), where to, and how
    /// many to keep.
    ///
    /// # Errors
    /// Naming `backup_every` when malformed, or when the database is not a file.
    pub fn backups(&self) -> anyhow::Result<(Option<Duration>, std::path::PathBuf, usize)> {
        let every = match self.backup_every.trim() {
            "off" | "" => None,
            text => Some(duration(text).with_context(|| {
                format!("backup_every: a duration such as 24h, or off (got {text:?})")
            })?),
        };
        let dir = if self.backup_dir.is_empty() {
            let database = intake_sqlite::database_file(self.database_url.expose())?;
            database
                .parent()
                .unwrap_or(std::path::Path::new("."))
                .join("backups")
        } else {
            self.backup_dir.clone().into()
        };
        Ok((
            every.filter(|e| !e.is_zero()),
            dir,
            usize::try_from(self.backup_keep)
                .unwrap_or(usize::MAX)
                .max(1),
        ))
    }

    /// How pages and files are fetched.
    pub fn pulls(&self) -> intake_http_source::Settings {
        intake_http_source::Settings {
            connect_timeout: Duration::from_millis(self.delivery_connect_timeout_ms),
            timeout: Duration::from_millis(self.source_timeout_ms),
            allow_private: self.outbound_allow_private,
        }
    }

    /// How webhooks are sent.
    pub fn outbound(&self) -> intake_http_source::Settings {
        intake_http_source::Settings {
            connect_timeout: Duration::from_millis(self.delivery_connect_timeout_ms),
            timeout: Duration::from_millis(self.delivery_timeout_ms),
            allow_private: self.outbound_allow_private,
        }
    }

    /// The address to bind.
    ///
    /// # Errors
    /// When `listen` is not `ip:port`.
    pub fn listen_addr(&self) -> anyhow::Result<SocketAddr> {
        self.listen
            .parse()
            .with_context(|| format!("listen: expected ip:port (got {:?})", self.listen))
    }

    /// Refuses an address other than loopback when no token is configured: the API
    /// would be open to anyone who can reach it (DESIGN §13).
    ///
    /// # Errors
    /// Saying why, and what to do.
    pub fn check_exposure(&self) -> anyhow::Result<()> {
        let addr = self.listen_addr()?;
        if self.auth_tokens.tokens()?.is_empty() && !addr.ip().is_loopback() {
            anyhow::bail!(
                "refusing to listen on {addr}: no auth tokens are configured, so anyone who \
                 can reach it could read and change every dataset; configure auth_tokens \
                 (INTAKE_AUTH_TOKENS=name:sha256hex:scope,scope) or listen on a loopback \
                 address such as 127.0.0.1"
            );
        }
        Ok(())
    }

    /// Each caller's token bucket, or `None` when rate limiting is off.
    ///
    /// # Errors
    /// When the burst is 0 while a rate is set.
    pub fn rate_limit(&self) -> anyhow::Result<Option<RateLimit>> {
        if self.rate_limit_per_second == 0.0 {
            return Ok(None);
        }
        RateLimit::new(self.rate_limit_burst, self.rate_limit_per_second)
            .map(Some)
            .map_err(|e| anyhow::anyhow!("rate_limit_burst, rate_limit_per_second: {e}"))
    }

    /// The database the URL selects.
    ///
    /// # Errors
    /// When the scheme is neither `sqlite:` nor `postgres:`.
    pub fn database(&self) -> anyhow::Result<Database> {
        let url = self.database_url.expose();
        if url.starts_with("sqlite:") {
            Ok(Database::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Database::Postgres)
        } else {
            anyhow::bail!(
                "database_url: expected sqlite://PATH or postgres://USER@HOST:PORT/DB (got {})",
                self.database_url
            )
        }
    }

    /// The settings with secrets hidden, for logs, `check` and `/admin/state`, however
    /// they are printed or serialized.
    pub fn redacted(&self) -> Self {
        Self {
            database_url: self.database_url.to_string().into(),
            redis_url: self.redis_url.as_ref().map(|u| u.to_string().into()),
            auth_tokens: self.auth_tokens.redacted(),
            secrets: self.secrets.redacted(),
            ..self.clone()
        }
    }

    /// The default and the longest deadline of a request.
    pub fn request_timeouts(&self) -> (Duration, Duration) {
        (
            Duration::from_millis(self.request_timeout_ms),
            Duration::from_millis(self.max_request_timeout_ms),
        )
    }

    /// How large a contract may be.
    pub fn contract_limits(&self) -> intake_domain::contract::ContractLimits {
        intake_domain::contract::ContractLimits {
            fields: self.max_contract_fields,
            key_fields: self.max_contract_key_fields,
            dimensions: self.max_contract_dimensions,
            measures: self.max_contract_measures,
        }
    }

    /// How long a pooled connection is waited for.
    pub fn database_acquire_timeout(&self) -> Duration {
        Duration::from_millis(self.database_acquire_timeout_ms)
    }

    /// How long `?wait=true` waits.
    pub fn import_wait(&self) -> Duration {
        Duration::from_secs(self.import_wait_seconds)
    }
}

/// Figment's error, with the key and where its value came from.
fn describe(e: figment::Error) -> String {
    e.into_iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
#[allow(
    clippy::result_large_err,
    reason = "figment's Jail closures return its error"
)]
mod tests {
    use super::*;

    #[test]
    fn misspelled_variables_are_named_with_the_setting_they_are_closest_to() {
        let names = [
            "INTAKE_LISTN",
            "INTAKE_LISTEN",
            "INTAKE_DATABSE_URL",
            "INTAKE_SECRET_VENDOR",
            "INTAKE_TOKEN",
            "INTAKE_TEST_DATABASE_URL",
            "INTAKE_FROBNICATE",
            "PATH",
        ]
        .map(String::from);
        assert_eq!(
            unknown_variables(names),
            [
                (
                    "INTAKE_DATABSE_URL".into(),
                    Some("INTAKE_DATABASE_URL".into())
                ),
                ("INTAKE_FROBNICATE".into(), None),
                ("INTAKE_LISTN".into(), Some("INTAKE_LISTEN".into())),
            ]
        );
    }

    #[test]
    fn the_defaults_run_the_embedded_stack() {
        let s = Settings::default();
        assert_eq!(s.listen_addr().unwrap().to_string(), "127.0.0.1:8080");
        assert_eq!(s.database().unwrap(), Database::Sqlite);
        assert!(s.redis_url.is_none());
        s.validate().unwrap();
    }

    #[test]
    fn the_delivery_schedule_is_durations_and_says_what_is_wrong() {
        let s = Settings {
            delivery_retry_schedule: "0s, 100ms,5m,2h".into(),
            delivery_max_age: "3d".into(),
            ..Settings::default()
        };
        let d = s.deliveries().unwrap();
        let want = [0, 100, 300_000, 7_200_000].map(Duration::from_millis);
        assert_eq!(d.retry_schedule, want);
        assert_eq!(d.max_age, Duration::from_secs(3 * 86_400));
        assert_eq!(
            Settings::default()
                .deliveries()
                .unwrap()
                .retry_schedule
                .len(),
            8
        );
        for (schedule, age) in [("5", "5d"), ("5x", "5d"), ("", "5d"), ("1s", "soon")] {
            let bad = Settings {
                delivery_retry_schedule: schedule.into(),
                delivery_max_age: age.into(),
                ..Settings::default()
            };
            let e = format!("{:#}", bad.validate().unwrap_err());
            assert!(e.contains("delivery_"), "{schedule:?}/{age:?}: {e}");
        }
        let d = Settings {
            delivery_disable_after: "36h".into(),
            delivery_retention: "30d".into(),
            delivery_concurrency: 64,
            ..Settings::default()
        }
        .deliveries()
        .unwrap();
        assert_eq!(
            (d.disable_after, d.retention, d.concurrency),
            (
                Duration::from_secs(36 * 3600),
                Duration::from_secs(30 * 86_400),
                64
            )
        );
        let bad = Settings {
            delivery_retention: "a week".into(),
            ..Settings::default()
        };
        let e = format!("{:#}", bad.validate().unwrap_err());
        assert!(e.contains("delivery_retention"), "{e}");
        let bad = Settings {
            delivery_concurrency: 0,
            ..Settings::default()
        };
        let e = format!("{:#}", bad.validate().unwrap_err());
        assert!(e.contains("delivery_concurrency"), "{e}");
    }

    #[test]
    fn a_file_is_overridden_by_the_environment_and_unknown_keys_are_refused() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("intake.toml", "listen = \"127.0.0.1:9000\"\nworkers = 3\n")?;
            jail.set_env("INTAKE_WORKERS", "5");
            jail.set_env("INTAKE_TEST_DATABASE_URL", "not a setting: ignored");
            let s = Settings::load(Some(Path::new("intake.toml"))).unwrap();
            assert_eq!((s.listen.as_str(), s.workers), ("127.0.0.1:9000", 5));
            jail.create_file("bad.toml", "lisen = \"x\"\n")?;
            let e = Settings::load(Some(Path::new("bad.toml"))).unwrap_err();
            assert!(e.to_string().contains("lisen"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn bad_values_are_named() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("INTAKE_DATABASE_URL", "mysql://u:pw@h/db");
            let e = Settings::load(None).unwrap_err().to_string();
            assert!(e.contains("database_url") && !e.contains("pw"), "{e}");
            jail.set_env("INTAKE_DATABASE_URL", "sqlite://x.db");
            jail.set_env("INTAKE_WORKERS", "many");
            let e = Settings::load(None).unwrap_err().to_string();
            assert!(e.contains("\"WORKERS\"") && e.contains("INTAKE_"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn tokens_come_from_the_environment_or_tables_and_guard_the_bind() {
        let hash = "a".repeat(64);
        figment::Jail::expect_with(|jail| {
            jail.set_env("INTAKE_LISTEN", "0.0.0.0:8080");
            let s = Settings::load(None).unwrap();
            let e = s.check_exposure().unwrap_err().to_string();
            assert!(e.contains("no auth tokens are configured"), "{e}");
            jail.set_env(
                "INTAKE_AUTH_TOKENS",
                format!("front:{hash}:read;ops:{hash}:admin"),
            );
            let s = Settings::load(None).unwrap();
            assert_eq!(s.auth_tokens.tokens().unwrap().len(), 2);
            s.check_exposure().unwrap();
            assert!(!format!("{:?}", s.redacted()).contains(&hash));
            jail.set_env("INTAKE_AUTH_TOKENS", "front:abc:read");
            let e = Settings::load(None).unwrap_err().to_string();
            assert!(e.contains("auth_tokens: token front: the hash"), "{e}");
            Ok(())
        });
        figment::Jail::expect_with(|jail| {
            let table = format!(
                "[[auth_tokens]]\nname = \"front\"\nsha256 = \"{hash}\"\nscopes = [\"read\", \"write\"]\n"
            );
            jail.create_file("intake.toml", &table)?;
            let s = Settings::load(Some(Path::new("intake.toml"))).unwrap();
            let tokens = s.auth_tokens.tokens().unwrap();
            assert_eq!(tokens[0].name, "front");
            assert!(!format!("{:?}", s.redacted()).contains(&hash));
            Ok(())
        });
    }

    #[test]
    fn rate_limits_are_checked() {
        let s = Settings::default();
        let limit = s.rate_limit().unwrap().unwrap();
        assert_eq!((limit.burst, limit.per_second), (100, 50.0));
        let off = Settings {
            rate_limit_per_second: 0.0,
            ..Settings::default()
        };
        assert_eq!(off.rate_limit().unwrap(), None);
        let bad = Settings {
            rate_limit_burst: 0,
            ..Settings::default()
        };
        let e = bad.validate().unwrap_err().to_string();
        assert!(e.contains("rate_limit_burst"), "{e}");
        let negative = Settings {
            rate_limit_per_second: -1.0,
            ..Settings::default()
        };
        assert!(negative.validate().is_err());
    }

    #[test]
    fn secrets_are_redacted_whenever_settings_are_printed() {
        for url in [
            "postgres://u:s3cret@h/db",
            "postgres://u@h/db?password=s3cret",
            "postgres://u:s3c?ret@h/db",
        ] {
            let s = Settings {
                database_url: url.into(),
                redis_url: Some(url.replace("postgres", "redis").into()),
                ..Settings::default()
            };
            let s = Settings {
                secrets: SecretValues(
                    [("VENDOR_TOKEN".to_owned(), "s3cret-token".to_owned())].into(),
                ),
                ..s
            };
            for printed in [
                format!("{s:?}"),
                format!("{:?}", s.redacted()),
                serde_json::to_string(&s.redacted()).unwrap(),
                s.database_url.to_string(),
            ] {
                assert!(!printed.contains("s3c"), "{printed}");
            }
            assert_eq!(s.database_url.expose(), url, "the adapter gets it whole");
        }
    }
}
