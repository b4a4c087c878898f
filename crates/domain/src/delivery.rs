//! Deliveries (DESIGN §8): subscriptions receive their dataset's events as signed
//! webhooks, at least once, per (event, subscription), retried on a schedule until the
//! receiver answers 2xx or the delivery is dead.
//!
//! [`DeliveryService`] holds the subscription use cases; [`DeliveryWork`] is the kind
//! of leased work the runtime of [`crate::work`] runs to send deliveries.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::ingest::Shutdown;
use crate::model::DatasetName;
use crate::ports::{
    Attempt, ClaimLimits, Clock, Delivered, Delivery, DeliveryClaim, DeliveryCounts, DeliveryError,
    DeliveryInfo, DeliveryListing, DeliveryQueue, DeliveryResult, Event, EventKind,
    NewSubscription, Replay, Subscription, SubscriptionChange, SubscriptionStatus,
    SubscriptionStore, Webhook, WebhookSender,
};
use crate::work::{
    Backoff, Claim, JitterPercent, LeasedWork, Wakeups, WorkError, WorkKind, WorkSettings,
};

#[cfg(test)]
mod tests;

/// The ports deliveries work through.
#[derive(Clone)]
pub struct DeliveryPorts {
    /// Subscriptions.
    pub subscriptions: Arc<dyn SubscriptionStore>,
    /// Deliveries waiting to be sent.
    pub queue: Arc<dyn DeliveryQueue>,
    /// Outbound HTTP.
    pub sender: Arc<dyn WebhookSender>,
    /// Time.
    pub clock: Arc<dyn Clock>,
}

/// How deliveries behave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliverySettings {
    /// The wait before each attempt: the first entry before the first attempt
    /// (normally none), the `n`-th before attempt `n`. Its length is the number of
    /// attempts; after the last, the delivery is dead.
    pub retry_schedule: Vec<Duration>,
    /// A delivery whose event is older than this is dead at its next failure.
    pub max_age: Duration,
    /// How long a claim lasts (longer than a request's timeout).
    pub lease: Duration,
    /// The safety-net poll of an idle worker.
    pub idle_poll: Duration,
    /// Requests in flight at once to one subscription, per process.
    pub concurrency: u32,
    /// A subscription whose every attempt has failed for this long is disabled.
    pub disable_after: Duration,
    /// Delivered events are deleted this long after they were written.
    pub retention: Duration,
    /// How often old events are pruned and failing subscriptions disabled.
    pub housekeeping: Duration,
}

impl DeliverySettings {
    /// Svix's schedule: at once, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h.
    pub fn svix_schedule() -> Vec<Duration> {
        [0, 5, 300, 1800, 7200, 18_000, 36_000, 36_000]
            .into_iter()
            .map(Duration::from_secs)
            .collect()
    }

    /// How the runtime treats deliveries: retries spread by up to 20 % so receivers
    /// that failed together are not retried together.
    pub fn work(&self) -> WorkSettings {
        let waits = self.retry_schedule.iter().skip(1).copied().collect();
        WorkSettings {
            max_attempts: u32::try_from(self.retry_schedule.len().max(1)).unwrap_or(u32::MAX),
            backoff: Backoff::Schedule(waits),
            jitter: JitterPercent(20),
            idle_poll: self.idle_poll,
        }
    }
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            retry_schedule: Self::svix_schedule(),
            max_age: Duration::from_secs(5 * 24 * 3600),
            lease: Duration::from_secs(60),
            idle_poll: Duration::from_secs(5),
            concurrency: 16,
            disable_after: Duration::from_secs(5 * 24 * 3600),
            retention: Duration::from_secs(7 * 24 * 3600),
            housekeeping: Duration::from_secs(60),
        }
    }
}

