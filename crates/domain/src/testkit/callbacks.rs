//! The callback timer conformance cases: what every store of
//! [`crate::ports::CallbackTimers`] must do, with the timers the import writers leave.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::Stores;
use super::support::{dataset, drain, receive, service};
use crate::ports::{CallbackFiring, DeliveryClaim, DueCallback, EventKind};

const LEASE: Duration = Duration::from_secs(30);

/// Account updates of the accounts workload (id and version; tokens are the version),
/// each due back a minute after it is accepted.
pub fn accounts(updates: &[(&str, u32)]) -> Vec<u8> {
    let timed: Vec<(&str, u32, u32)> = updates.iter().map(|&(id, v)| (id, v, 60_000)).collect();
    accounts_due(&timed)
}

/// Account updates (id, version, `callbackTimeMs`); tokens are the version.
fn accounts_due(updates: &[(&str, u32, u32)]) -> Vec<u8> {
    let items: Vec<String> = updates
        .iter()
        .map(|(id, version, after)| {
            format!(
                r#"{{"id": "{id}", "parentProgram": "prog", "parentProgramSubType": "mint",
                     "tokens": {version}, "callbackTimeMs": {after}, "data": {{}}, "version": {version}}}"#
            )
        })
        .collect();
    format!("[{}]", items.join(",")).into_bytes()
}

/// A minute and a bit from now: every timer written now is due then.
fn later() -> DateTime<Utc> {
    Utc::now() + chrono::Duration::seconds(61)
}

/// The accounts dataset, with a subscription to its callbacks.
async fn watched_accounts(s: &Stores) -> crate::DatasetName {
    let ds = dataset(s, "accounts", super::ACCOUNTS.contract).await;
    let watcher = crate::ports::NewSubscription {
        dataset: ds.clone(),
        url: "https://receiver.example/hook".into(),
        events: Some(vec![EventKind::RecordCallback]),
        secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
    };
    s.subscriptions.create(&watcher).await.expect("subscribed");
    ds
}

async fn fire(s: &Stores, at: DateTime<Utc>, limit: u32) -> Vec<DueCallback> {
    match s.callbacks.fire_due(at, limit).await.expect("fire") {
        CallbackFiring::Fired(fired) => fired,
        CallbackFiring::Idle(_) => Vec::new(),
    }
}

/// Due timers fire once, earliest first, each with a `record.callback` event holding
/// the record as it was at the timer's version; a timer cancelled by a newer version
/// never fires; an idle round says when the next timer is due.
pub async fn due_timers_fire_once_with_the_record_at_their_version(s: Stores) {
    let service = service(&s, 16);
    let ds = watched_accounts(&s).await;
    receive(
        &service,
        &ds,
        &accounts_due(&[("acc-1", 1, 60_000), ("acc-2", 1, 30_000)]),
        None,
    )
    .await;
    drain(&service).await;
    assert_eq!(s.callbacks.pending().await.expect("pending"), 2);
    match s.callbacks.fire_due(Utc::now(), 10).await.expect("fire") {
        CallbackFiring::Idle(Some(next)) => {
            let left = next - Utc::now();
            assert!(
                left > chrono::Duration::seconds(25) && left < chrono::Duration::seconds(31),
                "the earliest is acc-2's, due in 30 s: {next}"
            );
        }
        other => panic!("nothing is due before its time: {other:?}"),
    }
    // A newer version of acc-2 cancels its timer and starts one of its own.
    receive(&service, &ds, &accounts_due(&[("acc-2", 2, 50_000)]), None).await;
    drain(&service).await;

    let at = later();
    let fired = fire(&s, at, 10).await;
    let fired_versions: Vec<(&str, Option<i64>)> =
        fired.iter().map(|d| (d.key.as_str(), d.version)).collect();
    assert_eq!(
        fired_versions,
        [("acc-2", Some(2)), ("acc-1", Some(1))],
        "earliest due first; the cancelled version 1 of acc-2 never fires"
    );
    assert!(
        fired
            .iter()
            .all(|d| d.dataset == ds && !d.import.is_empty())
    );
    assert!(
        fire(&s, at + chrono::Duration::hours(1), 10)
            .await
            .is_empty(),
        "a timer fires once"
    );
    assert_eq!(s.callbacks.pending().await.expect("pending"), 0);

    // Their events, each with the record at its version, reach the subscription (due
    // when they were written).
    let DeliveryClaim::Claimed(sent) = s
        .deliveries
        .claim(
            "w",
            at,
            LEASE,
            &crate::ports::ClaimLimits {
                most: 10,
                per_subscription: 10,
                room: Vec::new(),
            },
        )
        .await
        .expect("claim")
    else {
        panic!("no callback event was written")
    };
    let mut events: Vec<(String, i64, i64)> = sent
        .iter()
        .map(|d| {
            let p = &d.event.payload;
            assert_eq!(d.event.kind, EventKind::RecordCallback);
            (
                p["key"].as_str().unwrap_or_default().to_owned(),
                p["version"].as_i64().unwrap_or_default(),
                p["record"]["version"].as_i64().unwrap_or_default(),
            )
        })
        .collect();
    events.sort();
    assert_eq!(
        events,
        [("acc-1".into(), 1, 1), ("acc-2".into(), 2, 2)],
        "{sent:?}"
    );
}

