//! The OpenAPI 3.1 document of `/v1`, generated from the handlers and DTOs, served at
//! `/openapi/v1.json`, and the Swagger UI at `/docs`, whose assets are compiled into
//! the binary (nothing is fetched from the internet).

pub mod compat;

use actix_web::http::Method;
use actix_web::{HttpResponse, web};
use serde_json::json;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Ref, RefOr, Response};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use crate::dto::{
    AggregateResponse, GroupAggregateResponse, MarkrAggregateResponse, MarkrImportResponse,
    RankedRecordResponse, TopGroupResponse, TopResponse,
};
use crate::dto::{
    ConflictKindResponse, ConflictListResponse, ConflictResponse, ContractListResponse,
    ContractResponse, DatasetBody, DatasetListResponse, DatasetResponse, DeletedDatasetResponse,
    DeletedRecordResponse, DependencyResponse, DifferenceResponse, DryRunBody, DryRunResponse,
    HealthResponse, HistoryResponse, ImportListResponse, ImportResponse, LocationResponse,
    ProgressResponse, ReadyResponse, RecordErrorResponse, RecordListResponse, RecordResponse,
    ReportResponse, ReprocessBody, SessionResponse, StatusResponse, VerdictResponse,
};
use crate::error::{FieldError, Problem};
use crate::routes::admin::{
    AdapterResponse, AdminStateResponse, BackupContentsResponse, BackupListResponse,
    BackupResponse, LogLevelBody, LoggedError, QueuesResponse, SubscriptionQueueResponse,
    WorkerKindResponse, WorkerResponse,
};
use crate::routes::callbacks::{CallbackPageResponse, CallbackResponse, CallbackStatusResponse};
use crate::routes::markr::MarkrProblem;
use crate::routes::sources::{
    AuthBody, IncrementalBody, PaginationBody, SourceBody, SourceListResponse, SourcePatchBody,
    SourceResponse, SourceStateResponse, SourceStatusResponse,
};
use crate::routes::subscriptions::{
    DeliveryCountsResponse, DeliveryPageResponse, DeliveryResponse, DeliveryStatusResponse,
    ReplayBody, ReplayResponse, SubscriptionBody, SubscriptionListResponse, SubscriptionPatch,
    SubscriptionResponse, SubscriptionStatusResponse,
};
use crate::routes::{
    admin, analytics, callbacks, console, datasets, health, imports, jobs, markr, records, sources,
    subscriptions, v2,
};

