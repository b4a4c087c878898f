//! The management API (DESIGN §12): what this instance is and holds, its log filter,
//! and pausing or resuming a kind of work on every instance. Every route needs `admin`.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use intake_domain::ports::{Backup, JobStatus};
use intake_domain::work::{KindView, WorkKind};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::policy::Policy;
use crate::{ApiError, ApiState};

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource("/admin/state", Policy::Admin).route(web::get().to(state)))
        .service(
            super::resource("/admin/log-level", Policy::Admin)
                .route(web::get().to(get_log_level))
                .route(web::put().to(put_log_level)),
        )
        .service(
            super::resource("/admin/backups", Policy::Admin)
                .route(web::get().to(list_backups))
                .route(web::post().to(make_backup)),
        )
        .service(
            super::resource("/admin/workers/{kind}/pause", Policy::Admin)
                .route(web::post().to(pause)),
        )
        .service(
            super::resource("/admin/workers/{kind}/resume", Policy::Admin)
                .route(web::post().to(resume)),
        );
}

/// An error this instance logged.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LoggedError {
    /// When.
    pub at: DateTime<Utc>,
    /// Where in the code (the log line's target).
    #[schema(example = "intake_actix_web_api::error")]
    pub target: String,
    /// The log line's message and fields.
    pub message: String,
    /// The request it happened in, if any (its `X-Request-Id`).
    pub request_id: Option<String>,
}

/// This instance's log: its filter (`tracing`'s `EnvFilter` syntax), changed at run
/// time without a restart, and the last errors it logged.
pub trait Logging: Send + Sync {
    /// The last errors logged (at most 20), newest first.
    fn recent_errors(&self) -> Vec<LoggedError>;

    /// The filter in force.
    fn current(&self) -> String;

    /// Puts `filter` in force at once.
    ///
    /// # Errors
    /// Why `filter` is not a filter (nothing changes).
    fn set(&self, filter: &str) -> Result<(), String>;
}

/// One dependency, checked now.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdapterResponse {
    /// `database`, `redis`, …
    pub name: String,
    /// Whether the service can run without it.
    pub required: bool,
    /// `up` or `down`.
    pub status: String,
    /// How long its check took, in milliseconds.
    pub latency_ms: f64,
    /// Why it is down (as logged).
    pub error: Option<String>,
}

/// One worker of this instance.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkerResponse {
    /// Its name (`{host}-{pid}-…`), as in the logs and leases.
    pub name: String,
    /// The item it holds (`dataset/import`, `dataset/source`, …), if any.
    pub holding: Option<String>,
    /// Since when it holds it.
    pub since: Option<DateTime<Utc>>,
}

/// One kind of work: whether it is paused (on every instance) and this instance's
/// workers of it.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkerKindResponse {
    /// `imports`, `deliveries`, `callbacks`, `sources` or `jobs`.
    #[schema(example = "imports")]
    pub kind: String,
    /// `running` or `paused`.
    #[schema(example = "running")]
    pub status: String,
    /// Since when it is paused.
    pub paused_since: Option<DateTime<Utc>>,
    /// This instance's workers of this kind.
    pub count: usize,
    /// Each of them.
    pub workers: Vec<WorkerResponse>,
}

/// One subscription's deliveries.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionQueueResponse {
    /// Its dataset.
    pub dataset: String,
    /// Its id.
    pub subscription: String,
    /// `active`, `paused` or `disabled`.
    pub status: String,
    /// Deliveries waiting to be sent or retried.
    pub pending: u64,
    /// Deliveries given up.
    pub dead: u64,
}

/// Work waiting.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueuesResponse {
    /// Imports received and not yet processed (or whose worker's lease lapsed).
    pub imports_waiting: Option<u64>,
    /// Each subscription with deliveries pending or dead (null when they could not be
    /// read).
    pub deliveries: Option<Vec<SubscriptionQueueResponse>>,
    /// Callback timers pending.
    pub callbacks_pending: Option<u64>,
    /// Pull sources that are healthy.
    pub sources_healthy: Option<u64>,
    /// Pull sources that are degraded.
    pub sources_degraded: Option<u64>,
    /// Pull sources paused.
    pub sources_paused: Option<u64>,
    /// Jobs queued (waiting for a worker).
    pub jobs_queued: Option<u64>,
    /// Jobs running.
    pub jobs_running: Option<u64>,
    /// Jobs paused by an operator.
    pub jobs_paused: Option<u64>,
    /// Jobs failed.
    pub jobs_failed: Option<u64>,
}

