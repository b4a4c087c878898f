//! Pull sources: external HTTP APIs polled on a schedule, each page an import (DESIGN
//! §9). Reading needs `read`; creating, changing, running, resetting and deleting need
//! `admin`. A source names its secret; the value never appears in an answer.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use intake_domain::sources::{Health, SourceApiError, SourcePatch, SourceSpec, SourceView};
use serde::Serialize;
use utoipa::ToSchema;

use super::dataset_name;
use crate::error::{FieldError, Problem};
use crate::policy::Policy;
use crate::{ApiError, ApiState};

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        super::resource_in(super::V1_DATASET, "/sources", Policy::Managed)
            .route(web::get().to(list_sources))
            .route(web::post().to(create_source)),
    )
    .service(
        super::resource_in(super::V1_DATASET, "/sources/{source}", Policy::Managed)
            .route(web::get().to(get_source))
            .route(web::patch().to(patch_source))
            .route(web::delete().to(delete_source)),
    )
    .service(
        super::resource_in(super::V1_DATASET, "/sources/{source}/run", Policy::Managed)
            .route(web::post().to(run_source)),
    )
    .service(
        super::resource_in(
            super::V1_DATASET,
            "/sources/{source}/reset",
            Policy::Managed,
        )
        .route(web::post().to(reset_source)),
    );
}

impl From<SourceApiError> for ApiError {
    fn from(e: SourceApiError) -> Self {
        match e {
            SourceApiError::UnknownDataset => Self::NotFound("no such dataset".into()),
            SourceApiError::NotFound => Self::NotFound("no such source in this dataset".into()),
            SourceApiError::Taken => {
                Self::Conflict("the dataset already has a source of this name".into())
            }
            SourceApiError::Invalid(issues) => Self::BadRequest {
                detail: format!(
                    "the source is invalid: {}",
                    issues
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
                errors: issues
                    .into_iter()
                    .map(|i| FieldError {
                        field: i.field,
                        message: i.message,
                    })
                    .collect(),
            },
            SourceApiError::Unexpected(e) => Self::unexpected(e),
        }
    }
}

/// How a JSON API's pages follow one another.
#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PaginationBody {
    /// A response field names the next cursor, sent back as a query parameter; absent
    /// or null ends the run.
    Cursor {
        /// The query parameter the cursor is sent as.
        #[schema(example = "cursor")]
        cursor_param: String,
        /// The dotted JSON path of the next cursor in a response.
        #[schema(example = "meta.next")]
        next_cursor: String,
    },
    /// Numbered pages from 1; an empty or short page ends the run.
    Page {
        /// The page number's query parameter.
        #[schema(example = "page")]
        page_param: String,
        /// The page size's query parameter, if the API takes one.
        size_param: Option<String>,
        /// Records per page (1 to 100000): a page with fewer is the last.
        size: u32,
    },
    /// The `Link: <…>; rel="next"` header (same host only).
    Link,
}

/// The header a source authenticates with: `prefix` followed by the secret's value.
#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
pub struct AuthBody {
    /// The header's name.
    #[schema(example = "Authorization")]
    pub header: String,
    /// Put before the secret.
    #[schema(example = "Bearer ")]
    pub prefix: Option<String>,
    /// The secret's name (1-64 of `A-Z`, `0-9`, `_`); its value is configured as
    /// `INTAKE_SECRET_<NAME>` or under `[secrets]`, never sent through the API.
    #[schema(example = "VENDOR_TOKEN")]
    pub secret: String,
}

/// Asking only for what changed.
#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
pub struct IncrementalBody {
    /// The query parameter sent with the highest value seen by the last complete run.
    #[schema(example = "updated_since")]
    pub param: String,
    /// The record field (dotted path within a record) whose highest value is kept.
    #[schema(example = "updated_at")]
    pub field: String,
}

