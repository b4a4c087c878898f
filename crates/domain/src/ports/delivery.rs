use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::model::DatasetName;

/// The kinds of events of DESIGN §4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum EventKind {
    /// A key's first state.
    #[serde(rename = "record.created")]
    RecordCreated,
    /// A key's new state.
    #[serde(rename = "record.updated")]
    RecordUpdated,
    /// A key's record was deleted (ADR 40).
    #[serde(rename = "record.deleted")]
    RecordDeleted,
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
            Self::RecordDeleted => "record.deleted",
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
    /// Its place among the events written: increasing within a dataset (not
    /// gap-free), so receivers can order events and drop stale ones.
    pub sequence: i64,
}

/// Errors of the delivery side (subscriptions, deliveries, timers, webhooks).
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The claim lapsed and another worker may hold the item.
    #[error("claim lost")]
    ClaimLost,
    /// No such subscription (or not in that dataset).
    #[error("subscription not found")]
    NotFound,
    /// No such dataset.
    #[error("dataset not found")]
    UnknownDataset,
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Whether a subscription is sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionStatus {
    /// Deliveries are sent.
    Active,
    /// Deliveries wait (an operator paused it); nothing is lost.
    Paused,
    /// Every delivery failed for `delivery_disable_after`: deliveries wait until an
    /// operator resumes it.
    Disabled,
}

impl SubscriptionStatus {
    /// Its wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Paused => "paused",
            Self::Disabled => "disabled",
        }
    }

    /// The status named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Active, Self::Paused, Self::Disabled]
            .into_iter()
            .find(|s| s.as_str() == name)
    }
}

/// A subscription to be created: its secret is chosen by the caller or generated.
#[derive(Clone, PartialEq, Eq)]
pub struct NewSubscription {
    /// Its dataset.
    pub dataset: DatasetName,
    /// Where events are POSTed.
    pub url: String,
    /// The kinds it wants; `None`: every kind.
    pub events: Option<Vec<EventKind>>,
    /// The signing secret, `whsec_` and base64.
    pub secret: String,
}

/// The secret is never printed.
impl std::fmt::Debug for NewSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSubscription")
            .field("dataset", &self.dataset)
            .field("url", &crate::redact::url(&self.url))
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

/// A URL that receives a dataset's events (DESIGN §4, §8).
#[derive(Clone, PartialEq, Eq)]
pub struct Subscription {
    /// Its id.
    pub id: String,
    /// Its dataset.
    pub dataset: DatasetName,
    /// Where events are POSTed.
    pub url: String,
    /// The kinds it wants; `None`: every kind.
    pub events: Option<Vec<EventKind>>,
    /// The signing secret (shown at creation and rotation only).
    pub secret: String,
    /// Whether it is sent to.
    pub status: SubscriptionStatus,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// The secret is never printed.
impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .field("dataset", &self.dataset)
            .field("url", &crate::redact::url(&self.url))
            .field("events", &self.events)
            .field("status", &self.status)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

impl Subscription {
    /// Whether it wants events of `kind`.
    pub fn wants(&self, kind: EventKind) -> bool {
        crate::delivery::wanted(self.events.as_ref(), kind)
    }
}

/// Where a subscription's deliveries stand.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryCounts {
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

/// Subscriptions of datasets.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait::async_trait]
pub trait SubscriptionStore: Send + Sync {
    /// Creates a subscription, active.
    ///
    /// # Errors
    /// - `UnknownDataset` when the dataset does not exist.
    async fn create(&self, new: &NewSubscription) -> Result<Subscription, DeliveryError>;

    /// A dataset's subscriptions, oldest first.
    ///
    /// # Errors
    /// - `Unexpected` only.
    async fn list(&self, dataset: &DatasetName) -> Result<Vec<Subscription>, DeliveryError>;

    /// One subscription of a dataset.
    ///
    /// # Errors
    /// - `NotFound` when the dataset has no such subscription.
    async fn get(&self, dataset: &DatasetName, id: &str) -> Result<Subscription, DeliveryError>;

    /// Deletes a subscription and its deliveries.
    ///
    /// # Errors
    /// - `NotFound` when the dataset has no such subscription.
    async fn delete(&self, dataset: &DatasetName, id: &str) -> Result<(), DeliveryError>;

    /// Where its deliveries stand.
    ///
    /// # Errors
    /// - `Unexpected` only (an unknown id has none).
    async fn counts(&self, id: &str) -> Result<DeliveryCounts, DeliveryError>;

    /// Changes what `change` names, and gives the subscription as it now is.
    ///
    /// # Errors
    /// - `NotFound` when the dataset has no such subscription.
    async fn update(
        &self,
        dataset: &DatasetName,
        id: &str,
        change: &SubscriptionChange,
    ) -> Result<Subscription, DeliveryError>;