/// Why a subscription was not created.
#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    /// No such dataset.
    #[error("dataset not found")]
    UnknownDataset,
    /// The URL may not receive webhooks.
    #[error("the subscription URL is refused: {0}")]
    UrlRefused(String),
    /// No such subscription (or not in that dataset).
    #[error("subscription not found")]
    NotFound,
    /// A given secret is not `whsec_` and base64 of 24 to 64 bytes.
    #[error("a secret is `whsec_` followed by the base64 of 24 to 64 random bytes")]
    InvalidSecret,
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// The subscription use cases.
pub struct DeliveryService {
    ports: DeliveryPorts,
    settings: DeliverySettings,
    wakeups: Wakeups,
}

/// What a client asks to change of a subscription.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Edit {
    /// Pause (`true`) or resume (`false`, which also re-enables a disabled one).
    pub paused: Option<bool>,
    /// A new URL (checked like a new subscription's).
    pub url: Option<String>,
    /// New kinds (`Some(None)`: every kind).
    pub events: Option<Option<Vec<EventKind>>>,
}

impl DeliveryService {
    /// A service over these ports.
    pub fn new(ports: DeliveryPorts, settings: DeliverySettings) -> Self {
        Self {
            ports,
            settings,
            wakeups: Wakeups::default(),
        }
    }

    /// The same service, waking the delivery workers through `wakeups` when it makes
    /// deliveries due (a resume, a replay).
    pub fn woken_by(mut self, wakeups: Wakeups) -> Self {
        self.wakeups = wakeups;
        self
    }

    /// The settings it runs with.
    pub fn settings(&self) -> &DeliverySettings {
        &self.settings
    }

    /// Subscribes `url` to a dataset's events of `events` (all kinds when `None`),
    /// signed with `secret` or a new one. The URL is checked against the outbound
    /// policy now and again at every send.
    ///
    /// # Errors
    /// See [`SubscribeError`].
    pub async fn subscribe(
        &self,
        dataset: &DatasetName,
        url: &str,
        events: Option<Vec<EventKind>>,
        secret: Option<String>,
    ) -> Result<Subscription, SubscribeError> {
        self.ports
            .sender
            .check_url(url)
            .await
            .map_err(|e| SubscribeError::UrlRefused(e.0))?;
        let secret = match secret {
            Some(s) if is_secret(&s) => s,
            Some(_) => return Err(SubscribeError::InvalidSecret),
            None => self.ports.sender.new_secret(),
        };
        let events = events.map(sorted);
        let new = NewSubscription {
            dataset: dataset.clone(),
            url: url.to_owned(),
            events,
            secret,
        };
        match self.ports.subscriptions.create(&new).await {
            Ok(s) => {
                tracing::info!(subscription = %s.id, %dataset, url = %crate::redact::url(url),
                    "subscription created");
                Ok(s)
            }
            Err(DeliveryError::UnknownDataset) => Err(SubscribeError::UnknownDataset),
            Err(e) => Err(SubscribeError::Unexpected(e.into())),
        }
    }

    /// A dataset's subscriptions.
    ///
    /// # Errors
    /// When the store is unreachable.
    pub async fn list(&self, dataset: &DatasetName) -> Result<Vec<Subscription>, DeliveryError> {
        self.ports.subscriptions.list(dataset).await
    }

    /// One subscription with where its deliveries stand.
    ///
    /// # Errors
    /// `NotFound` when the dataset has no such subscription.
    pub async fn get(
        &self,
        dataset: &DatasetName,
        id: &str,
    ) -> Result<(Subscription, DeliveryCounts), DeliveryError> {
        let subscription = self.ports.subscriptions.get(dataset, id).await?;
        let counts = self.ports.subscriptions.counts(id).await?;
        Ok((subscription, counts))
    }