/// A new source.
#[derive(Debug, ToSchema)]
#[allow(
    dead_code,
    reason = "the body's schema: the body is read as the domain's SourceSpec"
)]
pub struct SourceBody {
    /// Unique within the dataset (same rule as a dataset name).
    #[schema(example = "vendor", pattern = r"^[a-z][a-z0-9_-]{0,62}$")]
    pub name: String,
    /// `json_api` (pages of a JSON API) or `http_file` (one document in the contract's
    /// format, fetched with conditional requests).
    #[schema(example = "json_api")]
    pub kind: String,
    /// The first page, or the file: `http` or `https`, a public address unless the
    /// server allows private ones.
    #[schema(example = "https://api.vendor.example/v1/items")]
    pub url: String,
    /// How often a run starts: `30s`, `5m`, `1h` (at least 1s).
    #[schema(example = "5m")]
    pub schedule: String,
    /// The dotted path of the records' array in a page (`json_api`); the contract's
    /// `records` when absent.
    #[schema(example = "data.items")]
    pub records: Option<String>,
    /// How pages follow one another (`json_api`); one page per run when absent.
    pub pagination: Option<PaginationBody>,
    /// The header to authenticate with.
    pub auth: Option<AuthBody>,
    /// Asking only for what changed (`json_api`).
    pub incremental: Option<IncrementalBody>,
    /// Create it held.
    pub paused: Option<bool>,
}

/// Changes to a source; absent members stay, `null` clears one that may be cleared.
#[derive(Debug, ToSchema)]
#[allow(
    dead_code,
    reason = "the body's schema: the body is read as the domain's SourcePatch"
)]
pub struct SourcePatchBody {
    /// A new schedule.
    pub schedule: Option<String>,
    /// New pagination (`null`: one page per run). Starts the run in progress over.
    pub pagination: Option<PaginationBody>,
    /// A new records path (`null`: the contract's). Starts the run in progress over.
    pub records: Option<String>,
    /// A new URL. Starts the run in progress over.
    pub url: Option<String>,
    /// New authentication (`null`: none).
    pub auth: Option<AuthBody>,
    /// New incremental sync (`null`: none).
    pub incremental: Option<IncrementalBody>,
    /// `true` holds runs, `false` resumes them.
    pub paused: Option<bool>,
}

/// A source's health.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SourceStatusResponse {
    /// Fetching, and its pages pass the contract.
    Healthy,
    /// Its fetches keep failing, or records of its pages fail the contract: `reason`
    /// says which.
    Degraded,
    /// Held.
    Paused,
}

/// Where a source is.
#[derive(Debug, Serialize, ToSchema)]
pub struct SourceStateResponse {
    /// When a worker last took it.
    pub last_run_at: Option<DateTime<Utc>>,
    /// When a run last completed.
    pub last_success_at: Option<DateTime<Utc>>,
    /// When the next run (or retry) is due.
    pub next_run_at: DateTime<Utc>,
    /// Where the run in progress continues (`null`: the next run starts at the start).
    pub cursor: Option<String>,
    /// The incremental parameter's next value.
    pub watermark: Option<String>,
    /// Pages (or files) fetched and saved, in total.
    pub pages_fetched: u64,
    /// Records in them (`json_api`), in total.
    pub records_fetched: u64,
    /// Failed attempts since the last page saved.
    pub failures: u32,
    /// The last failure.
    pub last_error: Option<String>,
    /// The worker running it now, if any.
    pub running_on: Option<String>,
}

/// A source, its health and its state.
#[derive(Debug, Serialize, ToSchema)]
pub struct SourceResponse {
    /// Its dataset.
    pub dataset: String,
    /// Its name.
    pub name: String,
    /// `json_api` or `http_file`.
    pub kind: String,
    /// The first page, or the file.
    pub url: String,
    /// How often a run starts.
    pub schedule: String,
    /// Where the records are in a page (`null`: the contract's).
    pub records: Option<String>,
    /// How pages follow one another.
    pub pagination: Option<PaginationBody>,
    /// The header and the secret's name (never its value).
    pub auth: Option<AuthBody>,
    /// Asking only for what changed.
    pub incremental: Option<IncrementalBody>,
    /// Whether runs are held.
    pub paused: bool,
    /// Its health.
    pub status: SourceStatusResponse,
    /// Why it is degraded, and what to do.
    pub reason: Option<String>,
    /// Where it is.
    pub state: SourceStateResponse,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// A value of the domain as the matching API type (they serialize alike).
fn as_api<T: Serialize, U: serde::de::DeserializeOwned>(value: &T) -> Option<U> {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| serde_json::from_value(v).ok())
}

