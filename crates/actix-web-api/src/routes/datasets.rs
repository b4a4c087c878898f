//! Datasets and their contracts, and dry runs of draft contracts.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use intake_domain::{Contract, ContractVersion};
use serde_json::Value;

use super::{dataset_name, import_id};
use crate::dto::{
    ContractListResponse, ContractResponse, DatasetBody, DatasetListResponse, DatasetResponse,
    DeleteDatasetQuery, DeletedDatasetResponse, DryRunBody, DryRunResponse, RecordResponse,
};
use crate::error::Problem;
use crate::policy::Policy;
use crate::{ApiError, ApiState, dto::ConflictResponse};

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        super::resource("/v1/datasets", Policy::Api)
            .route(web::get().to(list_datasets))
            .route(web::post().to(create_dataset)),
    );
}

/// The routes of one dataset, below [`super::V1_DATASET`].
pub(crate) fn configure_one(cfg: &mut web::ServiceConfig) {
    let resource = |path| super::resource_in(super::V1_DATASET, path, Policy::Api);
    // Reading a dataset needs `read`; deleting it, `admin`.
    cfg.service(
        super::resource_in(super::V1_DATASET, "", Policy::Managed)
            .route(web::get().to(get_dataset))
            .route(web::delete().to(delete_dataset)),
    )
    .service(
        resource("/contracts")
            .route(web::get().to(list_contracts))
            .route(web::post().to(publish_contract)),
    )
    .service(resource("/contracts/dry-run").route(web::post().to(dry_run)))
    .service(resource("/contracts/{version}").route(web::get().to(get_contract)));
}

/// A contract from the JSON of a request body.
fn contract(value: &Value) -> Result<Contract, ApiError> {
    Ok(Contract::parse(&value.to_string())?)
}

/// Create a dataset with its first contract.
#[utoipa::path(post, path = "/v1/datasets", tag = "datasets", request_body = DatasetBody,
    responses(
        (status = 201, description = "Created", body = DatasetResponse,
         headers(("Location" = String, description = "The dataset's URL"))),
        (status = 400, description = "Malformed body or name", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The name is taken (also by a deleted dataset whose documents were not purged)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid contract", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn create_dataset(
    state: web::Data<ApiState>,
    body: web::Json<DatasetBody>,
) -> Result<HttpResponse, ApiError> {
    let name = intake_domain::DatasetName::parse(body.name.as_str())
        .map_err(|e| ApiError::field("name", e.to_string()))?;
    let contract = contract(&body.contract)?;
    let dataset = state.datasets.create(&name, &contract).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/v1/datasets/{name}")))
        .json(DatasetResponse::new(&dataset, Some(0))))
}

/// List every dataset, by name.
#[utoipa::path(get, path = "/v1/datasets", tag = "datasets",
    responses((status = 200, description = "The datasets", body = DatasetListResponse)))]
pub(crate) async fn list_datasets(state: web::Data<ApiState>) -> Result<HttpResponse, ApiError> {
    let datasets = state.datasets.list().await?;
    let datasets = datasets
        .iter()
        .map(|d| DatasetResponse::new(d, None))
        .collect();
    Ok(HttpResponse::Ok().json(DatasetListResponse { datasets }))
}