    /// Pauses, resumes or re-points a subscription. Resuming makes its waiting
    /// deliveries due again at once.
    ///
    /// # Errors
    /// See [`SubscribeError`].
    pub async fn edit(
        &self,
        dataset: &DatasetName,
        id: &str,
        edit: Edit,
    ) -> Result<Subscription, SubscribeError> {
        if let Some(url) = &edit.url {
            self.ports
                .sender
                .check_url(url)
                .await
                .map_err(|e| SubscribeError::UrlRefused(e.0))?;
        }
        let change = SubscriptionChange {
            url: edit.url,
            events: edit.events.map(|kinds| kinds.map(sorted)),
            status: edit.paused.map(|paused| {
                if paused {
                    SubscriptionStatus::Paused
                } else {
                    SubscriptionStatus::Active
                }
            }),
            secret: None,
        };
        let changed = self.change(dataset, id, &change).await?;
        if changed.status == SubscriptionStatus::Active {
            self.wakeups.notify(WorkKind::Deliveries);
        }
        tracing::info!(subscription = id, %dataset, status = changed.status.as_str(),
            url = %crate::redact::url(&changed.url), "subscription changed");
        Ok(changed)
    }

    /// Gives a subscription a new signing secret, used from its next attempt on; the
    /// answer is the only place it is shown.
    ///
    /// # Errors
    /// See [`SubscribeError`].
    pub async fn rotate_secret(
        &self,
        dataset: &DatasetName,
        id: &str,
    ) -> Result<Subscription, SubscribeError> {
        let change = SubscriptionChange {
            secret: Some(self.ports.sender.new_secret()),
            ..SubscriptionChange::default()
        };
        let changed = self.change(dataset, id, &change).await?;
        tracing::info!(subscription = id, %dataset, "subscription secret rotated");
        Ok(changed)
    }

    async fn change(
        &self,
        dataset: &DatasetName,
        id: &str,
        change: &SubscriptionChange,
    ) -> Result<Subscription, SubscribeError> {
        match self.ports.subscriptions.update(dataset, id, change).await {
            Ok(s) => Ok(s),
            Err(DeliveryError::NotFound) => Err(SubscribeError::NotFound),
            Err(e) => Err(SubscribeError::Unexpected(e.into())),
        }
    }

    /// A subscription's deliveries, newest event first, a page at a time.
    ///
    /// # Errors
    /// `NotFound` when the dataset has no such subscription.
    pub async fn deliveries(
        &self,
        dataset: &DatasetName,
        id: &str,
        listing: &DeliveryListing,
    ) -> Result<Vec<DeliveryInfo>, DeliveryError> {
        self.ports.subscriptions.get(dataset, id).await?;
        self.ports.queue.list(id, listing).await
    }

    /// Sends the chosen deliveries of a subscription again, from a first attempt;
    /// gives how many.
    ///
    /// # Errors
    /// `NotFound` when the dataset has no such subscription.
    pub async fn replay(
        &self,
        dataset: &DatasetName,
        id: &str,
        replay: &Replay,
    ) -> Result<u64, DeliveryError> {
        self.ports.subscriptions.get(dataset, id).await?;
        let replayed = self
            .ports
            .queue
            .replay(id, replay, self.ports.clock.now())
            .await?;
        if replayed > 0 {
            self.wakeups.notify(WorkKind::Deliveries);
        }
        tracing::info!(subscription = id, %dataset, replayed, ?replay, "deliveries replayed");
        Ok(replayed)
    }

    /// Deletes a subscription and its pending deliveries.
    ///
    /// # Errors
    /// `NotFound` when the dataset has no such subscription.
    pub async fn unsubscribe(&self, dataset: &DatasetName, id: &str) -> Result<(), DeliveryError> {
        self.ports.subscriptions.delete(dataset, id).await?;
        tracing::info!(subscription = id, %dataset, "subscription deleted");
        Ok(())
    }
}

/// Events pruned in one statement, so a large backlog never holds long locks.
const PRUNE_BATCH: u32 = 1000;