/// This instance and what it holds.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminStateResponse {
    /// The service's version.
    pub version: String,
    /// `release` or `debug`.
    pub build: String,
    /// This instance's name (`{host}-{pid}`), the prefix of its workers' names.
    pub instance: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Seconds since it started.
    pub uptime_seconds: u64,
    /// The configuration in force, every secret and token redacted.
    pub config: serde_json::Value,
    /// The log filter in force.
    pub log_filter: String,
    /// Whether the service backs its database up (`/admin/backups`; SQLite only).
    pub backups: bool,
    /// Each dependency, checked now (2 s at most each).
    pub adapters: Vec<AdapterResponse>,
    /// Each kind of work.
    pub workers: Vec<WorkerKindResponse>,
    /// Work waiting; a count that could not be read is null (and logged).
    pub queues: QueuesResponse,
    /// The last 20 errors this instance logged, newest first, each with its request id.
    pub recent_errors: Vec<LoggedError>,
}

/// The log filter.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LogLevelBody {
    /// A `tracing` filter: a default level, then `target=level` pairs.
    #[schema(example = "info,intake_domain=debug")]
    pub filter: String,
}

fn kind_response(k: KindView) -> WorkerKindResponse {
    WorkerKindResponse {
        kind: k.kind.as_str().into(),
        status: if k.paused_since.is_some() {
            "paused"
        } else {
            "running"
        }
        .into(),
        paused_since: k.paused_since,
        count: k.workers.len(),
        workers: k
            .workers
            .into_iter()
            .map(|w| {
                let (holding, since) = w.holding.unzip();
                WorkerResponse {
                    name: w.name,
                    holding,
                    since,
                }
            })
            .collect(),
    }
}

/// A count for `/admin/state`: `None` (logged) when it cannot be read.
fn logged<T, E: std::fmt::Display>(what: &str, read: Result<T, E>) -> Option<T> {
    read.map_err(|e| tracing::warn!(error = %e, "reading {what} for /admin/state failed"))
        .ok()
}

/// The state of this instance: version, uptime, configuration (secrets redacted),
/// each dependency with its latency, each kind of work with its workers and what they
/// hold, and the work waiting.
#[utoipa::path(get, path = "/admin/state", tag = "admin",
    responses((status = 200, description = "This instance's state", body = AdminStateResponse)))]
pub(crate) async fn state(state: web::Data<ApiState>) -> Result<HttpResponse, ApiError> {
    let mut adapters = Vec::new();
    for dependency in &state.dependencies {
        let (error, took) = super::health::check(dependency.as_ref()).await;
        adapters.push(AdapterResponse {
            name: dependency.name().into(),
            required: dependency.required(),
            status: if error.is_none() { "up" } else { "down" }.into(),
            latency_ms: (took.as_secs_f64() * 1e6).round() / 1000.0,
            error,
        });
    }
    let sources = logged("sources by health", state.sources.counts().await);
    let count = |health: &str| {
        sources.as_ref().and_then(|c| {
            c.iter()
                .find(|(h, _)| h.as_str() == health)
                .map(|(_, n)| *n)
        })
    };
    let job_counts = logged("jobs by status", state.jobs.counts().await);
    let jobs = |status: JobStatus| {
        job_counts.as_ref().map(|counts| {
            counts
                .iter()
                .find(|(s, _)| *s == status)
                .map_or(0, |(_, n)| *n)
        })
    };
    let admin = &state.admin;
    let uptime = state.started.elapsed();
    let body = AdminStateResponse {
        version: env!("CARGO_PKG_VERSION").into(),
        build: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
        .into(),
        instance: admin.instance.clone(),
        started_at: Utc::now() - chrono::Duration::from_std(uptime).unwrap_or_default(),
        uptime_seconds: uptime.as_secs(),
        config: admin.config.clone(),
        log_filter: admin.log.current(),
        backups: admin.backups.is_some(),
        adapters,
        workers: admin
            .workers
            .kinds()
            .into_iter()
            .map(kind_response)
            .collect(),
        queues: QueuesResponse {
            imports_waiting: logged("the import queue", state.imports.depth().await),
            deliveries: logged("deliveries by subscription", deliveries(&state).await),
            callbacks_pending: logged("pending callbacks", state.callbacks.pending().await),
            sources_healthy: count("healthy"),
            sources_degraded: count("degraded"),
            sources_paused: count("paused"),
            jobs_queued: jobs(JobStatus::Queued),
            jobs_running: jobs(JobStatus::Running),
            jobs_paused: jobs(JobStatus::Paused),
            jobs_failed: jobs(JobStatus::Failed),
        },
        recent_errors: admin.log.recent_errors(),
    };
    Ok(HttpResponse::Ok().json(body))
}