/// The `/v1` API.
#[derive(OpenApi)]
#[openapi(
    info(title = "Intake", description = "Data contracts, a raw vault, latest state with history, \
        and analytics over a versioned REST API. Errors are RFC 9457 problem documents; every \
        response carries the request's `X-Request-Id`."),
    paths(
        datasets::create_dataset, datasets::list_datasets, datasets::get_dataset,
        datasets::delete_dataset,
        datasets::publish_contract, datasets::list_contracts, datasets::get_contract,
        datasets::dry_run,
        imports::create_import, imports::list_imports, imports::get_import,
        imports::get_document, imports::reprocess,
        records::list_records, records::get_record, records::delete_record, records::get_history,
        records::list_conflicts,
        analytics::aggregate, analytics::top,
        subscriptions::create_subscription, subscriptions::list_subscriptions,
        subscriptions::get_subscription, subscriptions::delete_subscription,
        subscriptions::patch_subscription, subscriptions::rotate_secret,
        subscriptions::list_deliveries, subscriptions::replay_delivery, subscriptions::replay,
        sources::create_source, sources::list_sources, sources::get_source,
        sources::patch_source, sources::delete_source, sources::run_source,
        sources::reset_source,
        jobs::create_job, jobs::list_jobs, jobs::get_job, jobs::pause_job, jobs::resume_job,
        jobs::cancel_job, jobs::restart_job, jobs::get_rollup,
        callbacks::list_callbacks,
        markr::import, markr::results_aggregate,
        health::healthz, health::readyz, health::metrics, console::session,
        admin::state, admin::get_log_level, admin::put_log_level, admin::pause, admin::resume,
        admin::list_backups, admin::make_backup,
    ),
    components(schemas(
        Problem, FieldError, DatasetBody, DatasetResponse, DatasetListResponse,
        DeletedDatasetResponse,
        ContractResponse, ContractListResponse, DryRunBody, DryRunResponse, VerdictResponse,
        ImportResponse, ImportListResponse, ProgressResponse, StatusResponse, ReprocessBody, ReportResponse,
        RecordErrorResponse, LocationResponse, RecordResponse, DeletedRecordResponse, RecordListResponse, SessionResponse,
        HistoryResponse, ConflictResponse, ConflictListResponse, ConflictKindResponse,
        DifferenceResponse, HealthResponse, ReadyResponse, DependencyResponse,
        AggregateResponse, GroupAggregateResponse, TopResponse, TopGroupResponse,
        RankedRecordResponse, MarkrImportResponse, MarkrAggregateResponse, MarkrProblem,
        SubscriptionBody, SubscriptionResponse, SubscriptionListResponse,
        SubscriptionStatusResponse, DeliveryCountsResponse, SubscriptionPatch, ReplayBody,
        ReplayResponse, DeliveryStatusResponse, DeliveryResponse, DeliveryPageResponse,
        CallbackStatusResponse, CallbackResponse, CallbackPageResponse,
        SourceBody, SourcePatchBody, PaginationBody, AuthBody, IncrementalBody, SourceResponse,
        SourceListResponse, SourceStateResponse, SourceStatusResponse,
        AdminStateResponse, AdapterResponse, WorkerKindResponse, WorkerResponse, QueuesResponse,
        LogLevelBody, LoggedError, SubscriptionQueueResponse, BackupResponse, BackupContentsResponse, BackupListResponse,
        jobs::JobBody, jobs::RollupJobBody, jobs::ReprocessJobBody, jobs::BackfillJobBody, jobs::JobResponse, jobs::JobListResponse, jobs::JobStatusResponse,
        jobs::JobProgressResponse, jobs::CheckpointResponse, jobs::RestartBody,
        jobs::RollupResponse, jobs::RollupPointResponse,
    )),
    modifiers(&Gatekeeping),
    tags(
        (name = "datasets", description = "Named collections of records, each with a contract"),
        (name = "contracts", description = "Versioned mappings from documents to records"),
        (name = "imports", description = "Documents received, kept raw, processed by workers"),
        (name = "records", description = "Latest state, history and conflicts"),
        (name = "analytics", description = "Aggregates and top-k over the latest state, cached per dataset revision"),
        (name = "subscriptions", description = "URLs that receive a dataset's events as signed webhooks (Standard Webhooks); reading needs `read`, changing needs `admin`"),
        (name = "sources", description = "External HTTP APIs and files pulled on a schedule, each page an import; reading needs `read`, changing needs `admin`"),
        (name = "jobs", description = "Long-running jobs with checkpoints (a `rollup` keeps a measure's aggregate per group after every import, as a series; a `reprocess` rebuilds a dataset through a contract version; a `backfill` pulls every page of a source); reading needs `read`, starting and steering need `admin`"),
        (name = "callbacks", description = "Callback timers (`callbackTimeMs` after a version is accepted) and their outcome: pending, fired or cancelled by a newer version"),
        (name = "markr", description = "Compatibility routes of the Markr exam-results service, backed by the `exam-results` dataset"),
        (name = "operations", description = "Health, readiness and metrics"),
        (name = "admin", description = "The management API: this instance's state, its log filter, pausing and resuming each kind of work on every instance; every route needs `admin`"),
    )
)]
pub struct ApiDoc;

/// What the middleware adds to every operation: the `Request-Timeout` header with its
/// `400`/`504` answers and, where the gate guards it, the bearer scheme with the scope
/// the route needs and the `401`/`403`/`429` answers.
struct Gatekeeping;

/// The `Request-Timeout` header every operation takes.
fn request_timeout() -> serde_json::Value {
    json!({
        "name": "Request-Timeout",
        "in": "header",
        "required": false,
        "description": "How long the client waits, in milliseconds (capped by the server's \
            maximum; the server's default without it). Past it the work is cancelled and the \
            answer is 504.",
        "schema": {"type": "integer", "minimum": 1, "maximum": 86_400_000},
    })
}

/// The XML twin of each JSON body of `response` (only of a problem unless `all`):
/// same schema, mapped as `negotiate` describes.
fn with_xml(response: &mut Response, all: bool) {
    let twins: Vec<_> = response
        .content
        .iter()
        .filter_map(|(media, content)| {
            let xml = match media.as_str() {
                "application/json" if all => "application/xml",
                "application/problem+json" => "application/problem+xml",
                _ => return None,
            };
            Some((xml.to_owned(), content.clone()))
        })
        .collect();
    for (media, content) in twins {
        response.content.entry(media).or_insert(content);
    }
}