    /// Disables the active subscriptions that have been failing (no 2xx since a failed
    /// attempt) since before `since`, and gives them.
    ///
    /// # Errors
    /// - `Unexpected` only.
    async fn disable_failing(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<Subscription>, DeliveryError>;
}

/// What an update of a subscription changes (`None`: leave it).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SubscriptionChange {
    /// A new URL.
    pub url: Option<String>,
    /// New kinds (`Some(None)`: every kind).
    pub events: Option<Option<Vec<EventKind>>>,
    /// A new status (`Active` starts the failing period over).
    pub status: Option<SubscriptionStatus>,
    /// A new secret.
    pub secret: Option<String>,
}

/// The secret is never printed.
impl std::fmt::Debug for SubscriptionChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubscriptionChange")
            .field("url", &self.url.as_deref().map(crate::redact::url))
            .field("events", &self.events)
            .field("status", &self.status)
            .field("secret", &self.secret.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// Where a delivery is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Waiting to be sent or retried.
    Pending,
    /// Answered 2xx.
    Delivered,
    /// Given up after the last attempt.
    Dead,
}

impl DeliveryStatus {
    /// Its wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Dead => "dead",
        }
    }

    /// The status named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Pending, Self::Delivered, Self::Dead]
            .into_iter()
            .find(|s| s.as_str() == name)
    }
}

/// One delivery as listed: an event, and how sending it to its subscription went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryInfo {
    /// The event's id (the `webhook-id`).
    pub event: String,
    /// Its kind.
    pub kind: EventKind,
    /// Its sequence: the listing's order (newest first) and cursor.
    pub sequence: i64,
    /// When the event was written.
    pub created_at: DateTime<Utc>,
    /// Where the delivery is.
    pub status: DeliveryStatus,
    /// Attempts so far.
    pub attempts: u32,
    /// The last attempt's status code, when the receiver answered.
    pub last_status: Option<u16>,
    /// What went wrong at the last attempt (empty after a success).
    pub last_error: Option<String>,
    /// When the last attempt was made.
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// When the next attempt is due (pending only).
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// Which deliveries of a subscription to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryListing {
    /// Only those in this status.
    pub status: Option<DeliveryStatus>,
    /// Only events older than this sequence (the previous page's last).
    pub before: Option<i64>,
    /// Page size.
    pub limit: u32,
}

/// Which deliveries of a subscription to send again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replay {
    /// One event's delivery, whatever its status.
    Event(String),
    /// Every dead delivery.
    Dead,
    /// Every delivery of an event written at or after this time, whatever its status.
    Since(DateTime<Utc>),
}

/// One event to send to one subscription, claimed under a lease.
#[derive(Clone, PartialEq)]
pub struct Delivery {
    /// The event (its id is the `webhook-id`, the same on every attempt).
    pub event: Event,
    /// The subscription's id.
    pub subscription: String,
    /// Where it goes.
    pub url: String,
    /// What signs it.
    pub secret: String,
    /// Attempts so far, this one included.
    pub attempt: u32,
    /// A token that changes with every claim, so a stale holder cannot record.
    pub token: String,
}

/// The secret is never printed.
impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("event", &self.event.id)
            .field("subscription", &self.subscription)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

/// What a claim of deliveries found.
#[derive(Debug, Clone, PartialEq)]
pub enum DeliveryClaim {
    /// Deliveries (at least one), leased to the claimer, oldest due first within each
    /// subscription.
    Claimed(Vec<Delivery>),
    /// Nothing due that the limits allow; the earliest next attempt among the
    /// subscriptions with room, if any.
    Idle(Option<DateTime<Utc>>),
}

/// How many deliveries one claim may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimLimits {
    /// At most this many in all.
    pub most: u32,
    /// At most this many of one subscription.
    pub per_subscription: u32,
    /// Subscriptions with less room than `per_subscription` (requests of theirs are
    /// in flight), and their room; a subscription with no room is skipped.
    pub room: Vec<(String, u32)>,
}

impl ClaimLimits {
    /// One delivery at a time.
    pub fn one() -> Self {
        Self {
            most: 1,
            per_subscription: 1,
            room: Vec::new(),
        }
    }

    /// The room of `subscription`.
    pub fn room_of(&self, subscription: &str) -> u32 {
        self.room
            .iter()
            .find(|(id, _)| id == subscription)
            .map_or(self.per_subscription, |(_, room)| *room)
    }
}

/// A 2xx to record against the claim that sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// The subscription's id.
    pub subscription: String,
    /// The event's id.
    pub event: String,
    /// The claim's token.
    pub token: String,
    /// The receiver's status code.
    pub status: u16,
}

