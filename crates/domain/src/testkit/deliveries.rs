//! The subscription and delivery conformance cases: what every store of
//! [`crate::ports::SubscriptionStore`] and [`crate::ports::DeliveryQueue`] must do.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, SubsecRound as _, Utc};

use super::Stores;
use super::support::{SIMPLE, dataset, drain, name, receive, service};
use crate::ports::{
    Attempt, ClaimLimits, Delivered, Delivery, DeliveryClaim, DeliveryError, EventKind,
    NewSubscription, Subscription, SubscriptionStatus,
};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const LEASE: Duration = Duration::from_secs(30);

async fn subscribe(
    s: &Stores,
    ds: &crate::DatasetName,
    events: Option<Vec<EventKind>>,
) -> Subscription {
    let new = NewSubscription {
        dataset: ds.clone(),
        url: "https://receiver.example/hook".into(),
        events,
        secret: SECRET.into(),
    };
    s.subscriptions.create(&new).await.expect("subscribed")
}

/// A claim of one delivery at most.
async fn claim_one(s: &Stores, at: DateTime<Utc>) -> DeliveryClaim {
    s.deliveries
        .claim("w", at, LEASE, &ClaimLimits::one())
        .await
        .expect("claim")
}

/// Every delivery due at `at`, claimed a few at a time.
async fn claim_all(s: &Stores, at: DateTime<Utc>) -> Vec<Delivery> {
    let limits = ClaimLimits {
        most: 3,
        per_subscription: 2,
        room: Vec::new(),
    };
    let mut claimed = Vec::new();
    while let DeliveryClaim::Claimed(d) = s
        .deliveries
        .claim("w", at, LEASE, &limits)
        .await
        .expect("claim")
    {
        assert!(!d.is_empty() && d.len() <= 3, "within the limits: {d:?}");
        claimed.extend(d);
    }
    claimed
}

/// Records a 2xx for each of `deliveries`; gives whether each was recorded.
async fn deliver(s: &Stores, deliveries: &[&Delivery]) -> Vec<bool> {
    let done: Vec<Delivered> = deliveries.iter().map(|d| Delivered::of(d, 200)).collect();
    s.deliveries.delivered(&done).await.expect("delivered")
}

/// A dataset `name` with a subscription to `record.created`, three records imported,
/// and their deliveries claimed, oldest event first.
async fn three_claimed(s: &Stores, name: &str) -> (Subscription, Vec<Delivery>) {
    let service = service(s, 100);
    let ds = dataset(s, name, SIMPLE).await;
    let sub = subscribe(s, &ds, Some(vec![EventKind::RecordCreated])).await;
    receive(
        &service,
        &ds,
        b"id,group,value\na,g,1\nb,g,2\nc,g,3\n",
        None,
    )
    .await;
    drain(&service).await;
    let mut claimed = claim_all(s, Utc::now()).await;
    claimed.sort_by_key(|d| d.event.sequence);
    (sub, claimed)
}

fn kinds_by_subscription(deliveries: &[Delivery]) -> BTreeMap<String, Vec<&'static str>> {
    let mut by = BTreeMap::<String, Vec<&'static str>>::new();
    for d in deliveries {
        by.entry(d.subscription.clone())
            .or_default()
            .push(d.event.kind.as_str());
    }
    for kinds in by.values_mut() {
        kinds.sort_unstable();
    }
    by
}

fn unavailable() -> Attempt {
    Attempt {
        status: Some(503),
        error: "503 Service Unavailable".into(),
    }
}

