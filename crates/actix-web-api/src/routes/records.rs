//! Records (latest state, filtered by dimensions), one record's history, and a
//! dataset's conflicts.

use std::collections::BTreeMap;

use actix_web::middleware::from_fn;
use actix_web::{HttpRequest, HttpResponse, web};
use intake_domain::ImportStatus;
use intake_domain::ports::{HistoryPage, RecordFilter, RecordOrder, RecordQuery};

use super::{dataset_name, page};
use crate::conditional::conditional;
use crate::dto::{
    ConflictListResponse, ConflictResponse, DeletedRecordResponse, HistoryQuery, HistoryResponse,
    PageQuery, RecordListResponse, RecordResponse,
};
use crate::error::Problem;
use crate::policy::Policy;
use crate::{ApiError, ApiState};

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    // Records, a record and its history change only with the dataset's revision.
    let tagged = |path, policy| {
        super::resource_in(super::V1_DATASET, path, policy).wrap(from_fn(conditional))
    };
    // The list also streams as CSV or NDJSON.
    cfg.service(tagged("/records", Policy::Export).route(web::get().to(list_records)))
        .service(
            tagged("/records/{key}", Policy::Api)
                .route(web::get().to(get_record))
                .route(web::delete().to(delete_record)),
        )
        .service(tagged("/records/{key}/history", Policy::Api).route(web::get().to(get_history)))
        .service(
            super::resource_in(super::V1_DATASET, "/conflicts", Policy::Api)
                .route(web::get().to(list_conflicts)),
        );
}

/// A number from the query string, or a field error naming it.
pub(crate) fn number<T: std::str::FromStr>(
    query: &BTreeMap<String, String>,
    name: &str,
) -> Result<Option<T>, ApiError> {
    query
        .get(name)
        .map(|v| {
            v.parse()
                .map_err(|_| ApiError::field(name, format!("{name} must be a whole number")))
        })
        .transpose()
}

/// A record list's query string: the `reserved` parameters by name (the last one
/// given wins), and the rest as the records' filter: `updated_since` (RFC 3339), and
/// every other name a field with each value it was given (`?test_id=9863&test_id=9864`:
/// either).
///
/// # Errors
/// A field error for an `updated_since` that is not RFC 3339.
pub(crate) fn record_filter(
    pairs: Vec<(String, String)>,
    reserved: &[&str],
) -> Result<(BTreeMap<String, String>, RecordFilter), ApiError> {
    let mut kept = BTreeMap::new();
    let mut filter = RecordFilter::default();
    for (name, value) in pairs {
        if reserved.contains(&name.as_str()) {
            kept.insert(name, value);
        } else if name == "updated_since" {
            let since = chrono::DateTime::parse_from_rfc3339(&value).map_err(|_| {
                ApiError::field(
                    "updated_since",
                    "updated_since must be an RFC 3339 time, such as 2026-12-06T09:00:00Z",
                )
            })?;
            filter.updated_since = Some(since.with_timezone(&chrono::Utc));
        } else {
            filter.dimensions.entry(name).or_default().push(value);
        }
    }
    Ok((kept, filter))
}

/// `sort`: `key` (the default), `<measure>` (lowest first) or `-<measure>` (highest
/// first).
fn order(sort: Option<&str>) -> Result<RecordOrder, ApiError> {
    let bad = || {
        ApiError::field(
            "sort",
            "sort must be key, a measure's name (lowest first) or - and a measure's name \
             (highest first)",
        )
    };
    match sort {
        None | Some("key") => Ok(RecordOrder::Key),
        Some(text) => {
            let (name, descending) = match text.strip_prefix('-') {
                Some(name) => (name, true),
                None => (text, false),
            };
            if name.is_empty() || name == "key" {
                return Err(bad());
            }
            Ok(RecordOrder::Measure {
                name: name.to_owned(),
                descending,
            })
        }
    }
}

