//! The Markr compatibility routes (DESIGN §11): the scanning machines' `POST /import`
//! of `text/xml+markr` documents and `GET /results/{test_id}/aggregate`, backed by the
//! `exam-results` dataset, which is created from `examples/contracts/exam-results.json`
//! on first use.

use std::collections::BTreeMap;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use intake_domain::analytics::Aggregate;
use intake_domain::datasets::DatasetError;
use intake_domain::ports::{AnalyticsQuery, ImportSummary};
use intake_domain::{Contract, DatasetName, ImportStatus, RecordError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::dto::{ImportResponse, MarkrAggregateResponse, MarkrImportResponse};
use crate::error::{FieldError, Problem};
use crate::policy::Policy;
use crate::{ApiError, ApiState};

use super::{json_ok, to_json};

/// The dataset behind the routes.
const DATASET: &str = "exam-results";
/// Its contract when the routes create it.
const CONTRACT: &str = include_str!("../../../../examples/contracts/exam-results.json");
/// The one media type the scanners send.
const MEDIA_TYPE: &str = "text/xml+markr";

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource("/import", Policy::Markr).route(web::post().to(import)))
        .service(
            super::resource("/results/{test_id}/aggregate", Policy::Markr)
                .route(web::get().to(results_aggregate)),
        );
}

/// A rejected document: a problem document with the Markr `error` member.
#[derive(Debug, Serialize, ToSchema)]
pub struct MarkrProblem {
    /// The problem.
    #[serde(flatten)]
    pub problem: Problem,
    /// The first error: the result (1-based, in document order) and field at fault.
    #[schema(example = "result 3: student_number: a required field is missing")]
    pub error: String,
}

fn dataset() -> Result<DatasetName, ApiError> {
    DatasetName::parse(DATASET).map_err(|e| ApiError::Internal(anyhow::Error::new(e)))
}

/// The dataset, created with the exam-results contract when it does not exist.
async fn ensure_dataset(state: &ApiState) -> Result<DatasetName, ApiError> {
    let name = dataset()?;
    // Not `get`: it counts the dataset's records, on every import.
    match state.datasets.dataset(&name).await {
        Ok(_) => return Ok(name),
        Err(DatasetError::UnknownDataset) => {}
        Err(e) => return Err(e.into()),
    }
    let contract = Contract::parse(CONTRACT).map_err(|e| ApiError::Internal(e.into()))?;
    match state.datasets.create(&name, &contract).await {
        // Another request created it meanwhile.
        Ok(_) | Err(DatasetError::AlreadyExists) => Ok(name),
        // An operator deleted it and kept its documents (ADR 37): until they purge
        // them, the route cannot make the dataset again.
        Err(DatasetError::Deleted) => Err(ApiError::Conflict(format!(
            "the {DATASET} dataset was deleted and its documents kept; \
             DELETE /v1/datasets/{DATASET}?purge=true lets this route create it again"
        ))),
        Err(e) => Err(e.into()),
    }
}

fn describe(e: &RecordError) -> String {
    let record = e
        .location
        .record
        .map_or_else(|| "the document".to_owned(), |r| format!("result {r}"));
    match &e.field {
        Some(field) => format!("{record}: {field}: {}", e.message),
        None => format!("{record}: {}", e.message),
    }
}

/// The 400 answer of a rejected import, naming each result and field at fault.
fn rejected(import: &ImportSummary) -> HttpResponse {
    let errors = import.report.as_ref().map_or(&[][..], |r| &r.errors[..]);
    let error = errors
        .first()
        .map_or_else(|| "the document was rejected".to_owned(), describe);
    let fields = errors
        .iter()
        .map(|e| FieldError {
            field: e.location.record.map_or_else(
                || "document".to_owned(),
                |r| match &e.field {
                    Some(f) => format!("result[{r}].{f}"),
                    None => format!("result[{r}]"),
                },
            ),
            message: e.message.clone(),
        })
        .collect();
    let problem = ApiError::BadRequest {
        detail: format!("the document was rejected whole, nothing was stored: {error}"),
        errors: fields,
    }
    .problem();
    HttpResponse::BadRequest()
        .content_type("application/problem+json")
        .json(MarkrProblem { problem, error })
}