/// Subscriptions are created, listed oldest first, read within their dataset only and
/// deleted; an unknown dataset has none.
pub async fn subscriptions_are_created_listed_read_and_deleted(s: Stores) {
    let ds = dataset(&s, "subscribed", SIMPLE).await;
    let other = dataset(&s, "other", SIMPLE).await;
    let unknown = NewSubscription {
        dataset: name("missing"),
        url: "https://receiver.example/hook".into(),
        events: None,
        secret: SECRET.into(),
    };
    assert!(matches!(
        s.subscriptions.create(&unknown).await,
        Err(DeliveryError::UnknownDataset)
    ));
    let first = subscribe(&s, &ds, Some(vec![EventKind::RecordCreated])).await;
    let second = subscribe(&s, &ds, None).await;
    assert_ne!(first.id, second.id);
    assert_eq!(first.status, SubscriptionStatus::Active);
    assert_eq!(first.secret, SECRET);
    assert_eq!(first.events, Some(vec![EventKind::RecordCreated]));
    assert_eq!(second.events, None);
    let listed = s.subscriptions.list(&ds).await.expect("list");
    assert_eq!(listed, [first.clone(), second.clone()]);
    assert!(s.subscriptions.list(&other).await.expect("list").is_empty());
    assert_eq!(
        s.subscriptions.get(&ds, &first.id).await.expect("get"),
        first
    );
    assert!(matches!(
        s.subscriptions.get(&other, &first.id).await,
        Err(DeliveryError::NotFound)
    ));
    assert!(matches!(
        s.subscriptions.delete(&other, &first.id).await,
        Err(DeliveryError::NotFound)
    ));
    s.subscriptions
        .delete(&ds, &first.id)
        .await
        .expect("delete");
    assert!(matches!(
        s.subscriptions.get(&ds, &first.id).await,
        Err(DeliveryError::NotFound)
    ));
    assert_eq!(s.subscriptions.list(&ds).await.expect("list"), [second]);
}

/// An import writes a delivery per (event, subscription that wants it), and nothing
/// for a dataset nobody subscribed to.
pub async fn events_go_only_to_the_subscriptions_that_want_them(s: Stores) {
    let service = service(&s, 100);
    let quiet = dataset(&s, "quiet", SIMPLE).await;
    receive(&service, &quiet, b"id,group,value\na,g,1\n", None).await;
    drain(&service).await;
    let now = Utc::now();
    assert_eq!(
        claim_one(&s, now).await,
        DeliveryClaim::Idle(None),
        "no subscriber: no event"
    );

    let ds = dataset(&s, "watched", SIMPLE).await;
    let created = subscribe(&s, &ds, Some(vec![EventKind::RecordCreated])).await;
    let all = subscribe(&s, &ds, None).await;
    receive(&service, &ds, b"id,group,value\na,g,1\nb,g,2\n", None).await;
    receive(&service, &ds, b"id,group,value\na,g,5\n", None).await;
    drain(&service).await;
    let claimed = claim_all(&s, Utc::now()).await;
    let by = kinds_by_subscription(&claimed);
    assert_eq!(by[&created.id], ["record.created", "record.created"]);
    assert_eq!(
        by[&all.id],
        [
            "import.completed",
            "import.completed",
            "record.created",
            "record.created",
            "record.updated"
        ]
    );
    // Both subscriptions got the same events, each with its own delivery.
    let update = claimed
        .iter()
        .find(|d| d.event.kind == EventKind::RecordUpdated)
        .expect("an update");
    assert_eq!(update.event.payload["key"], "a");
    assert_eq!(update.event.payload["record"]["measures"]["value"], 5.0);
    assert_eq!(update.url, "https://receiver.example/hook");
    assert_eq!(update.secret, SECRET);
    assert_eq!(update.attempt, 1);
    // Sequences increase in the order events were written.
    let mut created_events: Vec<_> = claimed
        .iter()
        .filter(|d| d.subscription == all.id && d.event.kind != EventKind::ImportCompleted)
        .map(|d| (d.event.sequence, d.event.kind))
        .collect();
    created_events.sort_unstable_by_key(|(seq, _)| *seq);
    assert_eq!(
        created_events.last().map(|(_, k)| *k),
        Some(EventKind::RecordUpdated)
    );
}

