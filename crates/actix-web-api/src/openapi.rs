//! The OpenAPI 3.1 document of `/v1`, generated from the handlers and DTOs, served at
//! `/openapi/v1.json`, and the Swagger UI at `/docs`, whose assets are compiled into
//! the binary (nothing is fetched from the internet).

use actix_web::{HttpResponse, web};
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::dto::{
    AggregateResponse, GroupAggregateResponse, MarkrAggregateResponse, MarkrImportResponse,
    RankedRecordResponse, TopGroupResponse, TopResponse,
};
use crate::dto::{
    ConflictKindResponse, ConflictListResponse, ConflictResponse, ContractListResponse,
    ContractResponse, DatasetBody, DatasetListResponse, DatasetResponse, DependencyResponse,
    DifferenceResponse, DryRunBody, DryRunResponse, HealthResponse, HistoryResponse,
    ImportListResponse, ImportResponse, LocationResponse, ReadyResponse, RecordErrorResponse,
    RecordListResponse, RecordResponse, ReportResponse, ReprocessBody, StatusResponse,
    VerdictResponse,
};
use crate::error::{FieldError, Problem};
use crate::routes::markr::MarkrProblem;
use crate::routes::{analytics, datasets, health, imports, markr, records};

/// The `/v1` API.
#[derive(OpenApi)]
#[openapi(
    info(title = "Intake", description = "Data contracts, a raw vault, latest state with history, \
        and analytics over a versioned REST API. Errors are RFC 9457 problem documents; every \
        response carries the request's `X-Request-Id`."),
    paths(
        datasets::create_dataset, datasets::list_datasets, datasets::get_dataset,
        datasets::publish_contract, datasets::list_contracts, datasets::get_contract,
        datasets::dry_run,
        imports::create_import, imports::list_imports, imports::get_import,
        imports::get_document, imports::reprocess,
        records::list_records, records::get_record, records::get_history,
        records::list_conflicts,
        analytics::aggregate, analytics::top,
        markr::import, markr::results_aggregate,
        health::healthz, health::readyz, health::metrics,
    ),
    components(schemas(
        Problem, FieldError, DatasetBody, DatasetResponse, DatasetListResponse,
        ContractResponse, ContractListResponse, DryRunBody, DryRunResponse, VerdictResponse,
        ImportResponse, ImportListResponse, StatusResponse, ReprocessBody, ReportResponse,
        RecordErrorResponse, LocationResponse, RecordResponse, RecordListResponse,
        HistoryResponse, ConflictResponse, ConflictListResponse, ConflictKindResponse,
        DifferenceResponse, HealthResponse, ReadyResponse, DependencyResponse,
        AggregateResponse, GroupAggregateResponse, TopResponse, TopGroupResponse,
        RankedRecordResponse, MarkrImportResponse, MarkrAggregateResponse, MarkrProblem,
    )),
    tags(
        (name = "datasets", description = "Named collections of records, each with a contract"),
        (name = "contracts", description = "Versioned mappings from documents to records"),
        (name = "imports", description = "Documents received, kept raw, processed by workers"),
        (name = "records", description = "Latest state, history and conflicts"),
        (name = "analytics", description = "Aggregates and top-k over the latest state, cached per dataset revision"),
        (name = "markr", description = "Compatibility routes of the Markr exam-results service, backed by the `exam-results` dataset"),
        (name = "operations", description = "Health, readiness and metrics"),
    )
)]
pub struct ApiDoc;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(SwaggerUi::new("/docs/{_:.*}").url("/openapi/v1.json", ApiDoc::openapi()))
        .route("/docs", web::get().to(to_docs));
}

async fn to_docs() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header(("Location", "/docs/"))
        .finish()
}
