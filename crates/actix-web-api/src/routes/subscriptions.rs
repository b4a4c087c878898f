//! Subscriptions: URLs that receive a dataset's events as signed webhooks (DESIGN §8).
//! Reading needs `read`; creating, changing, replaying and deleting need `admin`. The signing secret is
//! shown when a subscription is created, never in listings.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use intake_domain::delivery::Edit;
use intake_domain::ports::{
    DeliveryCounts, DeliveryInfo, DeliveryListing, DeliveryStatus, EventKind, Replay, Subscription,
    SubscriptionStatus,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::dataset_name;
use crate::error::Problem;
use crate::policy::Policy;
use crate::{ApiError, ApiState};

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        super::resource_in(super::V1_DATASET, "/subscriptions", Policy::Managed)
            .route(web::get().to(list_subscriptions))
            .route(web::post().to(create_subscription)),
    )
    .service(
        super::resource_in(
            super::V1_DATASET,
            "/subscriptions/{subscription}",
            Policy::Managed,
        )
        .route(web::get().to(get_subscription))
        .route(web::patch().to(patch_subscription))
        .route(web::delete().to(delete_subscription)),
    )
    .service(
        super::resource_in(
            super::V1_DATASET,
            "/subscriptions/{subscription}/rotate-secret",
            Policy::Managed,
        )
        .route(web::post().to(rotate_secret)),
    )
    .service(
        super::resource_in(
            super::V1_DATASET,
            "/subscriptions/{subscription}/deliveries",
            Policy::Managed,
        )
        .route(web::get().to(list_deliveries)),
    )
    .service(
        super::resource_in(
            super::V1_DATASET,
            "/subscriptions/{subscription}/deliveries/{event}/replay",
            Policy::Managed,
        )
        .route(web::post().to(replay_delivery)),
    )
    .service(
        super::resource_in(
            super::V1_DATASET,
            "/subscriptions/{subscription}/replay",
            Policy::Managed,
        )
        .route(web::post().to(replay)),
    );
}

/// Every kind of event, as clients name them.
const KINDS: [EventKind; 6] = [
    EventKind::RecordCreated,
    EventKind::RecordUpdated,
    EventKind::RecordDeleted,
    EventKind::RecordCallback,
    EventKind::ImportCompleted,
    EventKind::ImportFailed,
];

/// A new subscription.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionBody {
    /// Where events are POSTed: `http` or `https`, a public address unless the
    /// server allows private ones.
    #[schema(example = "https://example.com/webhooks/intake")]
    pub url: String,
    /// The kinds wanted: `record.created`, `record.updated`, `record.deleted`,
    /// `record.callback`, `import.completed`, `import.failed`. Absent: every kind.
    pub events: Option<Vec<String>>,
    /// The signing secret, `whsec_` and the base64 of 24 to 64 random bytes. Absent:
    /// one is generated.
    pub secret: Option<String>,
}

/// Whether a subscription is sent to.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionStatusResponse {
    /// Deliveries are sent.
    Active,
    /// Deliveries wait; nothing is lost.
    Paused,
    /// Every delivery failed for too long; deliveries wait.
    Disabled,
}

impl From<SubscriptionStatus> for SubscriptionStatusResponse {
    fn from(s: SubscriptionStatus) -> Self {
        match s {
            SubscriptionStatus::Active => Self::Active,
            SubscriptionStatus::Paused => Self::Paused,
            SubscriptionStatus::Disabled => Self::Disabled,
        }
    }
}

/// Where a subscription's deliveries stand.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryCountsResponse {
    /// Waiting to be sent or retried.
    pub pending: u64,
    /// Answered 2xx.
    pub delivered: u64,
    /// Given up after the last attempt.
    pub dead: u64,
    /// The last 2xx.
    pub last_success_at: Option<DateTime<Utc>>,
    /// The last failed attempt.
    pub last_failure_at: Option<DateTime<Utc>>,
    /// Its status code, when the receiver answered.
    pub last_failure_status: Option<u16>,
}

