//! Callback timers (DESIGN §8) and their outcome, so an operator can see what fired
//! when without a receiver: pending, fired (with its lateness and the event it wrote)
//! or cancelled by a newer version. Settled timers stay listed for
//! `callback_retention`.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use intake_domain::ports::{CallbackInfo, CallbackListing, CallbackStatus};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::dataset_name;
use crate::error::Problem;
use crate::policy::Policy;
use crate::{ApiError, ApiState};

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        super::resource_in(super::V1_DATASET, "/callbacks", Policy::Api)
            .route(web::get().to(list_callbacks)),
    );
}

/// Where a callback timer is in its life.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallbackStatusResponse {
    /// Waiting to be due.
    Pending,
    /// Fired: its `record.callback` event was written.
    Fired,
    /// A newer version of its record arrived first.
    Cancelled,
}

impl From<CallbackStatus> for CallbackStatusResponse {
    fn from(s: CallbackStatus) -> Self {
        match s {
            CallbackStatus::Pending => Self::Pending,
            CallbackStatus::Fired => Self::Fired,
            CallbackStatus::Cancelled => Self::Cancelled,
        }
    }
}

/// One callback timer and its outcome.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallbackResponse {
    /// Its id (the listing's order, newest first).
    pub id: i64,
    /// The record's key, canonical.
    pub key: String,
    /// The record's version it is for.
    pub version: Option<i64>,
    /// The import that accepted that version.
    pub import: String,
    /// When it is (or was) due.
    pub due_at: DateTime<Utc>,
    /// Where it is.
    pub status: CallbackStatusResponse,
    /// When it fired or was cancelled.
    pub settled_at: Option<DateTime<Utc>>,
    /// Fired ones: how long after it was due it fired, in milliseconds.
    pub lateness_ms: Option<i64>,
    /// Cancelled ones: the version that cancelled it.
    pub replaced_by: Option<i64>,
    /// Fired ones: the `record.callback` event it wrote (`null` when no subscription
    /// wanted it).
    pub event_id: Option<String>,
}

impl From<&CallbackInfo> for CallbackResponse {
    fn from(c: &CallbackInfo) -> Self {
        let lateness_ms = match (c.status, c.settled_at) {
            (CallbackStatus::Fired, Some(at)) => Some((at - c.due_at).num_milliseconds().max(0)),
            _ => None,
        };
        Self {
            id: c.id,
            key: c.key.clone(),
            version: c.version,
            import: c.import.clone(),
            due_at: c.due_at,
            status: c.status.into(),
            settled_at: c.settled_at,
            lateness_ms,
            replaced_by: c.replaced_by,
            event_id: c.event.clone(),
        }
    }
}

/// A page of callback timers, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallbackPageResponse {
    /// The timers.
    pub items: Vec<CallbackResponse>,
    /// Pass it back as `cursor` for the next page; `null` after the last.
    pub next_cursor: Option<String>,
}

/// Which callback timers to list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CallbackQuery {
    /// `pending`, `fired` or `cancelled`; all when absent.
    pub status: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// List a dataset's callback timers with their outcome, newest first. Fired and
/// cancelled ones stay listed for the `callback_retention` setting (7 days by default).
#[utoipa::path(get, path = "/v1/datasets/{dataset}/callbacks", tag = "callbacks",
    params(("dataset" = String, Path, pattern = r"^[a-z][a-z0-9_-]{0,62}$", description = "The dataset's name"),
           CallbackQuery),
    responses(
        (status = 200, description = "A page of callback timers", body = CallbackPageResponse),
        (status = 400, description = "Malformed status, limit or cursor", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such dataset", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list_callbacks(
    state: web::Data<ApiState>,
    path: web::Path<String>,
    query: web::Query<CallbackQuery>,
) -> Result<HttpResponse, ApiError> {
    let name = dataset_name(&path)?;
    let status = match query.status.as_deref() {
        None => None,
        Some(text) => Some(
            CallbackStatus::parse(text)
                .ok_or_else(|| ApiError::field("status", "one of pending, fired, cancelled"))?,
        ),
    };
    let limit = super::page_limit(query.limit)?;
    let before = super::sequence_cursor(query.cursor.as_deref())?;
    let listing = CallbackListing {
        status,
        before,
        limit,
    };
    let page = state.callbacks.list(&name, &listing).await?;
    let next_cursor = (page.len() == limit as usize)
        .then(|| page.last().map(|c| c.id.to_string()))
        .flatten();
    let items = page.iter().map(CallbackResponse::from).collect();
    Ok(HttpResponse::Ok().json(CallbackPageResponse { items, next_cursor }))
}
