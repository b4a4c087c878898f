//! Aggregates and top-k over a dataset's latest state (DESIGN §7). Query parameters
//! other than the named ones are equality filters on dimensions, as for records.

use std::collections::BTreeMap;

use actix_web::middleware::from_fn;
use actix_web::{HttpResponse, web};
use intake_domain::analytics::Aggregate;
use intake_domain::ports::{AnalyticsQuery, TopQuery};

use super::{dataset_name, json_ok, to_json};
use crate::conditional::conditional;
use crate::dto::{AggregateResponse, GroupAggregateResponse, TopGroupResponse, TopResponse};
use crate::error::Problem;
use crate::policy::Policy;
use crate::{ApiError, ApiState};

/// `k` when the client names none.
const DEFAULT_K: u32 = 10;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        super::resource_in(super::V1_DATASET, "/aggregate", Policy::Export)
            .route(web::get().to(aggregate))
            .wrap(from_fn(conditional)),
    )
    .service(
        super::resource_in(super::V1_DATASET, "/top", Policy::Api)
            .route(web::get().to(top))
            .wrap(from_fn(conditional)),
    );
}

/// Takes a required parameter out of the query.
fn required(query: &mut BTreeMap<String, String>, name: &str) -> Result<String, ApiError> {
    query
        .remove(name)
        .ok_or_else(|| ApiError::field(name, format!("{name} is required")))
}

/// Aggregate a measure per group: count, sum, mean, population standard deviation,
/// min, max and the quartiles (linear interpolation). Records without the measure (an
/// undefined ratio) are left out and counted as `excluded`. Answers are cached until
/// the next committed import. `Accept: text/csv` answers a row per group (`group`,
/// `count`, `sum`, `mean`, `stddev`, `min`, `p25`, `p50`, `p75`, `max`, `excluded`),
/// `Accept: application/x-ndjson` a JSON object per group.
#[utoipa::path(get, path = "/v1/datasets/{dataset}/aggregate", tag = "analytics",
    params(("dataset" = String, Path, pattern = r"^[a-z][a-z0-9_-]{0,62}$", description = "The dataset's name"),
           ("measure" = String, Query, description = "The measure to aggregate", example = "percent"),
           ("group_by" = Option<String>, Query, description = "A dimension to group by; without it, one group of every record", example = "test_id"),
           ("filters" = Option<BTreeMap<String, String>>, Query, style = Form, explode,
            description = "`<dimension>=<value>` pairs, all of which must hold")),
    responses(
        (status = 200, description = "The aggregates, one per group", body = AggregateResponse, headers(("ETag" = String, description = "W/\"<created>-<contract>-<revision>\": changes when an import commits"), ("Cache-Control" = String, description = "no-cache"))),
        (status = 304, description = "Not modified: If-None-Match names the current ETag; no body", headers(("ETag" = String, description = "W/\"<created>-<contract>-<revision>\": changes when an import commits"), ("Cache-Control" = String, description = "no-cache"))),
        (status = 400, description = "Missing measure, or a name that is not in the contract", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such dataset", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn aggregate(
    state: web::Data<ApiState>,
    path: web::Path<String>,
    query: web::Query<BTreeMap<String, String>>,
    req: actix_web::HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let name = dataset_name(&path)?;
    let mut filters = query.into_inner();
    let measure = required(&mut filters, "measure")?;
    let group_by = filters.remove("group_by");
    let question = AnalyticsQuery {
        dataset: name,
        measure,
        group_by,
        filters,
        percentiles: Aggregate::QUARTILES.to_vec(),
    };
    if let Some(format) = crate::export::requested(&req) {
        let groups = state.datasets.aggregate(&question).await?;
        let groups: Vec<GroupAggregateResponse> =
            groups.iter().map(GroupAggregateResponse::from).collect();
        return Ok(crate::export::groups(&groups, format));
    }
    let render = || async {
        let groups = state.datasets.aggregate(&question).await?;
        to_json(&AggregateResponse {
            dataset: question.dataset.to_string(),
            measure: question.measure.clone(),
            group_by: question.group_by.clone(),
            filters: question.filters.clone(),
            groups: groups.iter().map(GroupAggregateResponse::from).collect(),
        })
    };
    let rendered = state
        .datasets
        .rendered(&question.dataset, "v1.aggregate", &question, render);
    Ok(json_ok(rendered.await?))
}

/// The `k` records with the highest value of a measure in each group, highest first,
/// ties by key (`?measure=tokens&group_by=subtype&k=3`). Records without the measure
/// are left out.
#[utoipa::path(get, path = "/v1/datasets/{dataset}/top", tag = "analytics",
    params(("dataset" = String, Path, pattern = r"^[a-z][a-z0-9_-]{0,62}$", description = "The dataset's name"),
           ("measure" = String, Query, description = "The measure to rank by", example = "tokens"),
           ("group_by" = String, Query, description = "The dimension to group by", example = "subtype"),
           ("k" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Records per group (default 10)"),
           ("filters" = Option<BTreeMap<String, String>>, Query, style = Form, explode,
            description = "`<dimension>=<value>` pairs, all of which must hold")),
    responses(
        (status = 200, description = "The top records per group", body = TopResponse, headers(("ETag" = String, description = "W/\"<created>-<contract>-<revision>\": changes when an import commits"), ("Cache-Control" = String, description = "no-cache"))),
        (status = 304, description = "Not modified: If-None-Match names the current ETag; no body", headers(("ETag" = String, description = "W/\"<created>-<contract>-<revision>\": changes when an import commits"), ("Cache-Control" = String, description = "no-cache"))),
        (status = 400, description = "Missing or bad parameter, or a name that is not in the contract", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such dataset", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn top(
    state: web::Data<ApiState>,
    path: web::Path<String>,
    query: web::Query<BTreeMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let name = dataset_name(&path)?;
    let mut filters = query.into_inner();
    let measure = required(&mut filters, "measure")?;
    let group_by = required(&mut filters, "group_by")?;
    let k = match filters.remove("k") {
        None => DEFAULT_K,
        Some(k) => k
            .parse()
            .map_err(|_| ApiError::field("k", "k must be a whole number from 1 to 1000"))?,
    };
    let question = TopQuery {
        dataset: name,
        measure,
        group_by,
        filters,
        k,
    };
    let render = || async {
        let top = state.datasets.top(&question).await?;
        to_json(&TopResponse {
            dataset: question.dataset.to_string(),
            measure: question.measure.clone(),
            group_by: question.group_by.clone(),
            k: question.k,
            groups: TopGroupResponse::group(&top),
        })
    };
    let rendered = state
        .datasets
        .rendered(&question.dataset, "v1.top", &question, render);
    Ok(json_ok(rendered.await?))
}