impl From<DeliveryCounts> for DeliveryCountsResponse {
    fn from(c: DeliveryCounts) -> Self {
        Self {
            pending: c.pending,
            delivered: c.delivered,
            dead: c.dead,
            last_success_at: c.last_success_at,
            last_failure_at: c.last_failure_at,
            last_failure_status: c.last_failure_status,
        }
    }
}

/// A subscription.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionResponse {
    /// Its id.
    pub id: String,
    /// Its dataset.
    pub dataset: String,
    /// Where events are POSTed.
    pub url: String,
    /// The kinds it receives.
    pub events: Vec<String>,
    /// The signing secret: only in the answer that created it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Whether it is sent to.
    pub status: SubscriptionStatusResponse,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Its deliveries: only when one subscription is read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deliveries: Option<DeliveryCountsResponse>,
}

impl SubscriptionResponse {
    fn new(s: &Subscription) -> Self {
        let kinds = s.events.as_deref().unwrap_or(&KINDS);
        Self {
            id: s.id.clone(),
            dataset: s.dataset.to_string(),
            url: s.url.clone(),
            events: kinds.iter().map(|k| k.as_str().to_owned()).collect(),
            secret: None,
            status: s.status.into(),
            created_at: s.created_at,
            deliveries: None,
        }
    }
}

/// A dataset's subscriptions.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionListResponse {
    /// Oldest first.
    pub subscriptions: Vec<SubscriptionResponse>,
}

