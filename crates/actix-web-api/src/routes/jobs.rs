//! Long-running jobs (DESIGN §10, ADR 33) and the rollup series they keep. Reading needs
//! `read`; creating and steering a job need `admin`.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use intake_domain::jobs::{JobApiError, JobSpec};
use intake_domain::ports::{JobAction, JobStatus, JobView, RollupPoint};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::dataset_name;
use super::sources::body;
use crate::error::Problem;
use crate::policy::Policy;
use crate::{ApiError, ApiState};

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        super::resource_in(super::V1_DATASET, "/jobs", Policy::Managed)
            .route(web::get().to(list_jobs))
            .route(web::post().to(create_job)),
    )
    .service(
        super::resource_in(super::V1_DATASET, "/jobs/{job}", Policy::Managed)
            .route(web::get().to(get_job)),
    )
    .service(
        super::resource_in(super::V1_DATASET, "/jobs/{job}/pause", Policy::Managed)
            .route(web::post().to(pause_job)),
    )
    .service(
        super::resource_in(super::V1_DATASET, "/jobs/{job}/resume", Policy::Managed)
            .route(web::post().to(resume_job)),
    )
    .service(
        super::resource_in(super::V1_DATASET, "/jobs/{job}/cancel", Policy::Managed)
            .route(web::post().to(cancel_job)),
    )
    .service(
        super::resource_in(super::V1_DATASET, "/jobs/{job}/restart", Policy::Managed)
            .route(web::post().to(restart_job)),
    )
    .service(
        super::resource_in(super::V1_DATASET, "/rollups/{rollup}", Policy::Api)
            .route(web::get().to(get_rollup)),
    );
}

impl From<JobApiError> for ApiError {
    fn from(e: JobApiError) -> Self {
        match e {
            JobApiError::Dataset(e) => e.into(),
            JobApiError::NotFound => Self::NotFound("no such job in this dataset".into()),
            JobApiError::Invalid { field, message } => Self::field(field, message),
            JobApiError::Conflict(why) => Self::Conflict(why),
            JobApiError::Unexpected(e) => Self::unexpected(e),
        }
    }
}

/// A new job, by its `kind`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[allow(
    dead_code,
    reason = "the body's schema: the body is read as the domain's JobSpec"
)]
pub enum JobBody {
    /// A measure's count, sum, mean and standard deviation per group of a dimension
    /// after every import, from the first, kept as a series at `…/rollups/{name}`.
    Rollup(RollupJobBody),
    /// Every stored import of the dataset, in arrival order, through one contract
    /// version: the latest state, history and conflicts are cleared and rebuilt as
    /// if the imports had arrived under it, without events or callback timers.
    Reprocess(ReprocessJobBody),
    /// Every page of one of the dataset's pull sources from its first, each saved as
    /// an import (one already received is not saved again), whatever the source's own
    /// runs have reached; the source's schedule, cursor and watermark are left alone.
    Backfill(BackfillJobBody),
}

/// A `rollup` job.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(
    dead_code,
    reason = "the body's schema: the body is read as the domain's JobSpec"
)]
pub struct RollupJobBody {
    /// The rollup's name (1 to 64 of `A-Z a-z 0-9 _ -`).
    #[schema(example = "mean_by_test")]
    pub name: String,
    /// The measure (of the current contract).
    #[schema(example = "percent")]
    pub measure: String,
    /// The dimension (of the current contract).
    #[schema(example = "test_id")]
    pub group_by: String,
    /// Keep the series going: after reaching the last import, run again this long
    /// later (`"30s"`, `"5m"`, `"1h"`; 1s to 8784h), adding the imports committed
    /// meanwhile. Without it the job completes at the last import.
    #[schema(example = "5m")]
    pub every: Option<String>,
}

/// A `reprocess` job.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(
    dead_code,
    reason = "the body's schema: the body is read as the domain's JobSpec"
)]
pub struct ReprocessJobBody {
    /// The contract version (of the dataset) every import is processed with.
    #[schema(example = 2, minimum = 1)]
    pub contract_version: u32,
}