/// The log filter in force.
#[utoipa::path(get, path = "/admin/log-level", tag = "admin",
    responses((status = 200, description = "The filter", body = LogLevelBody)))]
pub(crate) async fn get_log_level(state: web::Data<ApiState>) -> HttpResponse {
    HttpResponse::Ok().json(LogLevelBody {
        filter: state.admin.log.current(),
    })
}

/// Changes the log filter at once, without a restart (this instance only).
#[utoipa::path(put, path = "/admin/log-level", tag = "admin", request_body = LogLevelBody,
    responses((status = 200, description = "The filter now in force", body = LogLevelBody),
              (status = 400, description = "Not a filter, or a malformed body; `errors` says why", body = crate::error::Problem, content_type = "application/problem+json"),
              (status = 415, description = "Not JSON", body = crate::error::Problem, content_type = "application/problem+json")))]
pub(crate) async fn put_log_level(
    state: web::Data<ApiState>,
    body: web::Json<LogLevelBody>,
) -> Result<HttpResponse, ApiError> {
    let log = &state.admin.log;
    log.set(&body.filter)
        .map_err(|e| ApiError::field("filter", e))?;
    tracing::warn!(filter = %body.filter, "log filter changed");
    Ok(HttpResponse::Ok().json(LogLevelBody {
        filter: log.current(),
    }))
}

/// Every subscription with deliveries pending or dead, across datasets.
async fn deliveries(state: &ApiState) -> anyhow::Result<Vec<SubscriptionQueueResponse>> {
    let mut queues = Vec::new();
    for dataset in state.datasets.list().await? {
        for subscription in state.deliveries.list(&dataset.name).await? {
            let (subscription, counts) = state
                .deliveries
                .get(&dataset.name, &subscription.id)
                .await?;
            if counts.pending + counts.dead > 0 {
                queues.push(SubscriptionQueueResponse {
                    dataset: dataset.name.to_string(),
                    subscription: subscription.id,
                    status: subscription.status.as_str().into(),
                    pending: counts.pending,
                    dead: counts.dead,
                });
            }
        }
    }
    Ok(queues)
}

fn kind(text: &str) -> Result<WorkKind, ApiError> {
    WorkKind::parse(text).ok_or_else(|| {
        let kinds: Vec<_> = WorkKind::ALL.iter().map(|k| k.as_str()).collect();
        ApiError::NotFound(format!(
            "no kind of work named {text:?}; the kinds are {}",
            kinds.join(", ")
        ))
    })
}

async fn set_paused(state: &ApiState, text: &str, paused: bool) -> Result<HttpResponse, ApiError> {
    let kind = kind(text)?;
    let view = state
        .admin
        .workers
        .set_paused(kind, paused)
        .await
        .map_err(ApiError::unexpected)?;
    Ok(HttpResponse::Ok().json(kind_response(view)))
}

/// Pauses a kind of work on every instance (within a second on the others): its
/// workers finish what they hold and claim nothing more; queued work stays queued.
#[utoipa::path(post, path = "/admin/workers/{kind}/pause", tag = "admin",
    params(("kind" = String, Path, description = "imports, deliveries, callbacks, sources or jobs")),
    responses((status = 200, description = "The kind, now paused", body = WorkerKindResponse),
              (status = 404, description = "No such kind of work", body = crate::error::Problem, content_type = "application/problem+json")))]