/// Concurrent firers never fire the same timer, and together they fire every due one.
pub async fn concurrent_firers_never_fire_a_timer_twice(s: Stores) {
    let service = service(&s, 16);
    let ds = dataset(&s, "accounts", super::ACCOUNTS.contract).await;
    let updates: Vec<(String, u32)> = (0..40).map(|i| (format!("acc-{i}"), 1)).collect();
    let updates: Vec<(&str, u32)> = updates.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    receive(&service, &ds, &accounts(&updates), None).await;
    drain(&service).await;
    let at = later();
    let firers = (0..4).map(|_| {
        let timers = s.callbacks.clone();
        async move {
            let mut keys = Vec::new();
            while let CallbackFiring::Fired(fired) = timers.fire_due(at, 3).await.expect("fire") {
                keys.extend(fired.into_iter().map(|d| d.key));
            }
            keys
        }
    });
    let mut keys: Vec<String> = super::storage::futures_join_all(firers)
        .await
        .into_iter()
        .flatten()
        .collect();
    keys.extend(fire(&s, at, 100).await.into_iter().map(|d| d.key));
    keys.sort();
    let fires = keys.len();
    keys.dedup();
    assert_eq!(keys.len(), fires, "a timer fired twice: {keys:?}");
    assert_eq!(fires, 40, "every timer fired");
    assert_eq!(s.callbacks.pending().await.expect("pending"), 0);
}

/// What the callbacks table must hold after `acc-1` at versions 1, 3 and 2 (in that
/// order), as (version, status, replaced_by) by id: version 3 cancelled version 1's
/// callback; version 2, older, touched nothing.
pub const CANCELLED_THEN_PENDING: [(Option<i64>, &str, Option<i64>); 2] =
    [(Some(1), "cancelled", Some(3)), (Some(3), "pending", None)];

/// The documents that leave [`CANCELLED_THEN_PENDING`].
pub fn newer_then_older() -> [Vec<u8>; 3] {
    [1, 3, 2].map(|v| accounts(&[("acc-1", v)]))
}