/// Import a Markr document (`Content-Type: text/xml+markr`) synchronously into the
/// `exam-results` dataset. A result with a missing or invalid required field, or a
/// root element other than `mcq-test-results`, rejects the whole document: nothing
/// from it is stored. Rescans keep the highest obtained and available marks.
#[utoipa::path(post, path = "/import", tag = "markr",
    request_body(description = "An `mcq-test-results` document", content(("text/xml+markr"))),
    responses(
        (status = 200, description = "Imported (or the same document was imported before)", body = MarkrImportResponse),
        (status = 202, description = "Stored and queued, but processing outlasted the wait: poll `Location`", body = ImportResponse,
         headers(("Location" = String, description = "Where to poll the import"))),
        (status = 400, description = "The document was rejected whole", body = MarkrProblem, content_type = "application/problem+json"),
        (status = 409, description = "The exam-results dataset was deleted and its documents kept: purging them lets the route create it again", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Document too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not `text/xml+markr`", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn import(
    state: web::Data<ApiState>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    if !essence.eq_ignore_ascii_case(MEDIA_TYPE) {
        return Err(ApiError::UnsupportedMediaType(format!(
            "send the document as {MEDIA_TYPE}"
        )));
    }
    super::imports::check_length(&req, state.imports.settings().max_document_bytes)?;
    let name = ensure_dataset(&state).await?;
    let received = state
        .imports
        .receive(&name, content_type, "markr", None, body)
        .await?;
    let mut import = received.import;
    if !import.status.is_finished() {
        import = state
            .imports
            .wait(&name, &import.id, state.settings.max_wait)
            .await?;
    }
    match import.status {
        ImportStatus::Completed => Ok(HttpResponse::Ok().json(MarkrImportResponse {
            imported: import.report.as_ref().map_or(0, |r| r.seen),
        })),
        ImportStatus::Failed => Ok(rejected(&import)),
        ImportStatus::Received | ImportStatus::Processing => {
            let builder = HttpResponse::Accepted();
            Ok(super::imports::with_location(builder, &import))
        }
    }
}

/// A percentage as the Markr service's clients read it: to 2 decimals, half away
/// from zero (`55.00000000000001` is `55.0`, `9.9216…` is `9.92`). The v1 and v2
/// aggregates keep full precision.
fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The statistics of one test's percentage scores: mean, population standard
/// deviation, min, max, quartiles (linear interpolation) and count, each to 2
/// decimals (the v1 and v2 aggregates keep full precision).
#[utoipa::path(get, path = "/results/{test_id}/aggregate", tag = "markr",
    params(("test_id" = String, Path, description = "The test's id", example = "9863")),
    responses(
        (status = 200, description = "The test's aggregate", body = MarkrAggregateResponse),
        (status = 404, description = "No results for this test, or none with available marks", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn results_aggregate(
    state: web::Data<ApiState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let test_id = path.into_inner();
    let unknown = || ApiError::NotFound(format!("no results for test {test_id:?}"));
    let question = AnalyticsQuery {
        dataset: dataset()?,
        measure: "percent".into(),
        group_by: None,
        filters: BTreeMap::from([("test_id".to_owned(), test_id.clone())]),
        percentiles: Aggregate::QUARTILES.to_vec(),
    };
    if let Err(DatasetError::UnknownDataset) = state.datasets.dataset(&question.dataset).await {
        return Err(unknown());
    }
    let render = || async {
        let groups = match state.datasets.aggregate(&question).await {
            Err(DatasetError::UnknownDataset) => return Err(unknown()),
            other => other?,
        };
        let Some(group) = groups.first() else {
            return Err(unknown());
        };
        let Some(a) = group.aggregate.as_ref() else {
            return Err(ApiError::NotFound(format!(
                "test {test_id:?} has {} results, none with available marks (no percentage)",
                group.excluded
            )));
        };
        let p = |f: f64| round2(a.percentile(f).unwrap_or(a.mean));
        to_json(&MarkrAggregateResponse {
            mean: round2(a.mean),
            stddev: round2(a.stddev),
            min: round2(a.min),
            max: round2(a.max),
            p25: p(0.25),
            p50: p(0.5),
            p75: p(0.75),
            count: a.count,
        })
    };
    let rendered = state
        .datasets
        .rendered(&question.dataset, "markr.aggregate", &question, render);
    Ok(json_ok(rendered.await?))
}
