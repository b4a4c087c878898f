//! `/v2` (DESIGN §11, ADR 13): what v1 cannot become without breaking its clients.
//!
//! - Lists page with an opaque `cursor` instead of `offset`: `next_cursor` of one page
//!   asks for the next, and is `null` after the last. Datasets and records are keyset
//!   pages (after the last name or key), so records added anywhere while a client
//!   pages through neither repeat nor hide the records that were there; imports are
//!   keyset pages too, newest first (before the last one seen); conflicts are
//!   appended in order and never removed, so their cursor is a position.
//! - Aggregates take several measures and any list of percentiles at once.
//! - `fields=a,b` keeps only those members of each item (each statistics object of an
//!   aggregate); an unknown name is a `400` listing the known ones.

use std::collections::{BTreeMap, BTreeSet};

use actix_web::middleware::from_fn;
use actix_web::{HttpResponse, web};
use intake_domain::ports::{AnalyticsQuery, GroupAggregate, RecordQuery};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::dataset_name;
use super::records::number;
use crate::conditional::conditional;
use crate::dto::{ConflictResponse, DatasetResponse, ImportResponse, RecordResponse};
use crate::error::Problem;
use crate::policy::Policy;
use crate::{ApiError, ApiState};

/// The largest page.
const MAX_PAGE: u32 = 1000;
/// The page size when the client names none.
const DEFAULT_PAGE: u32 = 100;
/// The most measures and percentiles one aggregate answers.
const MAX_MEASURES: usize = 10;
const MAX_PERCENTILES: usize = 20;

const DATASET_FIELDS: &[&str] = &["name", "current_contract", "revision", "created_at"];
const RECORD_FIELDS: &[&str] = &[
    "key",
    "key_components",
    "version",
    "dimensions",
    "measures",
    "attributes",
    "import_id",
    "updated_at",
];
const IMPORT_FIELDS: &[&str] = &[
    "id",
    "dataset",
    "contract_version",
    "content_type",
    "source",
    "size",
    "sha256",
    "received_at",
    "status",
    "report",
];
const CONFLICT_FIELDS: &[&str] = &[
    "import_id",
    "kind",
    "key",
    "identity",
    "differences",
    "location",
];
const STATISTICS_FIELDS: &[&str] = &[
    "count",
    "sum",
    "mean",
    "stddev",
    "min",
    "max",
    "percentiles",
    "excluded",
];

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource("/v2/datasets", Policy::Api).route(web::get().to(list_datasets)));
}

/// The routes of one dataset, below [`super::V2_DATASET`].
pub(crate) fn configure_one(cfg: &mut web::ServiceConfig) {
    let resource = |path| super::resource_in(super::V2_DATASET, path, Policy::Api);
    cfg.service(
        resource("/aggregate")
            .route(web::get().to(aggregate))
            .wrap(from_fn(conditional)),
    )
    .service(
        resource("/records")
            .route(web::get().to(list_records))
            .wrap(from_fn(conditional)),
    )
    .service(resource("/imports").route(web::get().to(list_imports)))
    .service(resource("/conflicts").route(web::get().to(list_conflicts)));
}

/// A page of datasets.
#[derive(Debug, Serialize, ToSchema)]
pub struct DatasetPage {
    /// The datasets, by name (only the `fields` asked for).
    #[schema(value_type = Vec<DatasetResponse>)]
    pub items: Vec<Value>,
    /// The cursor of the next page; `null` after the last.
    pub next_cursor: Option<String>,
}

/// A page of records.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordPage {
    /// The records, by canonical key (only the `fields` asked for).
    #[schema(value_type = Vec<RecordResponse>)]
    pub items: Vec<Value>,
    /// The cursor of the next page; `null` after the last.
    pub next_cursor: Option<String>,
    /// Records matching the filters, over all pages.
    pub total: u64,
}