/// The streamed forms of an exportable answer: CSV with a header row, and one JSON
/// object per line.
fn with_exports(response: &mut Response) {
    let forms = [
        (
            "text/csv",
            "CSV with a header row (`Accept: text/csv`), streamed",
        ),
        (
            "application/x-ndjson",
            "One JSON object per line (`Accept: application/x-ndjson`), streamed",
        ),
    ];
    for (media, description) in forms {
        let content = json!({"schema": {"type": "string", "description": description}});
        if let Ok(content) = serde_json::from_value(content) {
            response.content.entry(media.to_owned()).or_insert(content);
        }
    }
}

/// A problem answer, shared by every operation through `components.responses`.
fn problem_response(description: &str, headers: serde_json::Value) -> RefOr<Response> {
    let response = json!({
        "description": description,
        "headers": headers,
        "content": {"application/problem+json": {
            "schema": {"$ref": "#/components/schemas/Problem"}}},
    });
    serde_json::from_value(response).map_or_else(|_| RefOr::T(Response::new(description)), RefOr::T)
}

impl Modify for Gatekeeping {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        let bearer = SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer));
        components.add_security_scheme("bearer", bearer);
        let challenge = json!({"WWW-Authenticate": {"schema": {"type": "string"},
            "description": "`Bearer realm=\"intake\"`"}});
        let integer =
            |description: &str| json!({"schema": {"type": "integer"}, "description": description});
        let limited = json!({
            "Retry-After": integer("Seconds until a request is allowed again"),
            "RateLimit-Limit": integer("The bucket's size"),
            "RateLimit-Remaining": integer("Requests left now"),
            "RateLimit-Reset": integer("Seconds until the bucket is full again"),
        });
        let shared = [
            (
                "Unauthorized",
                "No valid bearer token (only when tokens are configured)",
                challenge,
            ),
            (
                "Forbidden",
                "The token lacks the scope this route needs",
                json!({}),
            ),
            (
                "BadRequest",
                "A malformed request (here: a `Request-Timeout` that is not a number of milliseconds)",
                json!({}),
            ),
            (
                "Timeout",
                "The request's deadline passed (`Request-Timeout`, or the server's default); its work was cancelled",
                json!({}),
            ),
            (
                "NotAcceptable",
                "`Accept` allows neither JSON nor XML",
                json!({}),
            ),
            (
                "TooManyRequests",
                "The caller's rate limit (per token, or per IP without one) is spent",
                limited,
            ),
            (
                "Unavailable",
                "The database cannot be reached now (or, for uploads, as many are arriving as \
                 the instance takes): retry after `Retry-After` seconds",
                json!({"Retry-After": integer("Seconds to wait before retrying")}),
            ),
        ];
        for (name, description, headers) in shared {
            let mut response = problem_response(description, headers);
            if let RefOr::T(response) = &mut response {
                with_xml(response, false);
            }
            components.responses.insert(name.into(), response);
        }
        for (path, item) in &mut api.paths.paths {
            let operations = [
                (Method::GET, &mut item.get),
                (Method::POST, &mut item.post),
                (Method::PUT, &mut item.put),
                (Method::DELETE, &mut item.delete),
                (Method::PATCH, &mut item.patch),
            ];
            for (method, operation) in operations {
                let Some(operation) = operation.as_mut() else {
                    continue;
                };
                // Every route has a deadline.
                if let Ok(parameter) = serde_json::from_value(request_timeout()) {
                    operation
                        .parameters
                        .get_or_insert_with(Vec::new)
                        .push(parameter);
                }
                let policy = crate::policy::Policy::of_pattern(Some(path));
                let negotiated = policy.is_negotiated();
                for (status, response) in &mut operation.responses.responses {
                    if let RefOr::T(response) = response {
                        with_xml(response, negotiated);
                        if policy.exports() && status == "200" {
                            with_exports(response);
                        }
                    }
                }
                let mut shared = vec![("504", "Timeout")];
                // Routes that reach the database (or take uploads) can find it down.
                if matches!(
                    policy,
                    crate::policy::Policy::Api
                        | crate::policy::Policy::Export
                        | crate::policy::Policy::ApiDocument
                        | crate::policy::Policy::Markr
                        | crate::policy::Policy::Managed
                ) {
                    shared.push(("503", "Unavailable"));
                }
                if negotiated {
                    shared.push(("406", "NotAcceptable"));
                }
                if !policy.is_compatibility() {
                    shared.push(("400", "BadRequest"));
                }
                if let Some(scope) = policy.scope(&method) {
                    let requirement = SecurityRequirement::new("bearer", [scope.as_str()]);
                    operation.security = Some(vec![requirement]);
                    shared.extend([
                        ("401", "Unauthorized"),
                        ("403", "Forbidden"),
                        ("429", "TooManyRequests"),
                    ]);
                }
                let responses = &mut operation.responses.responses;
                for (status, name) in shared {
                    responses
                        .entry(status.into())
                        .or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
                }
            }
        }
    }
}