/// A `backfill` job.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(
    dead_code,
    reason = "the body's schema: the body is read as the domain's JobSpec"
)]
pub struct BackfillJobBody {
    /// The source's name (one of the dataset's).
    #[schema(example = "vendor")]
    pub source: String,
    /// Sent as the source's incremental parameter (only for a source that has one):
    /// only what changed since then. Without it, everything the source serves.
    #[schema(example = "2026-01-01T00:00:00Z")]
    pub since: Option<String>,
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStatusResponse {
    /// Waiting for a worker.
    Queued,
    /// A worker holds it.
    Running,
    /// Paused by an operator.
    Paused,
    /// Cancelled by an operator.
    Cancelled,
    /// Done.
    Completed,
    /// Given up: `error` says why.
    Failed,
}

impl From<JobStatus> for JobStatusResponse {
    fn from(s: JobStatus) -> Self {
        match s {
            JobStatus::Queued => Self::Queued,
            JobStatus::Running => Self::Running,
            JobStatus::Paused => Self::Paused,
            JobStatus::Cancelled => Self::Cancelled,
            JobStatus::Completed => Self::Completed,
            JobStatus::Failed => Self::Failed,
        }
    }
}

/// How far a job is.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobProgressResponse {
    /// Items done (a rollup's items are changes of records, in commit order; a
    /// reprocess's are imports, in arrival order; a backfill's are pages).
    pub done: u64,
    /// Items in all, when known (it grows while imports arrive).
    pub total: Option<u64>,
    /// Items per second since its current run started, while running.
    pub rate: Option<f64>,
}

/// A kept checkpoint: `POST …/restart` with its `n` goes back to it.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckpointResponse {
    /// Its number.
    pub n: u32,
    /// Items done when it was saved.
    pub done: u64,
    /// When it was saved.
    pub at: DateTime<Utc>,
}

/// A job.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobResponse {
    /// Its id.
    pub id: String,
    /// Its dataset.
    pub dataset: String,
    /// Its kind.
    pub kind: String,
    /// What it was asked to do (the body that created it, without `kind`).
    #[schema(value_type = Object)]
    pub params: serde_json::Value,
    /// Where it is.
    pub status: JobStatusResponse,
    /// How far it is.
    pub progress: JobProgressResponse,
    /// Why it failed, or its last failed attempt's error.
    pub error: Option<String>,
    /// The worker holding it now, if any.
    pub running_on: Option<String>,
    /// Times a worker took it since it last made progress (5 failed attempts in a row
    /// fail it).
    pub attempts: u32,
    /// The checkpoints kept, oldest first.
    pub checkpoints: Vec<CheckpointResponse>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When its current (or last) run started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// When it completed, failed or was cancelled.
    pub finished_at: Option<DateTime<Utc>>,
    /// When a queued job runs next (a retry, or a repeating rollup's next run).
    pub next_run_at: Option<DateTime<Utc>>,
}

impl From<&JobView> for JobResponse {
    fn from(v: &JobView) -> Self {
        #[allow(clippy::cast_precision_loss)] // a rate to show
        let rate = match (v.status, v.started_at) {
            (JobStatus::Running, Some(started)) => {
                let seconds = (v.updated_at - started).as_seconds_f64();
                (seconds > 0.0).then(|| v.done.saturating_sub(v.started_done) as f64 / seconds)
            }
            _ => None,
        };
        Self {
            id: v.id.clone(),
            dataset: v.dataset.to_string(),
            kind: v.kind.clone(),
            params: v.params.clone(),
            status: v.status.into(),
            progress: JobProgressResponse {
                done: v.done,
                total: v.total,
                rate,
            },
            error: v.error.clone(),
            running_on: v.held_by.clone(),
            attempts: v.attempts,
            checkpoints: v
                .checkpoints
                .iter()
                .map(|c| CheckpointResponse {
                    n: c.n,
                    done: c.done,
                    at: c.at,
                })
                .collect(),
            created_at: v.created_at,
            started_at: v.started_at,
            updated_at: v.updated_at,
            finished_at: v.finished_at,
            next_run_at: (v.status == JobStatus::Queued).then_some(v.due_at),
        }
    }
}

/// A dataset's jobs.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobListResponse {
    /// Newest first.
    pub jobs: Vec<JobResponse>,
}