impl Delivered {
    /// `delivery`'s 2xx, answered with `status`.
    pub fn of(delivery: &Delivery, status: u16) -> Self {
        Self {
            subscription: delivery.subscription.clone(),
            event: delivery.event.id.clone(),
            token: delivery.token.clone(),
            status,
        }
    }
}

/// How one attempt ended, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The receiver's status code, when it answered.
    pub status: Option<u16>,
    /// What went wrong (empty on success), for listings.
    pub error: String,
}

/// Deliveries per (event, subscription): written with the events that cause them (by
/// [`crate::ports::ImportWriter`]), claimed by the delivery workers.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait::async_trait]
pub trait DeliveryQueue: Send + Sync {
    /// Claims deliveries due at `now` of active subscriptions, within `limits`, for
    /// `lease`, counting the attempt; within a subscription, the one that has waited
    /// longest first. Concurrent claimers MUST never get the same delivery while its
    /// lease holds.
    ///
    /// # Errors
    /// - `Unexpected` only.
    async fn claim(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        lease: Duration,
        limits: &ClaimLimits,
    ) -> Result<DeliveryClaim, DeliveryError>;

    /// Records 2xx answers: those deliveries are done, and their subscriptions are no
    /// longer failing. Gives, in order, whether each was recorded (`false`: its claim
    /// had lapsed, and another worker may send it again).
    ///
    /// # Errors
    /// - `Unexpected` only.
    async fn delivered(&self, done: &[Delivered]) -> Result<Vec<bool>, DeliveryError>;

    /// Records a failed attempt: due again at `retry_at`, or dead when `None`. A
    /// subscription that had not failed since its last success is failing from now.
    ///
    /// # Errors
    /// - `ClaimLost` when the lease lapsed.
    async fn failed(
        &self,
        delivery: &Delivery,
        attempt: &Attempt,
        retry_at: Option<DateTime<Utc>>,
    ) -> Result<(), DeliveryError>;

    /// Gives a claimed delivery back untouched (shutdown): due at once, the claim not
    /// counted as an attempt.
    ///
    /// # Errors
    /// - `ClaimLost` when it was already recorded or claimed by another worker.
    async fn release(&self, delivery: &Delivery) -> Result<(), DeliveryError>;

    /// A subscription's deliveries, newest event first.
    ///
    /// # Errors
    /// - `Unexpected` only (an unknown id has none).
    async fn list(
        &self,
        subscription: &str,
        listing: &DeliveryListing,
    ) -> Result<Vec<DeliveryInfo>, DeliveryError>;

    /// Makes the chosen deliveries of a subscription pending again, due at `now` with
    /// their attempts starting over (a delivery claimed at the moment is left alone).
    /// Gives how many.
    ///
    /// # Errors
    /// - `Unexpected` only.
    async fn replay(
        &self,
        subscription: &str,
        replay: &Replay,
        now: DateTime<Utc>,
    ) -> Result<u64, DeliveryError>;

    /// Deletes up to `limit` events written before `before` whose deliveries were all
    /// delivered (or that have none), with their deliveries. Gives how many events.
    ///
    /// # Errors
    /// - `Unexpected` only.
    async fn prune(&self, before: DateTime<Utc>, limit: u32) -> Result<u64, DeliveryError>;
}

/// A callback timer (DESIGN §8) that fired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueCallback {
    /// Its id.
    pub id: i64,
    /// Its dataset.
    pub dataset: DatasetName,
    /// The record's key, canonical.
    pub key: String,
    /// The version it fires for.
    pub version: Option<i64>,
    /// The import that accepted that version.
    pub import: String,
    /// When it was due.
    pub due_at: DateTime<Utc>,
}

/// What a round of firing callback timers did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallbackFiring {
    /// Timers fired (at least one), earliest due first.
    Fired(Vec<DueCallback>),
    /// Nothing was due (or every due timer was being fired by another worker); when
    /// the earliest pending timer due later is, if any.
    Idle(Option<DateTime<Utc>>),
}

/// Where a callback timer is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallbackStatus {
    /// Waiting to be due (or claimed and about to fire).
    Pending,
    /// Fired: its `record.callback` event was written.
    Fired,
    /// A newer version of its key arrived first.
    Cancelled,
}

impl CallbackStatus {
    /// Its name in the API and the stores.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Fired => "fired",
            Self::Cancelled => "cancelled",
        }
    }

    /// The status of that name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "pending" => Some(Self::Pending),
            "fired" => Some(Self::Fired),
            "cancelled" => Some(Self::Cancelled),
            _ => None,
        }
    }
}