/// Read a dataset: its revision, current contract and record count.
#[utoipa::path(get, path = "/v1/datasets/{dataset}", tag = "datasets",
    params(("dataset" = String, Path, pattern = r"^[a-z][a-z0-9_-]{0,62}$", description = "The dataset's name")),
    responses(
        (status = 200, description = "The dataset", body = DatasetResponse),
        (status = 400, description = "Malformed name", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such dataset", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn get_dataset(
    state: web::Data<ApiState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = dataset_name(&path)?;
    let overview = state.datasets.get(&name).await?;
    let body = DatasetResponse::new(&overview.dataset, Some(overview.records));
    Ok(HttpResponse::Ok().json(body))
}

/// Delete a dataset (`admin` scope): its records, history, conflicts, events and their
/// deliveries, callbacks, subscriptions, pull sources and jobs go at once. Its
/// documents stay in the vault, and its name taken, unless `purge=true`, which removes
/// them too and frees the name (also for a dataset deleted earlier without it).
#[utoipa::path(delete, path = "/v1/datasets/{dataset}", tag = "datasets",
    params(("dataset" = String, Path, pattern = r"^[a-z][a-z0-9_-]{0,62}$", description = "The dataset's name"),
           DeleteDatasetQuery),
    responses(
        (status = 200, description = "Deleted", body = DeletedDatasetResponse),
        (status = 400, description = "Malformed name or query", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such dataset", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Imports of the dataset are waiting or being processed: nothing was deleted", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn delete_dataset(
    state: web::Data<ApiState>,
    path: web::Path<String>,
    query: web::Query<DeleteDatasetQuery>,
) -> Result<HttpResponse, ApiError> {
    let name = dataset_name(&path)?;
    let deleted = state.datasets.delete(&name, query.purge).await?;
    Ok(HttpResponse::Ok().json(DeletedDatasetResponse {
        name: name.to_string(),
        records: deleted.records,
        documents: deleted.documents,
        purged: deleted.purged,
    }))
}

/// Publish the next contract version; new imports are processed with it.
#[utoipa::path(post, path = "/v1/datasets/{dataset}/contracts", tag = "contracts",
    params(("dataset" = String, Path, pattern = r"^[a-z][a-z0-9_-]{0,62}$", description = "The dataset's name")),
    request_body(content = Object, description = "The contract (DESIGN §5)"),
    responses(
        (status = 201, description = "Published", body = ContractResponse,
         headers(("Location" = String, description = "The version's URL"))),
        (status = 400, description = "Malformed body or name", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such dataset", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid contract", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn publish_contract(
    state: web::Data<ApiState>,
    path: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let name = dataset_name(&path)?;
    let contract = contract(&body)?;
    let published = state.datasets.publish(&name, &contract).await?;
    let location = format!("/v1/datasets/{name}/contracts/{}", published.version.get());
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, location))
        .json(ContractResponse::from(&published)))
}

/// List a dataset's contract versions, oldest first.
#[utoipa::path(get, path = "/v1/datasets/{dataset}/contracts", tag = "contracts",
    params(("dataset" = String, Path, pattern = r"^[a-z][a-z0-9_-]{0,62}$", description = "The dataset's name")),
    responses(
        (status = 200, description = "The versions", body = ContractListResponse),
        (status = 400, description = "Malformed name", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such dataset", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list_contracts(
    state: web::Data<ApiState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = dataset_name(&path)?;
    let contracts = state.datasets.contracts(&name).await?;
    let contracts = contracts.iter().map(ContractResponse::from).collect();
    Ok(HttpResponse::Ok().json(ContractListResponse { contracts }))
}

/// Read one contract version.
#[utoipa::path(get, path = "/v1/datasets/{dataset}/contracts/{version}", tag = "contracts",
    params(("dataset" = String, Path, pattern = r"^[a-z][a-z0-9_-]{0,62}$", description = "The dataset's name"),
           ("version" = u32, Path, minimum = 1, description = "The version number")),
    responses(
        (status = 200, description = "The version", body = ContractResponse),
        (status = 400, description = "Malformed name or version", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such dataset or version", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn get_contract(
    state: web::Data<ApiState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let name = dataset_name(&path.0)?;
    let version = path
        .1
        .parse::<u32>()
        .ok()
        .and_then(|v| ContractVersion::try_new(v).ok())
        .ok_or_else(|| ApiError::field("version", "a contract version is a number from 1"))?;
    let published = state.datasets.contract(&name, version).await?;
    Ok(HttpResponse::Ok().json(ContractResponse::from(&published)))
}

/// Try a draft contract on a stored import: the records, errors and conflicts it would
/// produce in an empty dataset. Nothing is written.
#[utoipa::path(post, path = "/v1/datasets/{dataset}/contracts/dry-run", tag = "contracts",
    params(("dataset" = String, Path, pattern = r"^[a-z][a-z0-9_-]{0,62}$", description = "The dataset's name")),
    request_body = DryRunBody,
    responses(
        (status = 200, description = "What the draft would do", body = DryRunResponse),
        (status = 400, description = "Malformed body, name or import id", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such dataset or import", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The import deletes records: it has none to map", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid contract", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Too many dry runs at once", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn dry_run(
    state: web::Data<ApiState>,
    path: web::Path<String>,
    body: web::Json<DryRunBody>,
) -> Result<HttpResponse, ApiError> {
    let name = dataset_name(&path)?;
    let id = import_id("import_id", &body.import_id)?;
    let contract = contract(&body.contract)?;
    let sample = state.settings.dry_run_sample;
    let run = state.imports.dry_run(&name, &id, contract, sample).await?;
    Ok(HttpResponse::Ok().json(DryRunResponse {
        verdict: run.verdict.into(),
        report: (&run.report).into(),
        records: run.records.iter().map(RecordResponse::from).collect(),
        records_total: run.records_total,
        conflicts: run
            .conflicts
            .iter()
            .map(|c| ConflictResponse::new(None, c))
            .collect(),
    }))
}