/// The kinds named in a body, each checked.
fn kinds(names: Option<&Vec<String>>) -> Result<Option<Vec<EventKind>>, ApiError> {
    let Some(names) = names else {
        return Ok(None);
    };
    if names.is_empty() {
        return Err(ApiError::field(
            "events",
            "name at least one kind of event, or leave `events` out for every kind",
        ));
    }
    names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            KINDS
                .into_iter()
                .find(|k| k.as_str() == name)
                .ok_or_else(|| {
                    let known: Vec<&str> = KINDS.iter().map(|k| k.as_str()).collect();
                    ApiError::field(
                        format!("events[{i}]"),
                        format!("unknown event kind {name:?}; known: {}", known.join(", ")),
                    )
                })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Subscribe a URL to a dataset's events. The answer shows the signing secret, once.
#[utoipa::path(post, path = "/v1/datasets/{dataset}/subscriptions", tag = "subscriptions",
    params(("dataset" = String, Path, pattern = r"^[a-z][a-z0-9_-]{0,62}$", description = "The dataset's name")),
    request_body = SubscriptionBody,
    responses(
        (status = 201, description = "Subscribed; the secret is shown this once", body = SubscriptionResponse,
         headers(("Location" = String, description = "The subscription's URL"))),
        (status = 400, description = "Malformed body, an unknown kind, a refused URL or a malformed secret", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such dataset", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn create_subscription(
    state: web::Data<ApiState>,
    path: web::Path<String>,
    body: web::Json<SubscriptionBody>,
) -> Result<HttpResponse, ApiError> {
    let name = dataset_name(&path)?;
    let events = kinds(body.events.as_ref())?;
    let created = state
        .deliveries
        .subscribe(&name, &body.url, events, body.secret.clone())
        .await?;
    let mut answer = SubscriptionResponse::new(&created);
    answer.secret = Some(created.secret.clone());
    Ok(HttpResponse::Created()
        .insert_header((
            header::LOCATION,
            format!("/v1/datasets/{name}/subscriptions/{}", created.id),
        ))
        .json(answer))
}

/// List a dataset's subscriptions (without their secrets).
#[utoipa::path(get, path = "/v1/datasets/{dataset}/subscriptions", tag = "subscriptions",
    params(("dataset" = String, Path, pattern = r"^[a-z][a-z0-9_-]{0,62}$", description = "The dataset's name")),
    responses(
        (status = 200, description = "The subscriptions", body = SubscriptionListResponse),
        (status = 400, description = "Malformed name", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list_subscriptions(
    state: web::Data<ApiState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = dataset_name(&path)?;
    let subscriptions = state.deliveries.list(&name).await?;
    let subscriptions = subscriptions
        .iter()
        .map(SubscriptionResponse::new)
        .collect();
    Ok(HttpResponse::Ok().json(SubscriptionListResponse { subscriptions }))
}

/// Read a subscription with where its deliveries stand (without its secret).
#[utoipa::path(get, path = "/v1/datasets/{dataset}/subscriptions/{subscription}", tag = "subscriptions",
    params(("dataset" = String, Path, pattern = r"^[a-z][a-z0-9_-]{0,62}$", description = "The dataset's name"),
           ("subscription" = String, Path, description = "The subscription's id")),
    responses(
        (status = 200, description = "The subscription and its delivery counts", body = SubscriptionResponse),
        (status = 400, description = "Malformed name", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such subscription in this dataset", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn get_subscription(
    state: web::Data<ApiState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (name, id) = path.into_inner();
    let name = dataset_name(&name)?;
    let (subscription, counts) = state.deliveries.get(&name, &id).await?;
    let mut answer = SubscriptionResponse::new(&subscription);
    answer.deliveries = Some(counts.into());
    Ok(HttpResponse::Ok().json(answer))
}

/// Delete a subscription; its pending deliveries are dropped.
#[utoipa::path(delete, path = "/v1/datasets/{dataset}/subscriptions/{subscription}", tag = "subscriptions",
    params(("dataset" = String, Path, pattern = r"^[a-z][a-z0-9_-]{0,62}$", description = "The dataset's name"),
           ("subscription" = String, Path, description = "The subscription's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Malformed name", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such subscription in this dataset", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn delete_subscription(
    state: web::Data<ApiState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (name, id) = path.into_inner();
    let name = dataset_name(&name)?;
    state.deliveries.unsubscribe(&name, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Changes to a subscription; each member is optional.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionPatch {
    /// `true` pauses (deliveries wait, nothing is lost); `false` resumes, and also
    /// re-enables a disabled subscription.
    pub paused: Option<bool>,
    /// A new URL, checked as at creation.
    pub url: Option<String>,
    /// New kinds (at least one).
    pub events: Option<Vec<String>>,
}

/// Which deliveries to send again.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayBody {
    /// `dead`: every dead delivery.
    pub status: Option<String>,
    /// Every delivery of an event written at or after this time, whatever its status.
    pub since: Option<DateTime<Utc>>,
}

/// How many deliveries were made pending again.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReplayResponse {
    /// Deliveries queued again (a delivery being sent at that moment is left alone).
    pub replayed: u64,
}

/// Where a delivery is in its life.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatusResponse {
    /// Waiting to be sent or retried.
    Pending,
    /// Answered 2xx.
    Delivered,
    /// Given up after the last attempt; can be replayed.
    Dead,
}

impl From<DeliveryStatus> for DeliveryStatusResponse {
    fn from(s: DeliveryStatus) -> Self {
        match s {
            DeliveryStatus::Pending => Self::Pending,
            DeliveryStatus::Delivered => Self::Delivered,
            DeliveryStatus::Dead => Self::Dead,
        }
    }
}

/// One event sent (or to be sent) to the subscription.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryResponse {
    /// The event's id: the `webhook-id` it is sent with.
    pub event_id: String,
    /// Its kind.
    pub kind: String,
    /// Its sequence in the dataset.
    pub sequence: i64,
    /// When the event was written.
    pub created_at: DateTime<Utc>,
    /// Where the delivery is.
    pub status: DeliveryStatusResponse,
    /// Attempts so far.
    pub attempts: u32,
    /// The last attempt's status code, when the receiver answered.
    pub last_status_code: Option<u16>,
    /// What went wrong at the last attempt.
    pub last_error: Option<String>,
    /// When the last attempt was made.
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// When the next attempt is due (pending deliveries).
    pub next_attempt_at: Option<DateTime<Utc>>,
}

impl From<&DeliveryInfo> for DeliveryResponse {
    fn from(d: &DeliveryInfo) -> Self {
        Self {
            event_id: d.event.clone(),
            kind: d.kind.as_str().to_owned(),
            sequence: d.sequence,
            created_at: d.created_at,
            status: d.status.into(),
            attempts: d.attempts,
            last_status_code: d.last_status,
            last_error: d.last_error.clone().filter(|e| !e.is_empty()),
            last_attempt_at: d.last_attempt_at,
            next_attempt_at: d.next_attempt_at,
        }
    }
}

/// A page of deliveries, newest event first.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryPageResponse {
    /// The deliveries.
    pub items: Vec<DeliveryResponse>,
    /// Pass it back as `cursor` for the next page; `null` after the last.
    pub next_cursor: Option<String>,
}

/// Which deliveries to list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    /// `pending`, `delivered` or `dead`; all when absent.
    pub status: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Pause, resume or re-point a subscription.
#[utoipa::path(patch, path = "/v1/datasets/{dataset}/subscriptions/{subscription}", tag = "subscriptions",
    params(("dataset" = String, Path, pattern = r"^[a-z][a-z0-9_-]{0,62}$", description = "The dataset's name"),
           ("subscription" = String, Path, description = "The subscription's id")),
    request_body = SubscriptionPatch,
    responses(
        (status = 200, description = "The subscription as it now is", body = SubscriptionResponse),
        (status = 400, description = "Malformed body, an unknown kind or a refused URL", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such subscription in this dataset", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn patch_subscription(
    state: web::Data<ApiState>,
    path: web::Path<(String, String)>,
    body: web::Json<SubscriptionPatch>,
) -> Result<HttpResponse, ApiError> {
    let (name, id) = path.into_inner();
    let name = dataset_name(&name)?;
    let events = kinds(body.events.as_ref())?;
    let edit = Edit {
        paused: body.paused,
        url: body.url.clone(),
        events: events.map(Some),
    };
    let changed = state.deliveries.edit(&name, &id, edit).await?;
    Ok(HttpResponse::Ok().json(SubscriptionResponse::new(&changed)))
}

/// Give a subscription a new signing secret, shown in this answer only; the next
/// attempts are signed with it.
#[utoipa::path(post, path = "/v1/datasets/{dataset}/subscriptions/{subscription}/rotate-secret", tag = "subscriptions",
    params(("dataset" = String, Path, pattern = r"^[a-z][a-z0-9_-]{0,62}$", description = "The dataset's name"),
           ("subscription" = String, Path, description = "The subscription's id")),
    responses(
        (status = 200, description = "The subscription with its new secret", body = SubscriptionResponse),
        (status = 404, description = "No such subscription in this dataset", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn rotate_secret(
    state: web::Data<ApiState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (name, id) = path.into_inner();
    let name = dataset_name(&name)?;
    let rotated = state.deliveries.rotate_secret(&name, &id).await?;
    let mut answer = SubscriptionResponse::new(&rotated);
    answer.secret = Some(rotated.secret.clone());
    Ok(HttpResponse::Ok().json(answer))
}

/// List a subscription's deliveries, newest event first.
#[utoipa::path(get, path = "/v1/datasets/{dataset}/subscriptions/{subscription}/deliveries", tag = "subscriptions",
    params(("dataset" = String, Path, pattern = r"^[a-z][a-z0-9_-]{0,62}$", description = "The dataset's name"),
           ("subscription" = String, Path, description = "The subscription's id"),
           DeliveryQuery),
    responses(
        (status = 200, description = "A page of deliveries", body = DeliveryPageResponse),
        (status = 400, description = "Malformed status, limit or cursor", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such subscription in this dataset", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list_deliveries(
    state: web::Data<ApiState>,
    path: web::Path<(String, String)>,
    query: web::Query<DeliveryQuery>,
) -> Result<HttpResponse, ApiError> {
    let (name, id) = path.into_inner();
    let name = dataset_name(&name)?;
    let status = match query.status.as_deref() {
        None => None,
        Some(text) => Some(
            DeliveryStatus::parse(text)
                .ok_or_else(|| ApiError::field("status", "one of pending, delivered, dead"))?,
        ),
    };
    let limit = super::page_limit(query.limit)?;
    let before = super::sequence_cursor(query.cursor.as_deref())?;
    let listing = DeliveryListing {
        status,
        before,
        limit,
    };
    let page = state.deliveries.deliveries(&name, &id, &listing).await?;
    let next_cursor = (page.len() == limit as usize)
        .then(|| page.last().map(|d| d.sequence.to_string()))
        .flatten();
    let items = page.iter().map(DeliveryResponse::from).collect();
    Ok(HttpResponse::Ok().json(DeliveryPageResponse { items, next_cursor }))
}

/// Send one event to the subscription again, from a first attempt.
#[utoipa::path(post, path = "/v1/datasets/{dataset}/subscriptions/{subscription}/deliveries/{event}/replay", tag = "subscriptions",
    params(("dataset" = String, Path, pattern = r"^[a-z][a-z0-9_-]{0,62}$", description = "The dataset's name"),
           ("subscription" = String, Path, description = "The subscription's id"),
           ("event" = String, Path, description = "The event's id")),
    responses(
        (status = 202, description = "Queued again", body = ReplayResponse),
        (status = 404, description = "No such subscription, or no such delivery of it", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn replay_delivery(
    state: web::Data<ApiState>,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (name, id, event) = path.into_inner();
    let name = dataset_name(&name)?;
    let replayed = state
        .deliveries
        .replay(&name, &id, &Replay::Event(event))
        .await?;
    if replayed == 0 {
        return Err(ApiError::NotFound(
            "no such delivery of this subscription (or it is being sent right now)".into(),
        ));
    }
    Ok(HttpResponse::Accepted().json(ReplayResponse { replayed }))
}

/// Send again every dead delivery of the subscription (`{"status": "dead"}`), or every
/// delivery of an event written since a time (`{"since": "…"}`), from a first attempt.
#[utoipa::path(post, path = "/v1/datasets/{dataset}/subscriptions/{subscription}/replay", tag = "subscriptions",
    params(("dataset" = String, Path, pattern = r"^[a-z][a-z0-9_-]{0,62}$", description = "The dataset's name"),
           ("subscription" = String, Path, description = "The subscription's id")),
    request_body = ReplayBody,
    responses(
        (status = 202, description = "Queued again", body = ReplayResponse),
        (status = 400, description = "Neither or both of status and since", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such subscription in this dataset", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn replay(
    state: web::Data<ApiState>,
    path: web::Path<(String, String)>,
    body: web::Json<ReplayBody>,
) -> Result<HttpResponse, ApiError> {
    let (name, id) = path.into_inner();
    let name = dataset_name(&name)?;
    let replay = match (body.status.as_deref(), body.since) {
        (Some("dead"), None) => Replay::Dead,
        (None, Some(since)) => Replay::Since(since),
        (Some(_), None) => {
            return Err(ApiError::field(
                "status",
                "only dead deliveries are replayed by status",
            ));
        }
        _ => {
            return Err(ApiError::field(
                "status",
                "name either {\"status\": \"dead\"} or {\"since\": \"<RFC 3339>\"}",
            ));
        }
    };
    let replayed = state.deliveries.replay(&name, &id, &replay).await?;
    Ok(HttpResponse::Accepted().json(ReplayResponse { replayed }))
}
