//! The routes of `/v1` and the operational endpoints, and what their handlers share:
//! parsing path and query parameters into domain types, with a field error for each
//! bad one.

pub(crate) mod admin;
pub(crate) mod analytics;
pub(crate) mod callbacks;
pub(crate) mod console;
pub(crate) mod datasets;
pub(crate) mod health;
pub(crate) mod imports;
pub(crate) mod jobs;
pub(crate) mod markr;
pub(crate) mod records;
pub(crate) mod sources;
pub(crate) mod subscriptions;
pub(crate) mod v2;

use actix_web::web;
use intake_domain::{DatasetName, ImportId};

use crate::ApiError;
use crate::dto::PageQuery;
use crate::policy::Policy;

/// Every route about one dataset of `/v1` is below this pattern, in one scope: the
/// router (and the policy's look-up, [`crate::policy::Route::of`]) matches this one
/// pattern, then the rest of the path, static parts first, instead of trying each
/// route's full pattern in turn.
pub(crate) const V1_DATASET: &str = "/v1/datasets/{dataset}";
/// The same for `/v2`.
pub(crate) const V2_DATASET: &str = "/v2/datasets/{dataset}";

/// Registers every route.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    health::configure(cfg);
    console::configure(cfg);
    admin::configure(cfg);
    datasets::configure(cfg);
    v2::configure(cfg);
    cfg.service(web::scope(V1_DATASET).configure(|one| {
        // The most asked first: routes are tried in the order they are registered.
        analytics::configure(one);
        records::configure(one);
        datasets::configure_one(one);
        imports::configure(one);
        subscriptions::configure(one);
        sources::configure(one);
        jobs::configure(one);
        callbacks::configure(one);
    }))
    .service(web::scope(V2_DATASET).configure(v2::configure_one));
    // Last: its one pattern with a parameter is then tried only by its own requests.
    markr::configure(cfg);
}

/// A route with what it allows (its scope, its media types), declared here, where it
/// is registered: its other methods answer `405` with `Allow` (a problem document, by
/// [`crate::refusals`]).
pub(crate) fn resource(path: &str, policy: Policy) -> actix_web::Resource {
    crate::policy::declare(path, policy);
    web::resource(path)
}

/// A route of one dataset: `path` below `scope` ([`V1_DATASET`] or [`V2_DATASET`]), as
/// [`resource`].
pub(crate) fn resource_in(scope: &str, path: &str, policy: Policy) -> actix_web::Resource {
    crate::policy::declare(&format!("{scope}{path}"), policy);
    web::resource(path)
}

/// A JSON body, rendered once to be sent and kept ([`DatasetService::rendered`]).
///
/// [`DatasetService::rendered`]: intake_domain::datasets::DatasetService::rendered
pub(crate) fn to_json(value: &impl serde::Serialize) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(value).map_err(|e| ApiError::Internal(anyhow::Error::new(e)))
}

/// `200` with a JSON body rendered before.
pub(crate) fn json_ok(body: Vec<u8>) -> actix_web::HttpResponse {
    actix_web::HttpResponse::Ok()
        .content_type(actix_web::http::header::ContentType::json())
        .body(body)
}

/// The largest page a list answers.
const MAX_PAGE: u32 = 1000;
/// The page size when the client names none.
const DEFAULT_PAGE: u32 = 100;

pub(crate) fn dataset_name(text: &str) -> Result<DatasetName, ApiError> {
    DatasetName::parse(text).map_err(|e| ApiError::field("dataset", e.to_string()))
}

pub(crate) fn import_id(field: &str, text: &str) -> Result<ImportId, ApiError> {
    ImportId::parse(text).map_err(|e| ApiError::field(field, e.to_string()))
}

/// `limit` (1–1000, default 100) and `offset` (default 0).
pub(crate) fn page(query: &PageQuery) -> Result<(u32, u64), ApiError> {
    Ok((page_limit(query.limit)?, query.offset.unwrap_or(0)))
}

/// `limit`: 1–1000, default 100.
pub(crate) fn page_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    let limit = limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        let message = format!("limit must be between 1 and {MAX_PAGE}");
        return Err(ApiError::field("limit", message));
    }
    Ok(limit)
}

/// The `cursor` of a list ordered by a positive sequence (newest first, or a
/// record's history oldest first): the last sequence of the previous page.
pub(crate) fn sequence_cursor(cursor: Option<&str>) -> Result<Option<i64>, ApiError> {
    cursor
        .map(|text| {
            text.parse::<i64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| ApiError::field("cursor", "not a cursor this list gave"))
        })
        .transpose()
}