impl From<&SourceView> for SourceResponse {
    fn from(v: &SourceView) -> Self {
        let (spec, state) = (&v.source.spec, &v.source.state);
        Self {
            dataset: v.source.dataset.to_string(),
            name: spec.name.clone(),
            kind: spec.kind.as_str().to_owned(),
            url: spec.url.clone(),
            schedule: String::from(spec.schedule),
            records: spec.records.clone(),
            pagination: spec.pagination.as_ref().and_then(as_api),
            auth: spec.auth.as_ref().and_then(as_api),
            incremental: spec.incremental.as_ref().and_then(as_api),
            paused: spec.paused,
            status: match v.status {
                Health::Healthy => SourceStatusResponse::Healthy,
                Health::Degraded => SourceStatusResponse::Degraded,
                Health::Paused => SourceStatusResponse::Paused,
            },
            reason: v.reason.clone(),
            state: SourceStateResponse {
                last_run_at: state.last_run_at,
                last_success_at: state.last_success_at,
                next_run_at: state.next_run_at,
                cursor: state.cursor.clone(),
                watermark: state.watermark.clone(),
                pages_fetched: state.pages,
                records_fetched: state.records,
                failures: state.failures,
                last_error: state.last_error.clone(),
                running_on: state.held_by.clone(),
            },
            created_at: v.source.created_at,
        }
    }
}

/// A dataset's sources.
#[derive(Debug, Serialize, ToSchema)]
pub struct SourceListResponse {
    /// By name.
    pub sources: Vec<SourceResponse>,
}

/// A body read as the domain type, each mistake a field error.
pub(crate) fn body<T: serde::de::DeserializeOwned>(json: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(json).map_err(|e| {
        let field = e.path().to_string();
        let message = e.into_inner().to_string();
        if field == "." {
            ApiError::BadRequest {
                detail: message,
                errors: Vec::new(),
            }
        } else {
            ApiError::field(field, message)
        }
    })
}