/// A page of imports.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportPage {
    /// The imports, newest first (only the `fields` asked for).
    #[schema(value_type = Vec<ImportResponse>)]
    pub items: Vec<Value>,
    /// The cursor of the next (older) page; `null` after the last.
    pub next_cursor: Option<String>,
}

/// A page of conflicts.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConflictPage {
    /// The conflicts, in the order they were found (only the `fields` asked for).
    #[schema(value_type = Vec<ConflictResponse>)]
    pub items: Vec<Value>,
    /// The cursor of the next page; `null` after the last.
    pub next_cursor: Option<String>,
}

/// A percentile of a group's values.
#[derive(Debug, Serialize, ToSchema)]
pub struct PercentileResponse {
    /// The fraction asked for, from 0 to 1.
    pub fraction: f64,
    /// The value (linear interpolation between closest ranks).
    pub value: f64,
}

/// One measure's statistics in one group. With every record of the group excluded
/// (an undefined ratio), `count` is 0 and the statistics are `null`.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatisticsResponse {
    /// Values aggregated.
    pub count: u64,
    /// Their sum.
    pub sum: Option<f64>,
    /// Their mean.
    pub mean: Option<f64>,
    /// Population standard deviation.
    pub stddev: Option<f64>,
    /// The smallest.
    pub min: Option<f64>,
    /// The largest.
    pub max: Option<f64>,
    /// The percentiles asked for, in the order asked.
    pub percentiles: Vec<PercentileResponse>,
    /// Records of the group without this measure, left out.
    pub excluded: u64,
}

impl From<&GroupAggregate> for StatisticsResponse {
    fn from(g: &GroupAggregate) -> Self {
        let a = g.aggregate.as_ref();
        Self {
            count: a.map_or(0, |a| a.count),
            sum: a.map(|a| a.sum),
            mean: a.map(|a| a.mean),
            stddev: a.map(|a| a.stddev),
            min: a.map(|a| a.min),
            max: a.map(|a| a.max),
            percentiles: a.map_or_else(Vec::new, |a| {
                a.percentiles
                    .iter()
                    .map(|&(fraction, value)| PercentileResponse { fraction, value })
                    .collect()
            }),
            excluded: g.excluded,
        }
    }
}

/// One group of a v2 aggregate.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupStatisticsResponse {
    /// The group's value of `group_by` (`null` without grouping).
    pub group: Option<String>,
    /// Each measure's statistics, by measure (only the `fields` asked for).
    #[schema(value_type = BTreeMap<String, StatisticsResponse>)]
    pub measures: BTreeMap<String, Value>,
}

/// Several measures aggregated per group.
#[derive(Debug, Serialize, ToSchema)]
pub struct AggregatesResponse {
    /// The dataset.
    pub dataset: String,
    /// The measures aggregated, in the order asked.
    pub measures: Vec<String>,
    /// The percentiles computed, in the order asked.
    pub percentiles: Vec<f64>,
    /// The dimension grouped by (`null`: one group of every record).
    pub group_by: Option<String>,
    /// The dimension filters applied.
    pub filters: BTreeMap<String, String>,
    /// One entry per group with at least one record, by group.
    pub groups: Vec<GroupStatisticsResponse>,
}

/// What a cursor points after: which list (and which dataset) it belongs to, and
/// the position. Opaque to clients: hex of `kind \n scope \n position`.
struct Cursor {
    kind: &'static str,
    scope: String,
    position: String,
}

impl Cursor {
    fn encode(&self) -> String {
        format!("{}\n{}\n{}", self.kind, self.scope, self.position)
            .bytes()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The position of `text`, a cursor of this kind and scope.
    fn decode(text: &str, kind: &str, scope: &str) -> Result<String, ApiError> {
        let bad = || {
            ApiError::field(
                "cursor",
                "not a cursor of this list: pass next_cursor from the previous page as it was",
            )
        };
        if !text.len().is_multiple_of(2) || text.len() > 4096 {
            return Err(bad());
        }
        let bytes = (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
            .collect::<Option<Vec<u8>>>()
            .ok_or_else(bad)?;
        let text = String::from_utf8(bytes).map_err(|_| bad())?;
        let mut parts = text.splitn(3, '\n');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(k), Some(s), Some(position)) if k == kind && s == scope => {
                Ok(position.to_owned())
            }
            _ => Err(bad()),
        }
    }
}