/// The `/v2` API (ADR 13). Its list items and statistics may be sparse (`fields=`),
/// so [`v2_document`] describes them with every member optional.
#[derive(OpenApi)]
#[openapi(
    info(title = "Intake v2", description = "Cursor pagination, several measures and any \
        percentiles per aggregate, and sparse fieldsets. Errors are RFC 9457 problem documents; \
        every response carries the request's `X-Request-Id`."),
    paths(v2::list_datasets, v2::list_records, v2::list_imports, v2::list_conflicts,
        v2::aggregate),
    components(schemas(
        Problem, FieldError, v2::DatasetPage, v2::RecordPage, v2::ImportPage, v2::ConflictPage,
        ImportResponse, StatusResponse, ReportResponse, RecordErrorResponse,
        v2::AggregatesResponse, v2::GroupStatisticsResponse, v2::StatisticsResponse,
        v2::PercentileResponse, DatasetResponse, RecordResponse, ConflictResponse,
        ConflictKindResponse, DifferenceResponse, LocationResponse,
    )),
    modifiers(&Gatekeeping),
    tags((name = "v2", description = "Lists with cursors and sparse fieldsets, and richer aggregates")),
)]
pub struct ApiDocV2;

/// The `/v2` document as JSON, as `/openapi/v2.json` serves it: what `fields=` may
/// leave out is optional (`…Fields` copies of the item schemas, without `required`).
pub fn v2_document() -> serde_json::Value {
    let mut doc = serde_json::to_value(ApiDocV2::openapi()).unwrap_or_default();
    let sparse = [
        ("DatasetPage", "DatasetResponse"),
        ("RecordPage", "RecordResponse"),
        ("ImportPage", "ImportResponse"),
        ("ConflictPage", "ConflictResponse"),
        ("GroupStatisticsResponse", "StatisticsResponse"),
    ];
    for (holder, item) in sparse {
        let copy = format!("{item}Fields");
        let schemas = &mut doc["components"]["schemas"];
        let mut fields = schemas[item].clone();
        if let Some(members) = fields.as_object_mut() {
            members.remove("required");
        }
        schemas[&copy] = fields;
        let from = format!("#/components/schemas/{item}");
        let to = format!("#/components/schemas/{copy}");
        replace_refs(&mut schemas[holder], &from, &to);
    }
    doc
}

fn replace_refs(value: &mut serde_json::Value, from: &str, to: &str) {
    match value {
        serde_json::Value::Object(members) => {
            for (key, member) in members.iter_mut() {
                if key == "$ref" && member == from {
                    *member = to.into();
                } else {
                    replace_refs(member, from, to);
                }
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                replace_refs(item, from, to);
            }
        }
        _ => {}
    }
}

/// The `/v1` document as JSON, as `/openapi/v1.json` serves it.
pub fn v1_document() -> serde_json::Value {
    serde_json::to_value(ApiDoc::openapi()).unwrap_or_default()
}

/// Declares the documents' routes (the Swagger UI registers them): open, each with its
/// own media type.
pub(crate) fn declare() {
    for pattern in [
        "/docs",
        "/docs/{_:.*}",
        "/openapi/v1.json",
        "/openapi/v2.json",
    ] {
        crate::policy::declare(pattern, crate::policy::Policy::OpenDocument);
    }
}

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    declare();
    cfg.service(
        SwaggerUi::new("/docs/{_:.*}")
            .url("/openapi/v1.json", ApiDoc::openapi())
            .external_url_unchecked("/openapi/v2.json", v2_document()),
    )
    .route("/docs", web::get().to(to_docs));
}

async fn to_docs() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header(("Location", "/docs/"))
        .finish()
}