impl DeliveryService {
    /// One round of housekeeping: deletes delivered events older than `retention`
    /// and disables the subscriptions failing for `disable_after`. Gives how many
    /// events were pruned and which subscriptions were disabled.
    ///
    /// # Errors
    /// When the store is unreachable.
    pub async fn keep_house(&self) -> Result<(u64, Vec<Subscription>), DeliveryError> {
        let now = self.ports.clock.now();
        let ago =
            |d: Duration| now - chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
        let before = ago(self.settings.retention);
        let mut pruned = 0;
        loop {
            let n = self.ports.queue.prune(before, PRUNE_BATCH).await?;
            pruned += n;
            if n < u64::from(PRUNE_BATCH) {
                break;
            }
        }
        if pruned > 0 {
            tracing::info!(pruned, %before, "delivered events pruned after delivery_retention");
        }
        let disabled = self
            .ports
            .subscriptions
            .disable_failing(ago(self.settings.disable_after))
            .await?;
        for s in &disabled {
            tracing::warn!(subscription = %s.id, dataset = %s.dataset, url = %crate::redact::url(&s.url),
                "subscription disabled: every attempt has failed for delivery_disable_after; \
                 its deliveries wait until it is resumed (PATCH with paused=false)");
        }
        Ok((pruned, disabled))
    }

    /// Keeps house every `housekeeping` until `shutdown`; failures are logged and tried
    /// again at the next round.
    pub async fn keep_house_until(&self, shutdown: Shutdown) {
        while !shutdown.is_triggered() {
            if let Err(e) = self.keep_house().await {
                tracing::error!(error = %format!("{e:#}"), "delivery housekeeping failed; trying again later");
            }
            let sleep = self.ports.clock.sleep(self.settings.housekeeping);
            futures_lite::future::or(sleep, shutdown.wait()).await;
        }
    }
}

/// Kinds in a fixed order, each once.
fn sorted(mut kinds: Vec<EventKind>) -> Vec<EventKind> {
    kinds.sort_by_key(|k| k.as_str());
    kinds.dedup();
    kinds
}

/// Whether `secret` is a Standard Webhooks secret: `whsec_` and the base64 of 24 to 64
/// bytes.
fn is_secret(secret: &str) -> bool {
    let Some(encoded) = secret.strip_prefix("whsec_") else {
        return false;
    };
    let valid = encoded
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
    let bytes = encoded.trim_end_matches('=').len() * 3 / 4;
    valid && (24..=64).contains(&bytes)
}

/// Who receives a dataset's events: its subscriptions (paused ones included, whose
/// deliveries wait), as a store reads them when an import begins. Stores write an
/// event only when someone wants it, and a delivery per subscription that wants it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Audience {
    subscribers: Vec<(String, Option<Vec<EventKind>>)>,
}

impl Audience {
    /// The audience of these subscriptions: each one's id and the kinds it wants
    /// (`None`: every kind).
    pub fn new(subscribers: Vec<(String, Option<Vec<EventKind>>)>) -> Self {
        Self { subscribers }
    }

    /// Whether anyone wants events of `kind` (if not, none is written).
    pub fn wants(&self, kind: EventKind) -> bool {
        self.subscribers
            .iter()
            .any(|(_, kinds)| wanted(kinds.as_ref(), kind))
    }

    /// The subscriptions that want events of `kind`.
    pub fn targets(&self, kind: EventKind) -> impl Iterator<Item = &str> {
        self.subscribers
            .iter()
            .filter(move |(_, kinds)| wanted(kinds.as_ref(), kind))
            .map(|(id, _)| id.as_str())
    }
}

/// Whether kinds `kinds` (`None`: every kind) include `kind`.
pub(crate) fn wanted(kinds: Option<&Vec<EventKind>>, kind: EventKind) -> bool {
    kinds.is_none_or(|kinds| kinds.contains(&kind))
}

/// The body of an event's webhook: `{"type", "timestamp", "data"}`, where `data` is
/// the event's payload (dataset, key, version, import, record) with its `sequence`.
pub fn body(event: &Event) -> Vec<u8> {
    let mut data = event.payload.clone();
    if let Some(fields) = data.as_object_mut() {
        fields.insert("sequence".into(), event.sequence.into());
    }
    let body = serde_json::json!({
        "type": event.kind.as_str(),
        "timestamp": event.created_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        "data": data,
    });
    body.to_string().into_bytes()
}