/// A delivery is claimed by one claimer at a time, retried when its time comes,
/// dead after its last attempt, and a stale claim records nothing; the counts say so.
pub async fn deliveries_are_claimed_once_retried_and_end_delivered_or_dead(s: Stores) {
    let service = service(&s, 100);
    let ds = dataset(&s, "deliver", SIMPLE).await;
    let sub = subscribe(&s, &ds, Some(vec![EventKind::RecordCreated])).await;
    receive(
        &service,
        &ds,
        b"id,group,value\na,g,1\nb,g,2\nc,g,3\n",
        None,
    )
    .await;
    drain(&service).await;
    // Stores keep microseconds at least: a time they give back compares equal. Rounded
    // up, not down, so the deliveries just written are due by then.
    let now = Utc::now().trunc_subsecs(3) + chrono::Duration::milliseconds(1);

    // Concurrent claimers get each delivery once.
    let claims = (0..6).map(|i| {
        let q = s.deliveries.clone();
        async move {
            q.claim(&format!("w{i}"), now, LEASE, &ClaimLimits::one())
                .await
                .expect("claim")
        }
    });
    let results = super::storage::futures_join_all(claims).await;
    let mut claimed: Vec<Delivery> = results
        .into_iter()
        .filter_map(|c| match c {
            DeliveryClaim::Claimed(d) => Some(d),
            DeliveryClaim::Idle(_) => None,
        })
        .flatten()
        .collect();
    assert_eq!(claimed.len(), 3, "three deliveries, each claimed once");
    claimed.sort_by_key(|d| d.event.sequence);
    let [a, b, c] = <[Delivery; 3]>::try_from(claimed).expect("three");

    // While leased, a delivery is not claimable; the store says when one will be.
    let idle = claim_one(&s, now).await;
    assert!(matches!(idle, DeliveryClaim::Idle(Some(_))), "{idle:?}");

    assert_eq!(deliver(&s, &[&a]).await, [true]);
    assert_eq!(deliver(&s, &[&a]).await, [false], "recorded once");

    let retry_at = now + chrono::Duration::seconds(60);
    s.deliveries
        .failed(&b, &unavailable(), Some(retry_at))
        .await
        .expect("failed");
    s.deliveries.release(&c).await.expect("released");
    assert!(
        matches!(
            s.deliveries.failed(&c, &unavailable(), None).await,
            Err(DeliveryError::ClaimLost)
        ),
        "a released claim records nothing"
    );

    // The released one is due at once, its claim not counted; the retry waits.
    let again = claim_all(&s, now).await;
    assert_eq!(again.len(), 1);
    assert_eq!(
        (again[0].event.id.as_str(), again[0].attempt),
        (c.event.id.as_str(), 1)
    );
    assert_eq!(deliver(&s, &[&again[0]]).await, [true]);
    assert_eq!(
        claim_one(&s, now).await,
        DeliveryClaim::Idle(Some(retry_at)),
        "the retry is the next due"
    );
    let retried = claim_all(&s, retry_at).await;
    assert_eq!(retried.len(), 1);
    assert_eq!(
        (retried[0].event.id.as_str(), retried[0].attempt),
        (b.event.id.as_str(), 2)
    );
    s.deliveries
        .failed(&retried[0], &unavailable(), None)
        .await
        .expect("dead");
    assert!(
        claim_all(&s, retry_at + chrono::Duration::days(30))
            .await
            .is_empty(),
        "dead stays dead"
    );

    let counts = s.subscriptions.counts(&sub.id).await.expect("counts");
    assert_eq!((counts.pending, counts.delivered, counts.dead), (0, 2, 1));
    assert_eq!(counts.last_failure_status, Some(503));
    assert!(counts.last_success_at.is_some() && counts.last_failure_at.is_some());
}

/// Deleting a subscription drops its pending deliveries; another's stay.
pub async fn a_deleted_subscription_takes_its_deliveries_with_it(s: Stores) {
    let service = service(&s, 100);
    let ds = dataset(&s, "unsubscribed", SIMPLE).await;
    let gone = subscribe(&s, &ds, Some(vec![EventKind::RecordCreated])).await;
    let kept = subscribe(&s, &ds, Some(vec![EventKind::RecordCreated])).await;
    receive(&service, &ds, b"id,group,value\na,g,1\n", None).await;
    drain(&service).await;
    s.subscriptions.delete(&ds, &gone.id).await.expect("delete");
    let claimed = claim_all(&s, Utc::now()).await;
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].subscription, kept.id);
    let counts = s.subscriptions.counts(&gone.id).await.expect("counts");
    assert_eq!((counts.pending, counts.delivered, counts.dead), (0, 0, 0));
}