/// The `limit` (1–1000, default 100), the `cursor` and the `fields` of a list, taken
/// out of the query.
struct Paging {
    limit: u32,
    cursor: Option<String>,
    fields: Option<BTreeSet<String>>,
}

impl Paging {
    fn take(query: &mut BTreeMap<String, String>, known: &[&str]) -> Result<Self, ApiError> {
        let limit = number::<u32>(query, "limit")?.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            let message = format!("limit must be between 1 and {MAX_PAGE}");
            return Err(ApiError::field("limit", message));
        }
        query.remove("limit");
        Ok(Self {
            limit,
            cursor: query.remove("cursor").filter(|c| !c.is_empty()),
            fields: fields(query.remove("fields"), known)?,
        })
    }
}

impl Paging {
    /// The position the `cursor` names in the list `kind` of `scope` (a dataset, or
    /// `""`), if there is a cursor.
    fn position(&self, kind: &str, scope: &str) -> Result<Option<String>, ApiError> {
        self.cursor
            .as_deref()
            .map(|c| Cursor::decode(c, kind, scope))
            .transpose()
    }

    /// The page of `found` (fetched with one item more than the limit, to tell whether
    /// more follow): each item as `view` shows it, sparse, and the cursor `after` gives
    /// for the last one (given how many items the page has), or `None` on the last page.
    fn page<T, R: Serialize>(
        &self,
        found: Vec<T>,
        view: impl Fn(&T) -> R,
        after: impl Fn(usize, &T) -> String,
    ) -> Result<(Vec<Value>, Option<String>), ApiError> {
        let (page, more) = split_page(found, self.limit);
        let next_cursor = if more {
            page.last().map(|last| after(page.len(), last))
        } else {
            None
        };
        let items = page
            .iter()
            .map(|item| sparse(&view(item), self.fields.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok((items, next_cursor))
    }

    /// The paging of a list that takes no other parameter: any other is a `400`.
    fn only(mut query: BTreeMap<String, String>, known: &[&str]) -> Result<Self, ApiError> {
        let paging = Self::take(&mut query, known)?;
        match query.into_keys().next() {
            Some(extra) => Err(ApiError::field(extra, "not a parameter of this list")),
            None => Ok(paging),
        }
    }
}

/// `fields=a,b`: the member names to keep, each one of `known`.
fn fields(text: Option<String>, known: &[&str]) -> Result<Option<BTreeSet<String>>, ApiError> {
    let Some(text) = text else {
        return Ok(None);
    };
    let names: BTreeSet<String> = text
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect();
    if let Some(unknown) = names.iter().find(|n| !known.contains(&n.as_str())) {
        let message = format!(
            "unknown field {unknown:?}; the fields are {}",
            known.join(", ")
        );
        return Err(ApiError::field("fields", message));
    }
    if names.is_empty() {
        return Err(ApiError::field("fields", "name at least one field"));
    }
    Ok(Some(names))
}

/// `item` as JSON with only the `fields` asked for.
fn sparse(item: &impl Serialize, fields: Option<&BTreeSet<String>>) -> Result<Value, ApiError> {
    let value = serde_json::to_value(item).map_err(|e| ApiError::Internal(e.into()))?;
    Ok(match (value, fields) {
        (Value::Object(members), Some(fields)) => Value::Object(
            members
                .into_iter()
                .filter(|(k, _)| fields.contains(k))
                .collect::<Map<_, _>>(),
        ),
        (value, _) => value,
    })
}

/// The first `limit` of `items` (asked for one more), and whether there are more.
fn split_page<T>(mut items: Vec<T>, limit: u32) -> (Vec<T>, bool) {
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    (items, more)
}

/// List datasets by name, a page at a time.
#[utoipa::path(get, path = "/v2/datasets", tag = "v2",
    params(("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Page size (default 100)"),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
           ("fields" = Option<String>, Query, description = "Members to keep, comma-separated: name, current_contract, revision, created_at")),
    responses(
        (status = 200, description = "A page of datasets", body = DatasetPage),
        (status = 400, description = "Malformed limit, cursor or fields", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list_datasets(
    state: web::Data<ApiState>,
    query: web::Query<BTreeMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let paging = Paging::only(query.into_inner(), DATASET_FIELDS)?;
    let after = paging.position("datasets", "")?;
    let datasets = state.datasets.list().await?;
    let rest: Vec<_> = datasets
        .iter()
        .filter(|d| after.as_deref().is_none_or(|a| d.name.as_str() > a))
        .take(paging.limit as usize + 1)
        .collect();
    let (items, next_cursor) = paging.page(
        rest,
        |d| DatasetResponse::new(d, None),
        |_, d| cursor("datasets", "", d.name.to_string()),
    )?;
    Ok(HttpResponse::Ok().json(DatasetPage { items, next_cursor }))
}

/// List records by canonical key, a page at a time; records added while a client
/// pages through do not shift the pages. Parameters other than `limit`, `cursor`,
/// `fields` and `updated_since` are filters on fields, as in v1: a name given several
/// times matches any of its values.
#[utoipa::path(get, path = "/v2/datasets/{dataset}/records", tag = "v2",
    params(("dataset" = String, Path, pattern = r"^[a-z][a-z0-9_-]{0,62}$", description = "The dataset's name"),
           ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Page size (default 100)"),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
           ("fields" = Option<String>, Query, description = "Members to keep, comma-separated: key, key_components, version, dimensions, measures, attributes, import_id, updated_at"),
           ("updated_since" = Option<String>, Query, format = DateTime, description = "Only records committed at or after this time (RFC 3339)"),
           ("filters" = Option<BTreeMap<String, String>>, Query, style = Form, explode,
            description = "`<field>=<value>` pairs, all of which must hold; a field given several times matches any of its values")),
    responses(
        (status = 200, description = "A page of records", body = RecordPage, headers(("ETag" = String, description = "W/\"<created>-<contract>-<revision>\": changes when an import commits"), ("Cache-Control" = String, description = "no-cache"))),
        (status = 304, description = "Not modified: If-None-Match names the current ETag; no body", headers(("ETag" = String, description = "W/\"<created>-<contract>-<revision>\": changes when an import commits"), ("Cache-Control" = String, description = "no-cache"))),
        (status = 400, description = "Malformed name, limit, cursor, fields or filter", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such dataset", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list_records(
    state: web::Data<ApiState>,
    path: web::Path<String>,
    query: web::Query<Vec<(String, String)>>,
) -> Result<HttpResponse, ApiError> {
    let name = dataset_name(&path)?;
    let reserved = ["limit", "cursor", "fields"];
    let (mut paging, filters) = super::records::record_filter(query.into_inner(), &reserved)?;
    let paging = Paging::take(&mut paging, RECORD_FIELDS)?;
    let after = paging.position("records", name.as_str())?;
    let query = RecordQuery {
        filters,
        order: intake_domain::ports::RecordOrder::Key,
        limit: paging.limit + 1,
        offset: 0,
        after,
    };
    let found = state.datasets.records(&name, &query).await?;
    let (items, next_cursor) = paging.page(
        found.records,
        |r| RecordResponse::from(r),
        |_, r| cursor("records", name.as_str(), r.record.key.canonical()),
    )?;
    Ok(HttpResponse::Ok().json(RecordPage {
        items,
        next_cursor,
        total: found.total,
    }))
}

/// The cursor after `position` in the list `kind` of `scope`.
fn cursor(kind: &'static str, scope: &str, position: String) -> String {
    Cursor {
        kind,
        scope: scope.to_owned(),
        position,
    }
    .encode()
}

/// List a dataset's imports, newest first, a page at a time; imports arriving while a
/// client pages through do not shift the pages.
#[utoipa::path(get, path = "/v2/datasets/{dataset}/imports", tag = "v2",
    params(("dataset" = String, Path, pattern = r"^[a-z][a-z0-9_-]{0,62}$", description = "The dataset's name"),
           ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Page size (default 100)"),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
           ("fields" = Option<String>, Query, description = "Members to keep, comma-separated: id, dataset, contract_version, content_type, source, size, sha256, received_at, status, report")),
    responses(
        (status = 200, description = "A page of imports", body = ImportPage),
        (status = 400, description = "Malformed name, limit, cursor or fields", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such dataset", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list_imports(
    state: web::Data<ApiState>,
    path: web::Path<String>,
    query: web::Query<BTreeMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let name = dataset_name(&path)?;
    let paging = Paging::only(query.into_inner(), IMPORT_FIELDS)?;
    let limit = paging.limit + 1;
    let found = match paging.position("imports", name.as_str())? {
        None => state.imports.list(&name, limit, 0).await?,
        Some(before) => {
            let before = super::import_id("cursor", &before)?;
            state.imports.list_before(&name, &before, limit).await?
        }
    };
    let (items, next_cursor) = paging.page(
        found,
        |i| super::imports::answer(&state, i),
        |_, i| cursor("imports", name.as_str(), i.id.to_string()),
    )?;
    Ok(HttpResponse::Ok().json(ImportPage { items, next_cursor }))
}

/// List conflicts in the order they were found, a page at a time.
#[utoipa::path(get, path = "/v2/datasets/{dataset}/conflicts", tag = "v2",
    params(("dataset" = String, Path, pattern = r"^[a-z][a-z0-9_-]{0,62}$", description = "The dataset's name"),
           ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Page size (default 100)"),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
           ("fields" = Option<String>, Query, description = "Members to keep, comma-separated: import_id, kind, key, identity, differences, location")),
    responses(
        (status = 200, description = "A page of conflicts", body = ConflictPage),
        (status = 400, description = "Malformed name, limit, cursor or fields", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such dataset", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list_conflicts(
    state: web::Data<ApiState>,
    path: web::Path<String>,
    query: web::Query<BTreeMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let name = dataset_name(&path)?;
    let paging = Paging::only(query.into_inner(), CONFLICT_FIELDS)?;
    let start: u64 = match paging.position("conflicts", name.as_str())? {
        None => 0,
        Some(position) => position
            .parse()
            .map_err(|_| ApiError::field("cursor", "not a cursor of this list"))?,
    };
    let found = state
        .datasets
        .conflicts(&name, paging.limit + 1, start)
        .await?;
    let (items, next_cursor) = paging.page(
        found,
        |(import, c)| ConflictResponse::new(Some(import), c),
        |len, _| cursor("conflicts", name.as_str(), (start + len as u64).to_string()),
    )?;
    Ok(HttpResponse::Ok().json(ConflictPage { items, next_cursor }))
}

/// A comma-separated list, each item parsed.
fn list<T>(
    text: &str,
    field: &str,
    most: usize,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Vec<T>, ApiError> {
    let items: Vec<&str> = text.split(',').map(str::trim).collect();
    if items.len() > most || items.iter().any(|i| i.is_empty()) {
        let message = format!("{field}: 1 to {most} comma-separated values");
        return Err(ApiError::field(field, message));
    }
    items
        .iter()
        .map(|i| {
            parse(i).ok_or_else(|| ApiError::field(field, format!("{field}: {i:?} is not valid")))
        })
        .collect()
}

/// Aggregate several measures per group at once, with any percentiles
/// (`?measures=percent,obtained&percentiles=0.1,0.5,0.99&group_by=test_id`).
/// Parameters other than the named ones are equality filters on dimensions.
#[utoipa::path(get, path = "/v2/datasets/{dataset}/aggregate", tag = "v2",
    params(("dataset" = String, Path, pattern = r"^[a-z][a-z0-9_-]{0,62}$", description = "The dataset's name"),
           ("measures" = String, Query, description = "1 to 10 measures, comma-separated", example = "percent,obtained"),
           ("percentiles" = Option<String>, Query, description = "Up to 20 fractions from 0 to 1, comma-separated (default 0.25,0.5,0.75)", example = "0.1,0.5,0.99"),
           ("group_by" = Option<String>, Query, description = "A dimension to group by; without it, one group of every record"),
           ("fields" = Option<String>, Query, description = "Statistics to keep, comma-separated: count, sum, mean, stddev, min, max, percentiles, excluded"),
           ("filters" = Option<BTreeMap<String, String>>, Query, style = Form, explode,
            description = "`<dimension>=<value>` pairs, all of which must hold")),
    responses(
        (status = 200, description = "The statistics of each measure, per group", body = AggregatesResponse, headers(("ETag" = String, description = "W/\"<created>-<contract>-<revision>\": changes when an import commits"), ("Cache-Control" = String, description = "no-cache"))),
        (status = 304, description = "Not modified: If-None-Match names the current ETag; no body", headers(("ETag" = String, description = "W/\"<created>-<contract>-<revision>\": changes when an import commits"), ("Cache-Control" = String, description = "no-cache"))),
        (status = 400, description = "Missing or bad measures, percentiles or fields, or a name that is not in the contract", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such dataset", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn aggregate(
    state: web::Data<ApiState>,
    path: web::Path<String>,
    query: web::Query<BTreeMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let name = dataset_name(&path)?;
    let mut filters = query.into_inner();
    let measures = filters
        .remove("measures")
        .ok_or_else(|| ApiError::field("measures", "measures is required"))?;
    let measures = list(&measures, "measures", MAX_MEASURES, |m| Some(m.to_owned()))?;
    let percentiles = match filters.remove("percentiles") {
        None => intake_domain::analytics::Aggregate::QUARTILES.to_vec(),
        Some(text) => list(&text, "percentiles", MAX_PERCENTILES, |p| {
            p.parse::<f64>().ok().filter(|f| (0.0..=1.0).contains(f))
        })?,
    };
    let fields = fields(filters.remove("fields"), STATISTICS_FIELDS)?;
    let group_by = filters.remove("group_by");
    let questions: Vec<AnalyticsQuery> = measures
        .iter()
        .map(|measure| AnalyticsQuery {
            dataset: name.clone(),
            measure: measure.clone(),
            group_by: group_by.clone(),
            filters: filters.clone(),
            percentiles: percentiles.clone(),
        })
        .collect();
    let render = || async {
        let mut groups: BTreeMap<Option<String>, BTreeMap<String, Value>> = BTreeMap::new();
        for question in &questions {
            for group in state.datasets.aggregate(question).await? {
                let statistics = sparse(&StatisticsResponse::from(&group), fields.as_ref())?;
                groups
                    .entry(group.group.clone())
                    .or_default()
                    .insert(question.measure.clone(), statistics);
            }
        }
        super::to_json(&AggregatesResponse {
            dataset: name.to_string(),
            measures: measures.clone(),
            percentiles: percentiles.clone(),
            group_by: group_by.clone(),
            filters: filters.clone(),
            groups: groups
                .into_iter()
                .map(|(group, measures)| GroupStatisticsResponse { group, measures })
                .collect(),
        })
    };
    let question = (&questions, &fields);
    let rendered = state
        .datasets
        .rendered(&name, "v2.aggregate", &question, render);
    Ok(super::json_ok(rendered.await?))
}