/// List records ordered by key (or by a measure: `sort`), a page at a time. Every query parameter other than
/// `limit`, `offset` and `updated_since` (RFC 3339: records committed since then) is a
/// filter on a field the contract declares, a dimension or any other, or a measure:
/// `?test_id=9863` keeps the records whose `test_id` is 9863, and a name given several
/// times keeps any of its values (`?test_id=9863&test_id=9864`). A number matches by
/// value (`55` is `55.0`). Filters on dimensions and time are the store's; one on
/// another field reads every record the rest of the filter keeps. With
/// `Accept: text/csv` (a header row: `key`, each dimension, each measure, `version`,
/// `attributes` as JSON) or `Accept: application/x-ndjson` (one record per line),
/// every matching record is streamed in key order, whatever the size (`limit` and
/// `offset` do not apply).
#[utoipa::path(get, path = "/v1/datasets/{dataset}/records", tag = "records",
    params(("dataset" = String, Path, pattern = r"^[a-z][a-z0-9_-]{0,62}$", description = "The dataset's name"), PageQuery,
           ("updated_since" = Option<String>, Query, format = DateTime, description = "Only records committed at or after this time (RFC 3339)"),
           ("sort" = Option<String>, Query, description = "`key` (the default), `<measure>` (lowest first) or `-<measure>` (highest first); records without the measure come last, ties by key. Not for exports"),
           ("filters" = Option<BTreeMap<String, String>>, Query, style = Form, explode,
            description = "`<field>=<value>` pairs, all of which must hold; a field given several times matches any of its values")),
    responses(
        (status = 200, description = "A page of records", body = RecordListResponse, headers(("ETag" = String, description = "W/\"<created>-<contract>-<revision>\": changes when an import commits"), ("Cache-Control" = String, description = "no-cache"))),
        (status = 304, description = "Not modified: If-None-Match names the current ETag; no body", headers(("ETag" = String, description = "W/\"<created>-<contract>-<revision>\": changes when an import commits"), ("Cache-Control" = String, description = "no-cache"))),
        (status = 400, description = "Malformed name, page, time or filter (a name that is not a field)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such dataset", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list_records(
    state: web::Data<ApiState>,
    path: web::Path<String>,
    query: web::Query<Vec<(String, String)>>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let name = dataset_name(&path)?;
    let (paging, filters) = record_filter(query.into_inner(), &["limit", "offset", "sort"])?;
    let order = order(paging.get("sort").map(String::as_str))?;
    if let Some(format) = crate::export::requested(&req) {
        if order != RecordOrder::Key {
            let message = "an export is in key order: sort applies to pages";
            return Err(ApiError::field("sort", message));
        }
        let datasets = state.datasets.clone();
        return crate::export::records(datasets, name, filters, format).await;
    }
    let paging = PageQuery {
        limit: number(&paging, "limit")?,
        offset: number(&paging, "offset")?,
    };
    let (limit, offset) = page(&paging)?;
    let query = RecordQuery {
        filters,
        order,
        limit,
        offset,
        after: None,
    };
    let found = state.datasets.records(&name, &query).await?;
    Ok(HttpResponse::Ok().json(RecordListResponse {
        records: found.records.iter().map(RecordResponse::from).collect(),
        total: found.total,
        limit,
        offset,
    }))
}

/// Read one record's latest state.
#[utoipa::path(get, path = "/v1/datasets/{dataset}/records/{key}", tag = "records",
    params(("dataset" = String, Path, pattern = r"^[a-z][a-z0-9_-]{0,62}$", description = "The dataset's name"),
           ("key" = String, Path, description = "The canonical key, URL-encoded as one segment (`9863%2F002299`)")),
    responses(
        (status = 200, description = "The record", body = RecordResponse, headers(("ETag" = String, description = "W/\"<created>-<contract>-<revision>\": changes when an import commits"), ("Cache-Control" = String, description = "no-cache"))),
        (status = 304, description = "Not modified: If-None-Match names the current ETag; no body", headers(("ETag" = String, description = "W/\"<created>-<contract>-<revision>\": changes when an import commits"), ("Cache-Control" = String, description = "no-cache"))),
        (status = 400, description = "Malformed name or key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such dataset or record", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn get_record(
    state: web::Data<ApiState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let name = dataset_name(&path.0)?;
    let record = state.datasets.record(&name, &path.1).await?;
    Ok(HttpResponse::Ok().json(RecordResponse::from(&record)))
}

/// Delete a record (`write` scope; ADR 40). The deletion is an import of the dataset
/// (media type `application/vnd.intake.deletions+json`, source `api`), kept in the
/// vault and replayed by a reprocess. Applied by a worker, it removes the record from
/// the latest state, appends a `deleted` entry to its history (the state it had),
/// emits `record.deleted` to subscribers and cancels the record's pending callback,
/// all in one transaction. The answer waits for it as `?wait=true` waits for an
/// import. Each request is a deletion of its own: once one is applied the record is
/// gone and a retry answers `404`; the same `Idempotency-Key` while the record still
/// exists gives the first deletion back.
#[utoipa::path(delete, path = "/v1/datasets/{dataset}/records/{key}", tag = "records",
    params(("dataset" = String, Path, pattern = r"^[a-z][a-z0-9_-]{0,62}$", description = "The dataset's name"),
           ("key" = String, Path, description = "The canonical key, URL-encoded as one segment (`9863%2F002299`)"),
           ("Idempotency-Key" = Option<String>, Header, description = "Same key, same deletion")),
    responses(
        (status = 200, description = "Deleted: the state the record had and the deletion's import", body = DeletedRecordResponse),
        (status = 202, description = "Stored and queued, not applied yet: poll the import (`Location`)", body = DeletedRecordResponse,
            headers(("Location" = String, description = "The deletion's import"))),
        (status = 400, description = "Malformed name, key or Idempotency-Key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such dataset or record", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The Idempotency-Key was first sent with an import that is not a deletion", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn delete_record(
    state: web::Data<ApiState>,
    path: web::Path<(String, String)>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let name = dataset_name(&path.0)?;
    let key = super::imports::idempotency_key(&req)?;
    let record = state.datasets.record(&name, &path.1).await?;
    let received = state
        .imports
        .delete_record(&name, &record, "api", key)
        .await?;
    if received.import.import.content_type != intake_domain::ingest::DELETIONS_MEDIA_TYPE {
        return Err(ApiError::Conflict(format!(
            "this Idempotency-Key was first sent with import {}, which is not a deletion",
            received.import.id
        )));
    }
    let import = super::imports::wait_for(&state, received.import).await;
    let mut builder = match import.status {
        ImportStatus::Completed => HttpResponse::Ok(),
        ImportStatus::Failed => {
            let why = import.report.as_ref().and_then(|r| r.errors.first());
            return Err(ApiError::unexpected(anyhow::anyhow!(
                "the deletion {} failed: {}",
                import.id,
                why.map_or("no reason given", |e| e.message.as_str())
            )));
        }
        _ => HttpResponse::Accepted(),
    };
    Ok(builder
        .insert_header((
            actix_web::http::header::LOCATION,
            super::imports::location(&import),
        ))
        .json(DeletedRecordResponse {
            key: record.record.key.canonical(),
            record: RecordResponse::from(&record),
            import: super::imports::answer(&state, &import),
        }))
}

/// Every accepted state of one record, oldest first.
#[utoipa::path(get, path = "/v1/datasets/{dataset}/records/{key}/history", tag = "records",
    params(("dataset" = String, Path, pattern = r"^[a-z][a-z0-9_-]{0,62}$", description = "The dataset's name"),
           ("key" = String, Path, description = "The canonical key, URL-encoded as one segment"),
           HistoryQuery),
    responses(
        (status = 200, description = "The history", body = HistoryResponse, headers(("ETag" = String, description = "W/\"<created>-<contract>-<revision>\": changes when an import commits"), ("Cache-Control" = String, description = "no-cache"))),
        (status = 304, description = "Not modified: If-None-Match names the current ETag; no body", headers(("ETag" = String, description = "W/\"<created>-<contract>-<revision>\": changes when an import commits"), ("Cache-Control" = String, description = "no-cache"))),
        (status = 400, description = "Malformed name or key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such dataset or record", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn get_history(
    state: web::Data<ApiState>,
    path: web::Path<(String, String)>,
    query: web::Query<HistoryQuery>,
) -> Result<HttpResponse, ApiError> {
    let name = dataset_name(&path.0)?;
    let page = HistoryPage {
        limit: match query.limit {
            None => HistoryPage::ALL.limit,
            limit => super::page_limit(limit)?,
        },
        after: super::sequence_cursor(query.cursor.as_deref())?,
    };
    let history = state.datasets.history(&name, &path.1, &page).await?;
    let key = history
        .entries
        .first()
        .map_or_else(|| path.1.clone(), |s| s.record.key.canonical());
    Ok(HttpResponse::Ok().json(HistoryResponse {
        key,
        history: history.entries.iter().map(RecordResponse::from).collect(),
        next_cursor: history.next.map(|n| n.to_string()),
    }))
}

/// A dataset's conflicts, oldest first, each with the import that reported it.
#[utoipa::path(get, path = "/v1/datasets/{dataset}/conflicts", tag = "records",
    params(("dataset" = String, Path, pattern = r"^[a-z][a-z0-9_-]{0,62}$", description = "The dataset's name"), PageQuery),
    responses(
        (status = 200, description = "A page of conflicts", body = ConflictListResponse),
        (status = 400, description = "Malformed name or page", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such dataset", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list_conflicts(
    state: web::Data<ApiState>,
    path: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let name = dataset_name(&path)?;
    let (limit, offset) = page(&query)?;
    let conflicts = state.datasets.conflicts(&name, limit, offset).await?;
    let conflicts = conflicts
        .iter()
        .map(|(import, c)| ConflictResponse::new(Some(import), c))
        .collect();
    Ok(HttpResponse::Ok().json(ConflictListResponse {
        conflicts,
        limit,
        offset,
    }))
}
