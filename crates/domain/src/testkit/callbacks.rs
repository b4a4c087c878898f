//! The callback timer conformance cases: what every store of
//! [`crate::ports::CallbackTimers`] must do, with the timers the import writers leave.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::Stores;
use super::support::{dataset, drain, receive, service};
use crate::ports::{CallbackClaim, DeliveryClaim, DeliveryError, DueCallback, EventKind};

const LEASE: Duration = Duration::from_secs(30);

/// Account updates of the accounts workload (id and version; tokens are the version),
/// each due back a minute after it is accepted.
pub fn accounts(updates: &[(&str, u32)]) -> Vec<u8> {
    let items: Vec<String> = updates
        .iter()
        .map(|(id, version)| {
            format!(
                r#"{{"id": "{id}", "parentProgram": "prog", "parentProgramSubType": "mint",
                     "tokens": {version}, "callbackTimeMs": 60000, "data": {{}}, "version": {version}}}"#
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

async fn claim(s: &Stores, at: DateTime<Utc>, limit: u32) -> Vec<DueCallback> {
    match s.callbacks.claim(at, LEASE, limit).await.expect("claim") {
        CallbackClaim::Claimed(due) => due,
        CallbackClaim::Idle(_) => Vec::new(),
    }
}

/// A due timer fires once, with a `record.callback` event holding the record as it was
/// at the timer's version; one cancelled by a newer version while claimed does not
/// fire; the newer version's timer stays pending, and an idle claim says when it is due.
pub async fn due_timers_fire_once_with_the_record_at_their_version(s: Stores) {
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
    assert!(
        claim(&s, Utc::now(), 10).await.is_empty(),
        "nothing is due before its time"
    );

    let at = later();
    let due = claim(&s, at, 10).await;
    assert_eq!(due.len(), 2, "{due:?}");
    assert!(
        claim(&s, at, 10).await.is_empty(),
        "claimed timers are not claimed again while their lease holds"
    );
    // A newer version of acc-2 arrives while its timer is claimed: it is cancelled.
    receive(&service, &ds, &accounts(&[("acc-2", 2)]), None).await;
    drain(&service).await;
    let fired = s.callbacks.fire(&due, at).await.expect("fire");
    let by_key: Vec<(&str, bool)> = due.iter().map(|d| d.key.as_str()).zip(fired).collect();
    assert!(by_key.contains(&("acc-1", true)), "{by_key:?}");
    assert!(by_key.contains(&("acc-2", false)), "{by_key:?}");
    assert_eq!(
        s.callbacks.fire(&due, at).await.expect("fire"),
        [false, false],
        "a timer fires once"
    );
    let acc1 = due.iter().find(|d| d.key == "acc-1").expect("acc-1");
    assert!(matches!(
        s.callbacks.release(acc1).await,
        Err(DeliveryError::ClaimLost)
    ));

    // Its event, with the record at version 1, reaches the subscription (due when it
    // was written).
    let DeliveryClaim::Claimed(sent) = s
        .deliveries
        .claim("w", at, LEASE, &crate::ports::ClaimLimits::one())
        .await
        .expect("claim")
    else {
        panic!("no callback event was written")
    };
    let event = &sent[0].event;
    assert_eq!(event.kind, EventKind::RecordCallback);
    assert_eq!(event.payload["key"], "acc-1");
    assert_eq!(event.payload["version"], 1);
    assert_eq!(event.payload["record"]["version"], 1, "{}", event.payload);

    // acc-2's version 2 timer is pending, due about a minute from when it was written.
    assert_eq!(s.callbacks.pending().await.expect("pending"), 1);
    match s
        .callbacks
        .claim(Utc::now(), LEASE, 10)
        .await
        .expect("claim")
    {
        CallbackClaim::Idle(Some(next)) => {
            assert!(next > Utc::now() + chrono::Duration::seconds(50), "{next}")
        }
        other => panic!("{other:?}"),
    }
    let again = claim(&s, later(), 10).await;
    assert_eq!(again.len(), 1);
    assert_eq!(
        (again[0].key.as_str(), again[0].version),
        ("acc-2", Some(2))
    );
}

/// Concurrent claimers never get the same timer, and a released one is claimable again.
pub async fn concurrent_claimers_never_share_a_timer_and_a_release_gives_it_back(s: Stores) {
    let service = service(&s, 16);
    let ds = dataset(&s, "accounts", super::ACCOUNTS.contract).await;
    let updates: Vec<(String, u32)> = (0..6).map(|i| (format!("acc-{i}"), 1)).collect();
    let updates: Vec<(&str, u32)> = updates.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    receive(&service, &ds, &accounts(&updates), None).await;
    drain(&service).await;
    let at = later();
    let claims = (0..4).map(|_| {
        let timers = s.callbacks.clone();
        async move { timers.claim(at, LEASE, 1).await.expect("claim") }
    });
    let mut keys: Vec<String> = super::storage::futures_join_all(claims)
        .await
        .into_iter()
        .flat_map(|c| match c {
            CallbackClaim::Claimed(due) => due,
            CallbackClaim::Idle(_) => Vec::new(),
        })
        .map(|d| d.key)
        .collect();
    keys.sort();
    let unique = keys.len();
    keys.dedup();
    assert_eq!(keys.len(), unique, "a timer claimed twice: {keys:?}");
    let rest = claim(&s, at, 10).await;
    assert_eq!(unique, 4, "each claimer got one");
    assert_eq!(rest.len(), 2, "every timer claimed once");
    s.callbacks.release(&rest[0]).await.expect("released");
    let back = claim(&s, at, 10).await;
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].key, rest[0].key);
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
        &accounts(&[("acc-1", 1), ("acc-2", 1), ("acc-3", 1)]),
        None,
    )
    .await;
    drain(&service).await;
    // acc-2's newer version cancels its timer; acc-1's fires.
    receive(&service, &ds, &accounts(&[("acc-2", 2)]), None).await;
    drain(&service).await;
    let at = later();
    let due = claim(&s, at, 10).await;
    let (acc1, others): (Vec<_>, Vec<_>) = due.into_iter().partition(|d| d.key == "acc-1");
    assert_eq!(s.callbacks.fire(&acc1, at).await.expect("fire"), [true]);
    for d in &others {
        s.callbacks.release(d).await.expect("release");
    }

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