/// Whether an outbound request may go to `ip` when private addresses are not allowed
/// (DESIGN §13): not loopback, private, link-local, multicast, unspecified, shared
/// (100.64/10), documentation or broadcast, in IPv4 or IPv6 (IPv4-mapped included).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link-local
                || first == 0x2001 && v6.segments()[1] == 0x0db8) // documentation
        }
    }
}

/// Deliveries one claim takes at most (across subscriptions).
const CLAIM_BATCH: u32 = 64;

/// Requests in flight per subscription in this process.
type InFlight = Arc<Mutex<HashMap<String, u32>>>;

/// A request in flight to a subscription: gives its room back when dropped, and wakes
/// a worker that may have been waiting for it.
struct Slot {
    in_flight: InFlight,
    subscription: String,
    wakeups: Wakeups,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut in_flight = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = in_flight.get_mut(&self.subscription) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                in_flight.remove(&self.subscription);
            }
        }
        drop(in_flight);
        self.wakeups.notify(WorkKind::Deliveries);
    }
}

/// A claimed delivery, with how its attempt went (kept for recording the failure).
pub struct Claimed {
    delivery: Delivery,
    outcome: Mutex<Option<Attempt>>,
    slot: Mutex<Option<Slot>>,
}

impl Claimed {
    /// The delivery.
    pub fn delivery(&self) -> &Delivery {
        &self.delivery
    }
}

/// Deliveries, as the runtime sees them: each claim takes a batch, within the room
/// each subscription has for requests in flight ([`DeliverySettings::concurrency`]
/// per process); the batch is sent at once and its successes recorded together.
pub struct DeliveryWork {
    ports: DeliveryPorts,
    settings: DeliverySettings,
    wakeups: Wakeups,
    in_flight: InFlight,
    /// Claims in this process take turns, so each sees the room the others left.
    claiming: futures_util::lock::Mutex<()>,
}

impl DeliveryWork {
    /// The leased work of this service's deliveries.
    pub fn new(service: &DeliveryService) -> Self {
        Self {
            ports: service.ports.clone(),
            settings: service.settings.clone(),
            wakeups: service.wakeups.clone(),
            in_flight: InFlight::default(),
            claiming: futures_util::lock::Mutex::new(()),
        }
    }

    fn limits(&self) -> ClaimLimits {
        let per_subscription = self.settings.concurrency.max(1);
        let in_flight = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        ClaimLimits {
            most: CLAIM_BATCH,
            per_subscription,
            room: in_flight
                .iter()
                .map(|(id, n)| (id.clone(), per_subscription.saturating_sub(*n)))
                .collect(),
        }
    }

    fn slot(&self, subscription: &str) -> Slot {
        *self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(subscription.to_owned())
            .or_default() += 1;
        Slot {
            in_flight: self.in_flight.clone(),
            subscription: subscription.to_owned(),
            wakeups: self.wakeups.clone(),
        }
    }

    /// Sends one delivery; its room is given back as soon as the receiver answered.
    async fn send(&self, item: &Claimed) -> DeliveryResult {
        let d = &item.delivery;
        let webhook = Webhook {
            url: d.url.clone(),
            id: d.event.id.clone(),
            timestamp: self.ports.clock.now(),
            body: body(&d.event),
            secret: d.secret.clone(),
        };
        let result = self.ports.sender.send(&webhook).await;
        drop(
            item.slot
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        result
    }
}

#[async_trait::async_trait]
impl LeasedWork for DeliveryWork {
    type Item = Claimed;

    fn kind(&self) -> WorkKind {
        WorkKind::Deliveries
    }

    fn describe(&self, item: &Claimed) -> String {
        let d = &item.delivery;
        format!("event {} to subscription {}", d.event.id, d.subscription)
    }

    fn attempt(&self, item: &Claimed) -> u32 {
        item.delivery.attempt
    }