/// A paused subscription's deliveries wait (nothing is lost) and are claimable again
/// once it is resumed; its URL, kinds and secret change in place.
pub async fn a_paused_subscription_keeps_its_deliveries_until_resumed(s: Stores) {
    let service = service(&s, 100);
    let ds = dataset(&s, "paused", SIMPLE).await;
    let sub = subscribe(&s, &ds, Some(vec![EventKind::RecordCreated])).await;
    let pause = crate::ports::SubscriptionChange {
        status: Some(SubscriptionStatus::Paused),
        ..Default::default()
    };
    let paused = s
        .subscriptions
        .update(&ds, &sub.id, &pause)
        .await
        .expect("paused");
    assert_eq!(paused.status, SubscriptionStatus::Paused);
    receive(&service, &ds, b"id,group,value\na,g,1\nb,g,2\n", None).await;
    drain(&service).await;
    assert!(
        claim_all(&s, Utc::now()).await.is_empty(),
        "a paused subscription is not sent to"
    );
    assert_eq!(
        s.subscriptions
            .counts(&sub.id)
            .await
            .expect("counts")
            .pending,
        2
    );

    let change = crate::ports::SubscriptionChange {
        status: Some(SubscriptionStatus::Active),
        url: Some("https://elsewhere.example/hook".into()),
        events: Some(None),
        secret: Some("whsec_bmV3IHNlY3JldCBvZiAzMiBieXRlcyBhdCBsZWFzdCEh".into()),
    };
    let resumed = s
        .subscriptions
        .update(&ds, &sub.id, &change)
        .await
        .expect("resumed");
    assert_eq!(resumed.status, SubscriptionStatus::Active);
    assert_eq!(resumed.events, None);
    let claimed = claim_all(&s, Utc::now()).await;
    assert_eq!(claimed.len(), 2);
    assert!(
        claimed
            .iter()
            .all(|d| d.url == "https://elsewhere.example/hook"
                && d.secret == "whsec_bmV3IHNlY3JldCBvZiAzMiBieXRlcyBhdCBsZWFzdCEh")
    );
    let other = dataset(&s, "unrelated", SIMPLE).await;
    assert!(matches!(
        s.subscriptions.update(&other, &sub.id, &pause).await,
        Err(DeliveryError::NotFound)
    ));
}

/// Deliveries are listed newest first, by status, a page at a time; dead ones, one
/// event, or everything since a time are replayed from a first attempt.
pub async fn deliveries_are_listed_and_replayed(s: Stores) {
    use crate::ports::{DeliveryListing, DeliveryStatus, Replay};
    let (sub, claimed) = three_claimed(&s, "listed").await;
    let now = Utc::now();
    assert_eq!(deliver(&s, &[&claimed[0]]).await, [true]);
    s.deliveries
        .failed(&claimed[1], &unavailable(), None)
        .await
        .expect("dead");
    s.deliveries
        .failed(&claimed[2], &unavailable(), None)
        .await
        .expect("dead");

    let all = DeliveryListing {
        status: None,
        before: None,
        limit: 2,
    };
    let first = s.deliveries.list(&sub.id, &all).await.expect("list");
    let seqs: Vec<i64> = first.iter().map(|d| d.sequence).collect();
    assert_eq!(
        seqs,
        [claimed[2].event.sequence, claimed[1].event.sequence],
        "newest first"
    );
    assert_eq!(first[0].status, DeliveryStatus::Dead);
    assert_eq!((first[0].attempts, first[0].last_status), (1, Some(503)));
    assert_eq!(
        first[0].last_error.as_deref(),
        Some("503 Service Unavailable")
    );
    let next = DeliveryListing {
        before: Some(first[1].sequence),
        ..all.clone()
    };
    let second = s.deliveries.list(&sub.id, &next).await.expect("list");
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].status, DeliveryStatus::Delivered);
    let dead = DeliveryListing {
        status: Some(DeliveryStatus::Dead),
        before: None,
        limit: 10,
    };
    assert_eq!(
        s.deliveries.list(&sub.id, &dead).await.expect("list").len(),
        2
    );

    let replayed = s
        .deliveries
        .replay(&sub.id, &Replay::Dead, now)
        .await
        .expect("replay");
    assert_eq!(replayed, 2);
    let again = claim_all(&s, now).await;
    assert_eq!(again.len(), 2);
    assert!(again.iter().all(|d| d.attempt == 1), "attempts start over");
    assert_eq!(
        deliver(&s, &again.iter().collect::<Vec<_>>()).await,
        [true, true]
    );
    let one = Replay::Event(claimed[0].event.id.clone());
    assert_eq!(
        s.deliveries
            .replay(&sub.id, &one, now)
            .await
            .expect("replay"),
        1
    );
    assert_eq!(claim_all(&s, now).await.len(), 1);
    let unknown = Replay::Event("no-such-event".into());
    assert_eq!(
        s.deliveries
            .replay(&sub.id, &unknown, now)
            .await
            .expect("replay"),
        0
    );
    // The event claimed just now is being sent: a replay leaves it alone.
    let since = Replay::Since(now - chrono::Duration::hours(1));
    assert_eq!(
        s.deliveries
            .replay(&sub.id, &since, now)
            .await
            .expect("replay"),
        2
    );
    let future = Replay::Since(now + chrono::Duration::hours(1));
    assert_eq!(
        s.deliveries
            .replay(&sub.id, &future, now)
            .await
            .expect("replay"),
        0
    );
}