pub(crate) async fn pause(
    state: web::Data<ApiState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    set_paused(&state, &path, true).await
}

/// Resumes a paused kind of work on every instance.
#[utoipa::path(post, path = "/admin/workers/{kind}/resume", tag = "admin",
    params(("kind" = String, Path, description = "imports, deliveries, callbacks, sources or jobs")),
    responses((status = 200, description = "The kind, now running", body = WorkerKindResponse),
              (status = 404, description = "No such kind of work", body = crate::error::Problem, content_type = "application/problem+json")))]
pub(crate) async fn resume(
    state: web::Data<ApiState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    set_paused(&state, &path, false).await
}

/// What a backup holds, read from the backup when it was verified.
#[derive(Debug, Serialize, ToSchema)]
pub struct BackupContentsResponse {
    /// Datasets.
    pub datasets: u64,
    /// Records (latest state) across datasets.
    pub records: u64,
    /// Imports received, whatever their status.
    pub imports: u64,
    /// When the newest import was received.
    pub last_import_at: Option<DateTime<Utc>>,
}

/// One backup kept.
#[derive(Debug, Serialize, ToSchema)]
pub struct BackupResponse {
    /// Its file name in `backup_dir`.
    #[schema(example = "intake-20261206T093000.000000Z.db")]
    pub name: String,
    /// When it was made.
    pub made_at: DateTime<Utc>,
    /// Its size in bytes.
    pub bytes: u64,
    /// Whether `PRAGMA integrity_check` passed on it (only verified backups are kept).
    pub verified: bool,
    /// What it holds.
    pub contents: BackupContentsResponse,
}

/// The backups kept, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct BackupListResponse {
    /// Newest first.
    pub items: Vec<BackupResponse>,
}

fn backup_response(b: Backup) -> BackupResponse {
    BackupResponse {
        name: b.name,
        made_at: b.made_at,
        bytes: b.bytes,
        verified: true,
        contents: BackupContentsResponse {
            datasets: b.contents.datasets,
            records: b.contents.records,
            imports: b.contents.imports,
            last_import_at: b.contents.last_import_at,
        },
    }
}

fn backups(state: &ApiState) -> Result<&dyn intake_domain::ports::Backups, ApiError> {
    state.admin.backups.as_deref().ok_or_else(|| {
        ApiError::Conflict(
            "the service backs up SQLite databases; back PostgreSQL up with `intake backup` \
             (pg_dump) or the database's own continuous archiving"
                .into(),
        )
    })
}

/// The backups kept in `backup_dir`, newest first (SQLite).
#[utoipa::path(get, path = "/admin/backups", tag = "admin",
    responses((status = 200, description = "The backups kept", body = BackupListResponse),
              (status = 409, description = "The database is not backed up by the service (PostgreSQL)", body = crate::error::Problem, content_type = "application/problem+json")))]
pub(crate) async fn list_backups(state: web::Data<ApiState>) -> Result<HttpResponse, ApiError> {
    let items = backups(&state)?
        .list()
        .await
        .map_err(ApiError::unexpected)?;
    Ok(HttpResponse::Ok().json(BackupListResponse {
        items: items.into_iter().map(backup_response).collect(),
    }))
}

/// Backs the database up now, online (imports go on), verified, the oldest beyond
/// `backup_keep` pruned (SQLite).
#[utoipa::path(post, path = "/admin/backups", tag = "admin",
    responses((status = 201, description = "The backup made", body = BackupResponse),
              (status = 409, description = "The database is not backed up by the service (PostgreSQL)", body = crate::error::Problem, content_type = "application/problem+json")))]
pub(crate) async fn make_backup(state: web::Data<ApiState>) -> Result<HttpResponse, ApiError> {
    let backup = backups(&state)?
        .make()
        .await
        .map_err(ApiError::unexpected)?;
    Ok(HttpResponse::Created().json(backup_response(backup)))
}