    async fn claim(&self, worker: &str, now: DateTime<Utc>) -> anyhow::Result<Claim<Claimed>> {
        let _turn = self.claiming.lock().await;
        let claimed = self
            .ports
            .queue
            .claim(worker, now, self.settings.lease, &self.limits())
            .await?;
        Ok(match claimed {
            DeliveryClaim::Claimed(deliveries) => Claim::Items(
                deliveries
                    .into_iter()
                    .map(|delivery| Claimed {
                        slot: Mutex::new(Some(self.slot(&delivery.subscription))),
                        delivery,
                        outcome: Mutex::new(None),
                    })
                    .collect(),
            ),
            DeliveryClaim::Idle(next_due) => Claim::Nothing { next_due },
        })
    }

    async fn work(&self, item: &Claimed) -> Result<(), WorkError> {
        self.work_all(std::slice::from_ref(item))
            .await
            .pop()
            .unwrap_or_else(|| Err(WorkError::failed(anyhow::anyhow!("no outcome"))))
    }

    /// Sends the batch at once, then records its successes in one step.
    async fn work_all(&self, items: &[Claimed]) -> Vec<Result<(), WorkError>> {
        let results =
            futures_util::future::join_all(items.iter().map(|item| self.send(item))).await;
        let done: Vec<Delivered> = items
            .iter()
            .zip(&results)
            .filter_map(|(item, result)| match result {
                DeliveryResult::Delivered { status } => {
                    Some(Delivered::of(&item.delivery, *status))
                }
                DeliveryResult::Retry { .. } => None,
            })
            .collect();
        let recorded = if done.is_empty() {
            Ok(Vec::new())
        } else {
            self.ports.queue.delivered(&done).await
        };
        let mut recorded = match recorded {
            Ok(flags) => Ok(flags.into_iter()),
            Err(e) => Err(format!("{e:#}")),
        };
        items
            .iter()
            .zip(results)
            .map(|(item, result)| match result {
                DeliveryResult::Delivered { .. } => match &mut recorded {
                    Ok(flags) => match flags.next() {
                        Some(true) => Ok(()),
                        _ => Err(WorkError::LeaseLost),
                    },
                    Err(e) => Err(WorkError::failed(anyhow::anyhow!(
                        "the receiver answered 2xx, but recording it failed: {e}"
                    ))),
                },
                DeliveryResult::Retry {
                    status,
                    retry_after,
                    reason,
                } => {
                    let error = anyhow::anyhow!("{reason}");
                    *item.outcome.lock().unwrap_or_else(PoisonError::into_inner) = Some(Attempt {
                        status,
                        error: reason,
                    });
                    Err(WorkError::Failed { error, retry_after })
                }
            })
            .collect()
    }

    /// A retry past the event's `max_age` is no retry: the delivery is dead.
    async fn fail(
        &self,
        item: &Claimed,
        retry_at: Option<DateTime<Utc>>,
        reason: &str,
    ) -> anyhow::Result<()> {
        let d = &item.delivery;
        let max_age =
            chrono::Duration::from_std(self.settings.max_age).unwrap_or(chrono::Duration::MAX);
        let retry_at = retry_at.filter(|at| *at - d.event.created_at <= max_age);
        let attempt = item
            .outcome
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .unwrap_or_else(|| Attempt {
                status: None,
                error: reason.to_owned(),
            });
        self.ports.queue.failed(d, &attempt, retry_at).await?;
        if retry_at.is_none() {
            tracing::warn!(event = %d.event.id, subscription = %d.subscription,
                attempts = d.attempt, status = ?attempt.status, error = %attempt.error,
                "delivery is dead: every attempt failed; replay it once the receiver is fixed");
        }
        Ok(())
    }

    async fn release(&self, item: &Claimed) -> Result<(), WorkError> {
        match self.ports.queue.release(&item.delivery).await {
            Ok(()) => Ok(()),
            Err(DeliveryError::ClaimLost) => Err(WorkError::LeaseLost),
            Err(e) => Err(WorkError::failed(e)),
        }
    }
}

/// How long to wait before the next attempt after `status`, when the receiver said.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    (at.with_timezone(&Utc) - now).to_std().ok()
}