/// A processed import wakes this process's delivery workers at once (on SQLite nothing
/// else would before their poll).
pub async fn a_processed_import_wakes_the_delivery_workers(s: Stores) {
    use crate::work::{Wakeups, WorkKind};
    let wakeups = Wakeups::default();
    let service = std::sync::Arc::new(
        crate::ingest::ImportService::new(
            s.ingest_ports(std::sync::Arc::new(super::SystemClock)),
            crate::ingest::IngestSettings::default(),
        )
        .woken_by(wakeups.clone()),
    );
    let ds = dataset(&s, "woken", SIMPLE).await;
    subscribe(&s, &ds, None).await;
    receive(&service, &ds, b"id,group,value\na,g,1\n", None).await;
    let woken = futures_lite::future::poll_once(wakeups.wait(WorkKind::Deliveries)).await;
    assert!(
        woken.is_none(),
        "nothing to deliver before the import is processed"
    );
    drain(&service).await;
    let woken = futures_lite::future::poll_once(wakeups.wait(WorkKind::Deliveries)).await;
    assert!(woken.is_some(), "the delivery workers were not woken");
}

/// A claim takes a batch: at most `most`, at most a subscription's room of each, the
/// longest waiting first within a subscription; a subscription without room is
/// skipped, and a batch of 2xx is recorded in one call, stale claims excepted.
pub async fn claims_take_batches_within_each_subscriptions_room(s: Stores) {
    let service = service(&s, 100);
    let ds = dataset(&s, "batched", SIMPLE).await;
    let first = subscribe(&s, &ds, Some(vec![EventKind::RecordCreated])).await;
    let second = subscribe(&s, &ds, Some(vec![EventKind::RecordCreated])).await;
    receive(
        &service,
        &ds,
        b"id,group,value\na,g,1\nb,g,2\nc,g,3\n",
        None,
    )
    .await;
    drain(&service).await;
    let now = Utc::now();
    let limits = |room: Vec<(String, u32)>| ClaimLimits {
        most: 10,
        per_subscription: 2,
        room,
    };
    let DeliveryClaim::Claimed(batch) = s
        .deliveries
        .claim("w", now, LEASE, &limits(Vec::new()))
        .await
        .expect("claim")
    else {
        panic!("nothing claimed")
    };
    let by = kinds_by_subscription(&batch);
    assert_eq!(by[&first.id].len(), 2, "two of each: {by:?}");
    assert_eq!(by[&second.id].len(), 2, "two of each: {by:?}");
    let mut seqs: Vec<i64> = batch
        .iter()
        .filter(|d| d.subscription == first.id)
        .map(|d| d.event.sequence)
        .collect();
    seqs.sort_unstable();
    let all_seqs = {
        let mut all: Vec<i64> = batch.iter().map(|d| d.event.sequence).collect();
        all.sort_unstable();
        all.dedup();
        all
    };
    assert_eq!(seqs, all_seqs, "the oldest two events, for both");

    let full = vec![(first.id.clone(), 0), (second.id.clone(), 0)];
    assert_eq!(
        s.deliveries
            .claim("w", now, LEASE, &limits(full))
            .await
            .expect("claim"),
        DeliveryClaim::Idle(None),
        "no room anywhere: nothing, and nothing due with room"
    );
    let one_more = vec![(first.id.clone(), 1), (second.id.clone(), 0)];
    let DeliveryClaim::Claimed(rest) = s
        .deliveries
        .claim("w", now, LEASE, &limits(one_more))
        .await
        .expect("claim")
    else {
        panic!("nothing claimed")
    };
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].subscription, first.id);

    let mut stale = batch[1].clone();
    stale.token = "not-the-claim".into();
    assert_eq!(
        deliver(&s, &[&batch[0], &stale, &batch[2]]).await,
        [true, false, true]
    );
}

