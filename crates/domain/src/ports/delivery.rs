use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::model::{DatasetName, ImportId, RecordKey, Version};

/// The kinds of events of DESIGN §4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum EventKind {
    /// A key's first state.
    #[serde(rename = "record.created")]
    RecordCreated,
    /// A key's new state.
    #[serde(rename = "record.updated")]
    RecordUpdated,
    /// A callback timer fired.
    #[serde(rename = "record.callback")]
    RecordCallback,
    /// An import committed.
    #[serde(rename = "import.completed")]
    ImportCompleted,
    /// An import was rejected.
    #[serde(rename = "import.failed")]
    ImportFailed,
}

impl EventKind {
    /// Its wire name (`record.created`, …), as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RecordCreated => "record.created",
            Self::RecordUpdated => "record.updated",
            Self::RecordCallback => "record.callback",
            Self::ImportCompleted => "import.completed",
            Self::ImportFailed => "import.failed",
        }
    }
}

/// An event in the transactional outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Stable id (the `webhook-id` receivers deduplicate on).
    pub id: String,
    /// Its dataset.
    pub dataset: DatasetName,
    /// What happened.
    pub kind: EventKind,
    /// The event body (an opaque JSON payload).
    pub payload: serde_json::Value,
    /// When it was written.
    pub created_at: DateTime<Utc>,
    /// Delivery attempts so far.
    pub attempts: u32,
}

/// Errors of the delivery side (outbox, timers, webhooks).
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The claim lapsed and another worker may hold the item.
    #[error("claim lost")]
    ClaimLost,
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// The read side of the outbox (events are written with the change that caused them,
/// through [`crate::ports::ImportWriter`]).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait::async_trait]
pub trait Outbox: Send + Sync {
    /// Claims up to `limit` events due for delivery, oldest first, for `lease`.
    /// Concurrent claimers MUST never get the same event.
    ///
    /// # Errors
    /// - `Unexpected` only.
    async fn claim_due(&self, limit: u32, lease: Duration) -> Result<Vec<Event>, DeliveryError>;

    /// Records a successful delivery; idempotent.
    ///
    /// # Errors
    /// - `ClaimLost` when the claim lapsed.
    async fn delivered(&self, event_id: &str) -> Result<(), DeliveryError>;

    /// Records a failed attempt: due again at `retry_at`, or dead when `None`.
    ///
    /// # Errors
    /// - `ClaimLost` when the claim lapsed.
    async fn failed(
        &self,
        event_id: &str,
        retry_at: Option<DateTime<Utc>>,
    ) -> Result<(), DeliveryError>;
}

/// A durable callback timer (DESIGN §8).
#[derive(Debug, Clone, PartialEq)]
pub struct CallbackTimer {
    /// Its dataset.
    pub dataset: DatasetName,
    /// The record it belongs to.
    pub key: RecordKey,
    /// The version it fires for.
    pub version: Option<Version>,
    /// The import that accepted that version.
    pub import: ImportId,
    /// When it fires.
    pub due_at: DateTime<Utc>,
}

/// Callback timers (written by [`crate::ports::ImportWriter`], fired by a worker).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait::async_trait]
pub trait CallbackTimers: Send + Sync {
    /// Claims up to `limit` timers due at `now`, earliest first. Concurrent claimers
    /// MUST never get the same timer.
    ///
    /// # Errors
    /// - `Unexpected` only.
    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<CallbackTimer>, DeliveryError>;

    /// Fires a claimed timer: deletes it and writes its `record.callback` event with
    /// the record as it was at the timer's version, in one step.
    ///
    /// # Errors
    /// - `ClaimLost` when the timer was replaced by a newer version meanwhile.
    async fn fire(&self, timer: &CallbackTimer) -> Result<(), DeliveryError>;

    /// Timers pending.
    ///
    /// # Errors
    /// - `Unexpected` only.
    async fn pending(&self) -> Result<u64, DeliveryError>;
}

/// How a webhook attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryResult {
    /// The receiver answered 2xx.
    Delivered,
    /// Retry later (non-2xx, timeout); `retry_after` when the receiver asked.
    Retry {
        /// The receiver's `Retry-After`.
        retry_after: Option<Duration>,
        /// What went wrong, for the log.
        reason: String,
    },
}

/// Sends one signed webhook (Standard Webhooks).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait::async_trait]
pub trait WebhookSender: Send + Sync {
    /// POSTs `event` to `url`, signed with `secret`. Every failure of the receiver is a
    /// [`DeliveryResult::Retry`], never an error.
    ///
    /// # Errors
    /// - `Unexpected` only when the request could not be built (a bad URL).
    async fn send(
        &self,
        url: &str,
        secret: &str,
        event: &Event,
    ) -> Result<DeliveryResult, DeliveryError>;
}

/// Where a pull source continues from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageCursor {
    /// The first page.
    Start,
    /// An opaque cursor, a page number or a `Link: rel=next` URL.
    Next(String),
}

/// One page fetched from a source: a document for the vault.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchedPage {
    /// The body, as received.
    pub body: Vec<u8>,
    /// Its media type.
    pub content_type: String,
    /// Where the next page is; `None` at the end.
    pub next: Option<PageCursor>,
}

/// Errors of a pull source.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// 5xx, 429 or a timeout: retry with backoff.
    #[error("source unavailable: {0}")]
    Unavailable(String),
    /// The source refused us (4xx other than 429): retrying will not help.
    #[error("source refused the request: {0}")]
    Refused(String),
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// An external HTTP API polled for records (DESIGN §9).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait::async_trait]
pub trait ExternalSource: Send + Sync {
    /// Fetches the page at `cursor`.
    ///
    /// # Errors
    /// - `Unavailable` for retryable failures; `Refused` for the others.
    async fn fetch(&self, cursor: &PageCursor) -> Result<FetchedPage, SourceError>;
}

#[cfg(test)]
mod tests {
    use super::EventKind;

    #[test]
    fn event_names_agree_with_serde() {
        use EventKind::*;
        for kind in [
            RecordCreated,
            RecordUpdated,
            RecordCallback,
            ImportCompleted,
            ImportFailed,
        ] {
            let json = serde_json::to_value(kind).unwrap();
            assert_eq!(json.as_str(), Some(kind.as_str()));
        }
    }
}