/// Declare a source: it runs at once, then at its schedule. Its secret is named, and
/// its value configured on the server (`INTAKE_SECRET_<NAME>`).
#[utoipa::path(post, path = "/v1/datasets/{dataset}/sources", tag = "sources",
    params(("dataset" = String, Path, pattern = r"^[a-z][a-z0-9_-]{0,62}$", description = "The dataset's name")),
    request_body = SourceBody,
    responses(
        (status = 201, description = "Created, due at once", body = SourceResponse,
         headers(("Location" = String, description = "The source's URL"))),
        (status = 400, description = "Malformed body or an invalid source (each field at fault named): a refused URL, an unconfigured secret, a kind the contract's format cannot read", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such dataset", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The dataset has a source of this name", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn create_source(
    state: web::Data<ApiState>,
    path: web::Path<String>,
    json: web::Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let name = dataset_name(&path)?;
    let spec: SourceSpec = body(json.into_inner())?;
    let created = state.sources.create(&name, spec).await?;
    Ok(HttpResponse::Created()
        .insert_header((
            header::LOCATION,
            format!("/v1/datasets/{name}/sources/{}", created.source.spec.name),
        ))
        .json(SourceResponse::from(&created)))
}

/// List a dataset's sources with their health.
#[utoipa::path(get, path = "/v1/datasets/{dataset}/sources", tag = "sources",
    params(("dataset" = String, Path, pattern = r"^[a-z][a-z0-9_-]{0,62}$", description = "The dataset's name")),
    responses(
        (status = 200, description = "The sources, by name", body = SourceListResponse),
        (status = 400, description = "Malformed name", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such dataset", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list_sources(
    state: web::Data<ApiState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = dataset_name(&path)?;
    let sources = state.sources.list(&name).await?;
    Ok(HttpResponse::Ok().json(SourceListResponse {
        sources: sources.iter().map(SourceResponse::from).collect(),
    }))
}

/// Read a source: its declaration, health (with the reason when degraded) and state.
#[utoipa::path(get, path = "/v1/datasets/{dataset}/sources/{source}", tag = "sources",
    params(("dataset" = String, Path, pattern = r"^[a-z][a-z0-9_-]{0,62}$", description = "The dataset's name"),
           ("source" = String, Path, description = "The source's name")),
    responses(
        (status = 200, description = "The source", body = SourceResponse),
        (status = 400, description = "Malformed name", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such source in this dataset", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn get_source(
    state: web::Data<ApiState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (name, source) = path.into_inner();
    let view = state.sources.get(&dataset_name(&name)?, &source).await?;
    Ok(HttpResponse::Ok().json(SourceResponse::from(&view)))
}

/// Change a source: schedule, pagination, records path, URL, auth, incremental sync,
/// paused. A new URL, records path or pagination starts the run in progress over.
#[utoipa::path(patch, path = "/v1/datasets/{dataset}/sources/{source}", tag = "sources",
    params(("dataset" = String, Path, pattern = r"^[a-z][a-z0-9_-]{0,62}$", description = "The dataset's name"),
           ("source" = String, Path, description = "The source's name")),
    request_body = SourcePatchBody,
    responses(
        (status = 200, description = "Changed", body = SourceResponse),
        (status = 400, description = "Malformed body or an invalid result", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such source in this dataset", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn patch_source(
    state: web::Data<ApiState>,
    path: web::Path<(String, String)>,
    json: web::Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let (name, source) = path.into_inner();
    let name = dataset_name(&name)?;
    let patch: SourcePatch = body(json.into_inner())?;
    let view = state.sources.patch(&name, &source, &patch).await?;
    Ok(HttpResponse::Ok().json(SourceResponse::from(&view)))
}

/// Delete a source; the imports it made stay.
#[utoipa::path(delete, path = "/v1/datasets/{dataset}/sources/{source}", tag = "sources",
    params(("dataset" = String, Path, pattern = r"^[a-z][a-z0-9_-]{0,62}$", description = "The dataset's name"),
           ("source" = String, Path, description = "The source's name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Malformed name", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such source in this dataset", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn delete_source(
    state: web::Data<ApiState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (name, source) = path.into_inner();
    state.sources.delete(&dataset_name(&name)?, &source).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Run a source now (a paused one stays held), continuing where it is.
#[utoipa::path(post, path = "/v1/datasets/{dataset}/sources/{source}/run", tag = "sources",
    params(("dataset" = String, Path, pattern = r"^[a-z][a-z0-9_-]{0,62}$", description = "The dataset's name"),
           ("source" = String, Path, description = "The source's name")),
    responses(
        (status = 202, description = "Due now", body = SourceResponse),
        (status = 400, description = "Malformed name", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such source in this dataset", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn run_source(
    state: web::Data<ApiState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    run(&state, path.into_inner(), false).await
}

/// Makes the source due now, reset first when asked: `202` with it.
async fn run(
    state: &ApiState,
    (name, source): (String, String),
    reset: bool,
) -> Result<HttpResponse, ApiError> {
    let name = dataset_name(&name)?;
    let view = state.sources.run_now(&name, &source, reset).await?;
    Ok(HttpResponse::Accepted().json(SourceResponse::from(&view)))
}

/// Start a source again from the beginning (no cursor, watermark or validators), now.
#[utoipa::path(post, path = "/v1/datasets/{dataset}/sources/{source}/reset", tag = "sources",
    params(("dataset" = String, Path, pattern = r"^[a-z][a-z0-9_-]{0,62}$", description = "The dataset's name"),
           ("source" = String, Path, description = "The source's name")),
    responses(
        (status = 202, description = "Reset and due now", body = SourceResponse),
        (status = 400, description = "Malformed name", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such source in this dataset", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn reset_source(
    state: web::Data<ApiState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    run(&state, path.into_inner(), true).await
}