/// Pruning deletes events older than the retention whose deliveries were all
/// delivered, with their deliveries; dead and pending ones stay.
pub async fn delivered_events_are_pruned_after_the_retention(s: Stores) {
    let (sub, claimed) = three_claimed(&s, "pruned").await;
    let now = Utc::now();
    assert_eq!(deliver(&s, &[&claimed[0]]).await, [true]);
    s.deliveries
        .failed(&claimed[1], &unavailable(), None)
        .await
        .expect("dead");
    s.deliveries
        .failed(&claimed[2], &unavailable(), Some(now))
        .await
        .expect("pending");

    let young = now - chrono::Duration::hours(1);
    assert_eq!(s.deliveries.prune(young, 100).await.expect("prune"), 0);
    let later = now + chrono::Duration::minutes(1);
    assert_eq!(s.deliveries.prune(later, 100).await.expect("prune"), 1);
    assert_eq!(s.deliveries.prune(later, 100).await.expect("prune"), 0);
    let counts = s.subscriptions.counts(&sub.id).await.expect("counts");
    assert_eq!((counts.pending, counts.delivered, counts.dead), (1, 0, 1));
    let listing = crate::ports::DeliveryListing {
        status: None,
        before: None,
        limit: 10,
    };
    let left: Vec<String> = s
        .deliveries
        .list(&sub.id, &listing)
        .await
        .expect("list")
        .into_iter()
        .map(|d| d.event)
        .collect();
    assert_eq!(
        left,
        [claimed[2].event.id.clone(), claimed[1].event.id.clone()]
    );
}

/// A subscription failing (no 2xx since a failed attempt) since before a time is
/// disabled; a success ends the failing, and resuming starts it over.
pub async fn failing_subscriptions_are_disabled(s: Stores) {
    let service = service(&s, 100);
    let ds = dataset(&s, "failing", SIMPLE).await;
    let failing = subscribe(&s, &ds, Some(vec![EventKind::RecordCreated])).await;
    let recovered = subscribe(&s, &ds, Some(vec![EventKind::RecordCreated])).await;
    let quiet = subscribe(&s, &ds, Some(vec![EventKind::ImportFailed])).await;
    receive(&service, &ds, b"id,group,value\na,g,1\nb,g,2\n", None).await;
    drain(&service).await;
    let now = Utc::now();
    let claimed = claim_all(&s, now).await;
    let of = |id: &str| -> Vec<&Delivery> {
        let mut of: Vec<&Delivery> = claimed.iter().filter(|d| d.subscription == id).collect();
        of.sort_by_key(|d| d.event.sequence);
        of
    };
    for d in of(&failing.id) {
        s.deliveries
            .failed(d, &unavailable(), Some(now))
            .await
            .expect("failed");
    }
    let [first, second] = <[&Delivery; 2]>::try_from(of(&recovered.id)).expect("two");
    s.deliveries
        .failed(first, &unavailable(), Some(now))
        .await
        .expect("failed");
    assert_eq!(deliver(&s, &[second]).await, [true]);

    let an_hour_ago = now - chrono::Duration::hours(1);
    assert!(
        s.subscriptions
            .disable_failing(an_hour_ago)
            .await
            .expect("disable")
            .is_empty(),
        "not failing for long enough"
    );
    let soon = Utc::now() + chrono::Duration::seconds(5);
    let disabled = s
        .subscriptions
        .disable_failing(soon)
        .await
        .expect("disable");
    assert_eq!(
        disabled.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        [failing.id.as_str()],
        "only the one whose every attempt failed"
    );
    assert_eq!(disabled[0].status, SubscriptionStatus::Disabled);
    let listed = s.subscriptions.get(&ds, &quiet.id).await.expect("get");
    assert_eq!(listed.status, SubscriptionStatus::Active, "never failed");
    assert!(
        claim_all(&s, now + chrono::Duration::days(1))
            .await
            .iter()
            .all(|d| d.subscription != failing.id),
        "a disabled subscription is not sent to"
    );

    let resume = crate::ports::SubscriptionChange {
        status: Some(SubscriptionStatus::Active),
        ..Default::default()
    };
    s.subscriptions
        .update(&ds, &failing.id, &resume)
        .await
        .expect("resumed");
    assert!(
        s.subscriptions
            .disable_failing(soon)
            .await
            .expect("disable")
            .is_empty(),
        "resuming starts the failing period over"
    );
}