/// A dataset's timers are listed newest first with their outcome (pending, fired with
/// its event, cancelled with the version that replaced it), filtered by status and
/// paged by cursor; settled ones are pruned after the retention, pending ones never.
pub async fn timers_are_listed_with_their_outcome_and_settled_ones_pruned(s: Stores) {
    use crate::ports::{CallbackListing, CallbackStatus};
    let service = service(&s, 16);
    let ds = watched_accounts(&s).await;
    receive(
        &service,
        &ds,
        &accounts_due(&[
            ("acc-1", 1, 1000),
            ("acc-2", 1, 60_000),
            ("acc-3", 1, 60_000),
        ]),
        None,
    )
    .await;
    drain(&service).await;
    // acc-2's newer version cancels its timer; acc-1's fires.
    receive(&service, &ds, &accounts(&[("acc-2", 2)]), None).await;
    drain(&service).await;
    let at = Utc::now() + chrono::Duration::seconds(2);
    let fired = fire(&s, at, 10).await;
    assert_eq!(fired.len(), 1, "only acc-1 is due: {fired:?}");

    let list = |status: Option<CallbackStatus>, before: Option<i64>, limit: u32| {
        let listing = CallbackListing {
            status,
            before,
            limit,
        };
        let (timers, ds) = (s.callbacks.clone(), ds.clone());
        async move { timers.list(&ds, &listing).await.expect("list") }
    };
    let all = list(None, None, 10).await;
    assert!(
        all.windows(2).all(|w| w[0].id > w[1].id),
        "newest first: {all:?}"
    );
    let newest = &all[0];
    assert_eq!(
        (newest.key.as_str(), newest.version, newest.status),
        ("acc-2", Some(2), CallbackStatus::Pending),
        "the last import's timer is the newest"
    );
    let by_key = |key: &str, version: i64| {
        all.iter()
            .find(|c| c.key == key && c.version == Some(version))
            .unwrap_or_else(|| panic!("{key} v{version} is listed: {all:?}"))
    };
    let fired = by_key("acc-1", 1);
    assert_eq!(fired.status, CallbackStatus::Fired);
    let settled = fired.settled_at.expect("settled");
    assert!(
        (settled - at).num_milliseconds().abs() <= 1,
        "fired at {settled}, not {at}"
    );
    assert!(fired.event.is_some(), "the event it wrote: {fired:?}");
    let replaced = by_key("acc-2", 1);
    assert_eq!(replaced.status, CallbackStatus::Cancelled);
    assert_eq!(replaced.replaced_by, Some(2));
    assert!(replaced.settled_at.is_some() && replaced.event.is_none());
    assert_eq!(by_key("acc-3", 1).status, CallbackStatus::Pending);
    assert_eq!(all.len(), 4);
    assert!(all.iter().all(|c| !c.import.is_empty()));

    let cancelled = list(Some(CallbackStatus::Cancelled), None, 10).await;
    assert_eq!(cancelled.len(), 1);
    assert_eq!(cancelled[0].key, "acc-2");
    let first = list(None, None, 2).await;
    let rest = list(None, Some(first[1].id), 10).await;
    let paged: Vec<i64> = first.iter().chain(&rest).map(|c| c.id).collect();
    let whole: Vec<i64> = all.iter().map(|c| c.id).collect();
    assert_eq!(paged, whole, "a cursor continues where the page ended");
    let other = crate::DatasetName::parse("nothing-here").expect("name");
    let listing = CallbackListing {
        status: None,
        before: None,
        limit: 10,
    };
    assert!(
        s.callbacks
            .list(&other, &listing)
            .await
            .expect("list")
            .is_empty()
    );

    // Pruning takes settled timers older than the cut-off, a batch at a time.
    let now = Utc::now();
    assert_eq!(
        s.callbacks
            .prune(now - chrono::Duration::hours(1), 10)
            .await
            .expect("prune"),
        0,
        "nothing settled that long ago"
    );
    assert_eq!(
        s.callbacks
            .prune(at + chrono::Duration::seconds(1), 1)
            .await
            .expect("prune"),
        1
    );
    assert_eq!(
        s.callbacks
            .prune(at + chrono::Duration::seconds(1), 10)
            .await
            .expect("prune"),
        1
    );
    let left: Vec<CallbackStatus> = list(None, None, 10)
        .await
        .iter()
        .map(|c| c.status)
        .collect();
    assert_eq!(left, [CallbackStatus::Pending, CallbackStatus::Pending]);
}

/// Deleting a record (ADR 40) cancels its pending callback in the deletion's unit of
/// work: it never fires, and the other keys' timers still do.
pub async fn a_deleted_record_never_calls_back(s: Stores) {
    let service = service(&s, 16);
    let ds = watched_accounts(&s).await;
    receive(
        &service,
        &ds,
        &accounts(&[("acc-1", 1), ("acc-2", 1)]),
        None,
    )
    .await;
    drain(&service).await;
    assert_eq!(s.callbacks.pending().await.expect("pending"), 2);
    let key = crate::RecordKey::parse("acc-1", 1).expect("key");
    let state = s.records.get(&ds, &key).await.expect("acc-1");
    service
        .delete_record(&ds, &state, "test", None)
        .await
        .expect("stored");
    let done = drain(&service).await;
    assert_eq!(done.iter().map(|p| p.report.deleted).sum::<u64>(), 1);
    assert_eq!(s.callbacks.pending().await.expect("pending"), 1);
    let fired: Vec<String> = fire(&s, later(), 10)
        .await
        .into_iter()
        .map(|d| d.key)
        .collect();
    assert_eq!(fired, ["acc-2"], "the deleted acc-1 never calls back");
}