/// Start a job: it is queued, and a job worker of any instance takes it. A `rollup`
/// reads the dataset's history from the first import, saving a checkpoint every
/// `job_checkpoint_items` changes or `job_checkpoint_every`, and completes at its end
/// (or, with `every`, runs again that long later for the imports committed meanwhile).
/// A `reprocess` clears the dataset's latest state, history and conflicts (once no
/// import of it is being processed), queues its rollups again from the beginning,
/// then processes every import that had been processed, one at a time in arrival
/// order, through `contract_version`, without events or callback timers. While it has
/// not ended, the dataset's other imports wait for it; a cancelled one leaves the
/// imports it had not reached to the import workers. A `backfill` fetches every page
/// of a source from its first, saving each as an import, and keeps the pagination
/// cursor in its checkpoints.
#[utoipa::path(post, path = "/v1/datasets/{dataset}/jobs", tag = "jobs",
    params(("dataset" = String, Path, pattern = r"^[a-z][a-z0-9_-]{0,62}$", description = "The dataset's name")),
    request_body = JobBody,
    responses(
        (status = 201, description = "Created and queued", body = JobResponse,
         headers(("Location" = String, description = "The job's URL"))),
        (status = 400, description = "Malformed body, an unknown kind, a measure or dimension the current contract lacks, a contract version the dataset does not have, or a source it does not have", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such dataset", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A job of the dataset keeps a rollup of this name (restart it, or choose another name), or a reprocess of the dataset has not ended", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn create_job(
    state: web::Data<ApiState>,
    path: web::Path<String>,
    json: web::Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let name = dataset_name(&path)?;
    let spec: JobSpec = body(json.into_inner())?;
    let job = state.jobs.create(&name, spec).await?;
    Ok(HttpResponse::Created()
        .insert_header((
            header::LOCATION,
            format!("/v1/datasets/{name}/jobs/{}", job.id),
        ))
        .json(JobResponse::from(&job)))
}

/// List a dataset's jobs, newest first, with their progress.
#[utoipa::path(get, path = "/v1/datasets/{dataset}/jobs", tag = "jobs",
    params(("dataset" = String, Path, pattern = r"^[a-z][a-z0-9_-]{0,62}$", description = "The dataset's name")),
    responses(
        (status = 200, description = "The jobs", body = JobListResponse),
        (status = 400, description = "Malformed name", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such dataset", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list_jobs(
    state: web::Data<ApiState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let jobs = state.jobs.list(&dataset_name(&path)?).await?;
    Ok(HttpResponse::Ok().json(JobListResponse {
        jobs: jobs.iter().map(JobResponse::from).collect(),
    }))
}

/// Read a job: its status, progress (items done of the total, and a rate) and the
/// checkpoints it keeps.
#[utoipa::path(get, path = "/v1/datasets/{dataset}/jobs/{job}", tag = "jobs",
    params(("dataset" = String, Path, pattern = r"^[a-z][a-z0-9_-]{0,62}$", description = "The dataset's name"),
           ("job" = String, Path, description = "The job's id")),
    responses(
        (status = 200, description = "The job", body = JobResponse),
        (status = 400, description = "Malformed name", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such job in this dataset", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn get_job(
    state: web::Data<ApiState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (name, job) = path.into_inner();
    let view = state.jobs.get(&dataset_name(&name)?, &job).await?;
    Ok(HttpResponse::Ok().json(JobResponse::from(&view)))
}

async fn act(
    state: &ApiState,
    (name, job): (String, String),
    action: JobAction,
) -> Result<HttpResponse, ApiError> {
    let view = state.jobs.act(&dataset_name(&name)?, &job, action).await?;
    Ok(HttpResponse::Ok().json(JobResponse::from(&view)))
}

/// Pause a job: a worker running it stops at its next save (within seconds), keeping
/// its checkpoints; nothing takes it until it is resumed.
#[utoipa::path(post, path = "/v1/datasets/{dataset}/jobs/{job}/pause", tag = "jobs",
    params(("dataset" = String, Path, pattern = r"^[a-z][a-z0-9_-]{0,62}$", description = "The dataset's name"),
           ("job" = String, Path, description = "The job's id")),
    responses(
        (status = 200, description = "Paused (or already paused)", body = JobResponse),
        (status = 400, description = "Malformed name", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such job in this dataset", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The job has ended (completed, failed or cancelled)", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn pause_job(
    state: web::Data<ApiState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    act(&state, path.into_inner(), JobAction::Pause).await
}

/// Resume a paused job from its latest checkpoint.
#[utoipa::path(post, path = "/v1/datasets/{dataset}/jobs/{job}/resume", tag = "jobs",
    params(("dataset" = String, Path, pattern = r"^[a-z][a-z0-9_-]{0,62}$", description = "The dataset's name"),
           ("job" = String, Path, description = "The job's id")),
    responses(
        (status = 200, description = "Queued again (or already queued)", body = JobResponse),
        (status = 400, description = "Malformed name", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such job in this dataset", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The job is not paused (a running job needs no resume; an ended one needs a restart)", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn resume_job(
    state: web::Data<ApiState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    act(&state, path.into_inner(), JobAction::Resume).await
}

/// Cancel a job: a worker running it stops at its next save; it never runs again
/// unless restarted.
#[utoipa::path(post, path = "/v1/datasets/{dataset}/jobs/{job}/cancel", tag = "jobs",
    params(("dataset" = String, Path, pattern = r"^[a-z][a-z0-9_-]{0,62}$", description = "The dataset's name"),
           ("job" = String, Path, description = "The job's id")),
    responses(
        (status = 200, description = "Cancelled (or already cancelled)", body = JobResponse),
        (status = 400, description = "Malformed name", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such job in this dataset", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The job has completed or failed", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn cancel_job(
    state: web::Data<ApiState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    act(&state, path.into_inner(), JobAction::Cancel).await
}

/// Which checkpoint to go back to.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestartBody {
    /// A kept checkpoint's `n`, or 0 for the beginning.
    pub checkpoint: u32,
}

/// Go back to a kept checkpoint (0: the beginning): later checkpoints are dropped and
/// the job is queued to resume from there, whatever its status. Refused while a
/// worker holds it: pause it first and wait for it to stop. A `reprocess` goes back
/// to the beginning only (it clears the dataset again).
#[utoipa::path(post, path = "/v1/datasets/{dataset}/jobs/{job}/restart", tag = "jobs",
    params(("dataset" = String, Path, pattern = r"^[a-z][a-z0-9_-]{0,62}$", description = "The dataset's name"),
           ("job" = String, Path, description = "The job's id")),
    request_body = RestartBody,
    responses(
        (status = 200, description = "Queued from the checkpoint", body = JobResponse),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such job in this dataset, or no such checkpoint kept", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A worker holds the job, or a reprocess asked to go back to a checkpoint other than 0 (it restarts from the beginning only)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn restart_job(
    state: web::Data<ApiState>,
    path: web::Path<(String, String)>,
    json: web::Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let (name, job) = path.into_inner();
    let restart: RestartBody = body(json.into_inner())?;
    let view = state
        .jobs
        .restart(&dataset_name(&name)?, &job, restart.checkpoint)
        .await
        .map_err(|e| match e {
            JobApiError::NotFound => ApiError::NotFound(
                "no such job in this dataset, or it keeps no such checkpoint".into(),
            ),
            e => e.into(),
        })?;
    Ok(HttpResponse::Ok().json(JobResponse::from(&view)))
}

/// Which part of a series to read.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RollupQuery {
    /// Points of imports committed at or after this time (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Points of imports committed before this time (RFC 3339).
    pub to: Option<DateTime<Utc>>,
    /// At most this many points, 1 to 10000 (default 1000).
    pub limit: Option<u32>,
}

/// A point of a series: a group's aggregate as one import left it.
#[derive(Debug, Serialize, ToSchema)]
pub struct RollupPointResponse {
    /// When the import committed.
    pub at: DateTime<Utc>,
    /// The import.
    pub import: String,
    /// The group (the dimension's value).
    pub group: String,
    /// Records in the group.
    pub count: u64,
    /// Sum of the measure.
    pub sum: f64,
    /// Mean (`null` for a group left empty).
    pub mean: Option<f64>,
    /// Population standard deviation (`null` for a group left empty).
    pub stddev: Option<f64>,
}

impl From<&RollupPoint> for RollupPointResponse {
    fn from(p: &RollupPoint) -> Self {
        Self {
            at: p.at,
            import: p.import.to_string(),
            group: p.group.clone(),
            count: p.count,
            sum: p.sum,
            mean: p.mean,
            stddev: p.stddev,
        }
    }
}

/// A rollup's series.
#[derive(Debug, Serialize, ToSchema)]
pub struct RollupResponse {
    /// Its name.
    pub name: String,
    /// In commit order: after each import, a point for each group it changed.
    pub points: Vec<RollupPointResponse>,
}

/// Read a rollup's series (kept by a `rollup` job): after each import, each group it
/// changed with its count, sum, mean and standard deviation, so a client can plot how
/// a group's mean moved over time.
#[utoipa::path(get, path = "/v1/datasets/{dataset}/rollups/{rollup}", tag = "jobs",
    params(("dataset" = String, Path, pattern = r"^[a-z][a-z0-9_-]{0,62}$", description = "The dataset's name"),
           ("rollup" = String, Path, description = "The rollup's name"),
           RollupQuery),
    responses(
        (status = 200, description = "The series", body = RollupResponse),
        (status = 400, description = "Malformed name, time or limit", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such dataset, or no rollup job of this name", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn get_rollup(
    state: web::Data<ApiState>,
    path: web::Path<(String, String)>,
    query: web::Query<RollupQuery>,
) -> Result<HttpResponse, ApiError> {
    let (name, rollup) = path.into_inner();
    let limit = query.limit.unwrap_or(1000);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::field("limit", "1 to 10000"));
    }
    let points = state
        .jobs
        .series(&dataset_name(&name)?, &rollup, query.from, query.to, limit)
        .await
        .map_err(|e| match e {
            JobApiError::NotFound => {
                ApiError::NotFound("no rollup job of this name in this dataset".into())
            }
            e => e.into(),
        })?;
    Ok(HttpResponse::Ok().json(RollupResponse {
        name: rollup,
        points: points.iter().map(RollupPointResponse::from).collect(),
    }))
}