/// One callback timer as listed, with its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackInfo {
    /// Its id: the listing's order (newest first) and cursor.
    pub id: i64,
    /// The record's key, canonical.
    pub key: String,
    /// The version it is for.
    pub version: Option<i64>,
    /// The import that accepted that version.
    pub import: String,
    /// When it is (or was) due.
    pub due_at: DateTime<Utc>,
    /// Where it is.
    pub status: CallbackStatus,
    /// When it fired or was cancelled.
    pub settled_at: Option<DateTime<Utc>>,
    /// The version that cancelled it.
    pub replaced_by: Option<i64>,
    /// The `record.callback` event it wrote (none when nobody subscribed to it).
    pub event: Option<String>,
}

/// Which callback timers of a dataset to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackListing {
    /// Only those in this status.
    pub status: Option<CallbackStatus>,
    /// Only timers older than this id (the previous page's last).
    pub before: Option<i64>,
    /// Page size.
    pub limit: u32,
}

/// Callback timers: written (and cancelled by newer versions) by
/// [`crate::ports::ImportWriter`], fired by the callback workers.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait::async_trait]
pub trait CallbackTimers: Send + Sync {
    /// Fires up to `limit` pending timers due at `now`, earliest due first, in one
    /// transaction: each is marked fired at `now`, and its `record.callback` event (the
    /// record as it was at the timer's version, from history) is written with a
    /// delivery per subscription that wants it. The transaction's row locks are the
    /// claim: concurrent callers (threads or processes) skip timers another is firing,
    /// so none fires twice, and a crash before the commit leaves them pending.
    ///
    /// # Errors
    /// - `Unexpected` only (nothing is fired then).
    async fn fire_due(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<CallbackFiring, DeliveryError>;

    /// Timers pending.
    ///
    /// # Errors
    /// - `Unexpected` only.
    async fn pending(&self) -> Result<u64, DeliveryError>;

    /// A dataset's timers with their outcome, newest first.
    ///
    /// # Errors
    /// - `Unexpected` only (an unknown dataset has none).
    async fn list(
        &self,
        dataset: &DatasetName,
        listing: &CallbackListing,
    ) -> Result<Vec<CallbackInfo>, DeliveryError>;

    /// Deletes up to `limit` timers that fired or were cancelled before `before`. Gives
    /// how many.
    ///
    /// # Errors
    /// - `Unexpected` only.
    async fn prune(&self, before: DateTime<Utc>, limit: u32) -> Result<u64, DeliveryError>;
}

/// One signed POST to send (Standard Webhooks): everything but the signature, which
/// the sender computes from `secret`.
#[derive(Clone, PartialEq, Eq)]
pub struct Webhook {
    /// Where it goes.
    pub url: String,
    /// `webhook-id`: the event's id, the same on every attempt.
    pub id: String,
    /// `webhook-timestamp`: when this attempt was made.
    pub timestamp: DateTime<Utc>,
    /// The JSON body, byte for byte as signed.
    pub body: Vec<u8>,
    /// The `whsec_…` secret that signs it.
    pub secret: String,
}

/// The secret is never printed.
impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("url", &crate::redact::url(&self.url))
            .field("id", &self.id)
            .field("timestamp", &self.timestamp)
            .finish_non_exhaustive()
    }
}

/// How a webhook attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryResult {
    /// The receiver answered 2xx.
    Delivered {
        /// Its status code.
        status: u16,
    },
    /// Retry later: any other status, a timeout, a refused connection, an address
    /// the outbound policy forbids.
    Retry {
        /// The receiver's status code, when it answered.
        status: Option<u16>,
        /// The receiver's `Retry-After`.
        retry_after: Option<Duration>,
        /// What went wrong, for the log and the listing (never the secret).
        reason: String,
    },
}

/// Why an outbound URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UrlRefused(pub String);

/// Sends signed webhooks (Standard Webhooks), and says which URLs it may send to.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait::async_trait]
pub trait WebhookSender: Send + Sync {
    /// POSTs `webhook`, signed. Every failure of the receiver is a
    /// [`DeliveryResult::Retry`], never an error.
    async fn send(&self, webhook: &Webhook) -> DeliveryResult;

    /// Whether `url` may receive webhooks: `http` or `https`, and (unless private
    /// addresses are allowed) a host that resolves to public addresses only (DESIGN
    /// §13). Sending checks again after resolving, so a name that later resolves to a
    /// private address is not sent to.
    ///
    /// # Errors
    /// The reason, for the caller.
    async fn check_url(&self, url: &str) -> Result<(), UrlRefused>;

    /// A new signing secret, `whsec_` and the base64 of 32 random bytes.
    fn new_secret(&self) -> String;
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
