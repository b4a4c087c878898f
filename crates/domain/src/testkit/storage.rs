//! The storage suite: catalog, vault, queue and record store, through their ports.

use std::collections::HashSet;
use std::time::Duration;

use super::Stores;
use super::support::{
    SIMPLE, batch, contract, dataset, name, new_import, read_back, record, store, with_note,
};
use crate::merge::Verdict;
use crate::model::{ContractVersion, ImportReport, ImportStatus, RecordKey, Revision};
use crate::ports::{CatalogError, QueueError, StoreError, VaultError};

const LEASE: Duration = Duration::from_secs(30);

/// Datasets start at revision 0 with contract 1, and list by name.
pub async fn datasets_are_created_read_and_listed(s: Stores) {
    dataset(&s, "zeta", SIMPLE).await;
    let alpha = dataset(&s, "alpha", SIMPLE).await;
    let got = s.datasets.get(&alpha).await.expect("get");
    assert_eq!(got.name, alpha);
    assert_eq!(got.revision, Revision::new(0));
    assert_eq!(got.current_contract, ContractVersion::FIRST);
    let names: Vec<_> = s.datasets.list().await.expect("list");
    let names: Vec<_> = names.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["alpha", "zeta"]);
    let missing = s.datasets.get(&name("missing")).await;
    assert!(
        matches!(missing, Err(CatalogError::NotFound)),
        "{missing:?}"
    );
}

/// Concurrent creators of one name: exactly one wins, the rest hear `AlreadyExists`.
pub async fn a_dataset_name_is_taken_once_even_under_races(s: Stores) {
    let ds = name("contested");
    let c = contract(SIMPLE);
    let attempts = (0..4).map(|_| s.datasets.create(&ds, &c));
    let results = futures_join_all(attempts).await;
    let won = results.iter().filter(|r| r.is_ok()).count();
    let refused = results
        .iter()
        .filter(|r| matches!(r, Err(CatalogError::AlreadyExists)))
        .count();
    assert_eq!((won, refused), (1, 3), "{results:?}");
}

/// Publishing numbers versions 2, 3, … with no gap or repeat, even concurrently; the
/// latest becomes current and each reads back as published.
pub async fn contracts_are_numbered_without_gaps_under_concurrent_publishers(s: Stores) {
    let ds = dataset(&s, "versions", SIMPLE).await;
    let c = contract(&SIMPLE.replace("last_wins", "first_wins"));
    let published = futures_join_all((0..6).map(|_| s.contracts.publish(&ds, &c))).await;
    let mut numbers: Vec<u32> = published
        .iter()
        .map(|p| p.as_ref().expect("published").version.get())
        .collect();
    numbers.sort_unstable();
    assert_eq!(numbers, [2, 3, 4, 5, 6, 7]);
    let all = s.contracts.list(&ds).await.expect("list");
    let listed: Vec<u32> = all.iter().map(|p| p.version.get()).collect();
    assert_eq!(listed, [1, 2, 3, 4, 5, 6, 7]);
    let v7 = ContractVersion::try_new(7).expect("version");
    let got = s.contracts.get(&ds, v7).await.expect("get");
    assert_eq!(got.contract.to_json(), c.to_json());
    assert_eq!(s.datasets.get(&ds).await.expect("get").current_contract, v7);
    let v9 = ContractVersion::try_new(9).expect("version");
    assert!(matches!(
        s.contracts.get(&ds, v9).await,
        Err(CatalogError::NotFound)
    ));
    let unknown = s.contracts.publish(&name("nope"), &c).await;
    assert!(
        matches!(unknown, Err(CatalogError::NotFound)),
        "{unknown:?}"
    );
}

/// A 5 MiB document written in chunks reads back identical, with its size and hash.
pub async fn the_vault_keeps_large_documents_byte_for_byte(s: Stores) {
    let ds = dataset(&s, "vault", SIMPLE).await;
    let body: Vec<u8> = (0..5 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let import = store(&s, &ds, &body, None).await.expect("stored");
    assert_eq!(import.size, body.len() as u64);
    assert_eq!(import.sha256, super::support::sha256_hex(&body));
    assert_eq!(import.status, ImportStatus::Received);
    assert_eq!(import.report, None);
    assert!(read_back(&s, &import).await == body, "bytes differ");
    assert_eq!(s.vault.get(&import.id).await.expect("get"), import);
}

/// A writer dropped before commit leaves no import and nothing queued.
pub async fn the_vault_keeps_nothing_from_a_dropped_writer(s: Stores) {
    let ds = dataset(&s, "dropped", SIMPLE).await;
    let mut writer = s
        .vault
        .begin(&new_import(&ds, Some("k1")))
        .await
        .expect("begin");
    writer
        .write(b"id,group,value\n1,a,1\n")
        .await
        .expect("write");
    drop(writer);
    assert!(s.vault.list(&ds, 10, 0).await.expect("list").is_empty());
    assert_eq!(s.queue.depth().await.expect("depth"), 0);
    let again = store(&s, &ds, b"id,group,value\n", Some("k1")).await;
    assert!(
        again.is_ok(),
        "the key of a dropped writer is free: {again:?}"
    );
}

/// The same body, or the same idempotency key, for a dataset answers the first
/// import; another dataset is independent.
pub async fn the_vault_answers_the_first_import_for_a_repeated_body_or_key(s: Stores) {
    let ds = dataset(&s, "idem", SIMPLE).await;
    let other = dataset(&s, "other", SIMPLE).await;
    let first = store(&s, &ds, b"body one", Some("key-1"))
        .await
        .expect("first");
    let same_body = store(&s, &ds, b"body one", None).await;
    assert!(matches!(&same_body, Err(VaultError::AlreadyReceived(i)) if i.id == first.id));
    let same_key = s.vault.begin(&new_import(&ds, Some("key-1"))).await;
    assert!(matches!(&same_key, Err(VaultError::AlreadyReceived(i)) if i.id == first.id));
    let elsewhere = store(&s, &other, b"body one", Some("key-1")).await;
    assert!(elsewhere.is_ok_and(|i| i.id != first.id));
    assert_eq!(s.vault.list(&ds, 10, 0).await.expect("list").len(), 1);
}

/// Imports list newest first, page by page; unknown ids are `NotFound`.
pub async fn the_vault_lists_imports_newest_first(s: Stores) {
    let ds = dataset(&s, "listing", SIMPLE).await;
    let mut ids = Vec::new();
    for body in ["a", "b", "c"] {
        ids.push(
            store(&s, &ds, body.as_bytes(), None)
                .await
                .expect("stored")
                .id,
        );
    }
    let page = s.vault.list(&ds, 2, 0).await.expect("list");
    let page: Vec<_> = page.into_iter().map(|i| i.id).collect();
    assert_eq!(page, [ids[2].clone(), ids[1].clone()]);
    let rest = s.vault.list(&ds, 2, 2).await.expect("list");
    assert_eq!(
        rest.into_iter().map(|i| i.id).collect::<Vec<_>>(),
        [ids[0].clone()]
    );
    // Keyset pages: before an import, newest first; one arriving meanwhile does not
    // shift them.
    store(&s, &ds, b"d", None).await.expect("stored");
    let before = s.vault.list_before(&ds, &ids[2], 5).await.expect("list");
    let before: Vec<_> = before.into_iter().map(|i| i.id).collect();
    assert_eq!(before, [ids[1].clone(), ids[0].clone()]);
    let last = s.vault.list_before(&ds, &ids[1], 1).await.expect("list");
    assert_eq!(last.len(), 1);
    assert!(
        s.vault
            .list_before(&ds, &ids[0], 5)
            .await
            .expect("list")
            .is_empty()
    );
    let unknown = crate::ImportId::parse("nope").expect("id");
    assert!(
        s.vault
            .list_before(&ds, &unknown, 5)
            .await
            .expect("list")
            .is_empty()
    );
    let missing = crate::ImportId::parse("missing").expect("id");
    assert!(matches!(
        s.vault.get(&missing).await,
        Err(VaultError::NotFound)
    ));
    assert!(matches!(
        s.vault.open(&missing).await,
        Err(VaultError::NotFound)
    ));
}

/// Claims come oldest first, mark the import `processing`, and end with `None`.
pub async fn the_queue_hands_out_the_oldest_import_first(s: Stores) {
    let ds = dataset(&s, "fifo", SIMPLE).await;
    let mut ids = Vec::new();
    for body in ["1", "2", "3"] {
        ids.push(
            store(&s, &ds, body.as_bytes(), None)
                .await
                .expect("stored")
                .id,
        );
    }
    assert_eq!(s.queue.depth().await.expect("depth"), 3);
    for id in &ids {
        let lease = s
            .queue
            .claim("w", LEASE)
            .await
            .expect("claim")
            .expect("one");
        assert_eq!(&lease.import, id);
        let status = s.vault.get(id).await.expect("get").status;
        assert_eq!(status, ImportStatus::Processing);
    }
    assert_eq!(s.queue.claim("w", LEASE).await.expect("claim"), None);
    assert_eq!(s.queue.depth().await.expect("depth"), 0);
}

/// Eight claimers racing over twenty imports: each import is claimed exactly once.
pub async fn concurrent_claimers_never_share_an_import(s: Stores) {
    let ds = dataset(&s, "race", SIMPLE).await;
    for i in 0..20 {
        store(&s, &ds, format!("doc {i}").as_bytes(), None)
            .await
            .expect("stored");
    }
    let claimers = (0..8).map(|w| {
        let queue = s.queue.clone();
        async move {
            let mut got = Vec::new();
            while let Some(lease) = queue.claim(&format!("w{w}"), LEASE).await.expect("claim") {
                got.push(lease.import);
            }
            got
        }
    });
    let claimed: Vec<_> = futures_join_all(claimers)
        .await
        .into_iter()
        .flatten()
        .collect();
    let unique: HashSet<_> = claimed.iter().collect();
    assert_eq!((claimed.len(), unique.len()), (20, 20));
}

/// An expired lease is claimed again under a new token; the old holder can neither
/// renew nor release it.
pub async fn expired_leases_are_reclaimed_and_stale_holders_refused(s: Stores) {
    let ds = dataset(&s, "expiry", SIMPLE).await;
    store(&s, &ds, b"doc", None).await.expect("stored");
    let short = Duration::from_millis(200);
    let old = s
        .queue
        .claim("w1", short)
        .await
        .expect("claim")
        .expect("one");
    assert_eq!(
        s.queue.claim("w2", LEASE).await.expect("claim"),
        None,
        "still held"
    );
    let renewed = s.queue.renew(&old, short).await.expect("renew while held");
    assert!(renewed.expires_at >= old.expires_at);
    sleep(Duration::from_millis(400)).await;
    assert_eq!(
        s.queue.depth().await.expect("depth"),
        1,
        "expired counts as waiting"
    );
    let new = s
        .queue
        .claim("w2", LEASE)
        .await
        .expect("claim")
        .expect("reclaimed");
    assert_eq!(new.import, old.import);
    assert_ne!(new.token, old.token);
    assert!(matches!(
        s.queue.renew(&old, LEASE).await,
        Err(QueueError::LeaseLost)
    ));
    assert!(matches!(
        s.queue.release(&old).await,
        Err(QueueError::LeaseLost)
    ));
    s.queue
        .renew(&new, LEASE)
        .await
        .expect("the new holder renews");
}

/// A released import is `received` again and the next claim gets it.
pub async fn a_released_import_is_claimed_again(s: Stores) {
    let ds = dataset(&s, "release", SIMPLE).await;
    let import = store(&s, &ds, b"doc", None).await.expect("stored");
    let lease = s
        .queue
        .claim("w1", LEASE)
        .await
        .expect("claim")
        .expect("one");
    s.queue.release(&lease).await.expect("release");
    assert_eq!(
        s.vault.get(&import.id).await.expect("get").status,
        ImportStatus::Received
    );
    let again = s
        .queue
        .claim("w2", LEASE)
        .await
        .expect("claim")
        .expect("again");
    assert_eq!(again.import, import.id);
}

/// Dropping a writer rolls back its batches: nothing is visible, the import can be
/// released and processed again.
pub async fn a_dropped_writer_rolls_everything_back(s: Stores) {
    let ds = dataset(&s, "rollback", SIMPLE).await;
    store(&s, &ds, b"doc", None).await.expect("stored");
    let lease = s
        .queue
        .claim("w", LEASE)
        .await
        .expect("claim")
        .expect("one");
    let mut writer = s.records.begin_apply(&lease).await.expect("begin");
    writer
        .apply(&batch(vec![record("k1", "g", 1.0)]))
        .await
        .expect("apply");
    drop(writer);
    let key = RecordKey::try_new(vec!["k1".into()]).expect("key");
    assert!(matches!(
        s.records.get(&ds, &key).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.records
            .history(&ds, &key, &crate::ports::HistoryPage::ALL)
            .await,
        Err(StoreError::NotFound)
    ));
    s.queue.release(&lease).await.expect("release");
    let again = s
        .queue
        .claim("w", LEASE)
        .await
        .expect("claim")
        .expect("again");
    let writer = s.records.begin_apply(&again).await.expect("begin again");
    writer
        .finish(Verdict::Commit, &ImportReport::default())
        .await
        .expect("finish");
    assert_eq!(
        s.datasets.get(&ds).await.expect("get").revision,
        Revision::new(1)
    );
}

/// Inside its unit of work a writer loads what its earlier batches wrote; readers see
/// nothing until `finish`, then everything, with history and a new revision.
pub async fn a_writer_sees_its_own_batches_and_commits_them_at_once(s: Stores) {
    let ds = dataset(&s, "unit", SIMPLE).await;
    let import = store(&s, &ds, b"doc", None).await.expect("stored");
    let lease = s
        .queue
        .claim("w", LEASE)
        .await
        .expect("claim")
        .expect("one");
    let mut writer = s.records.begin_apply(&lease).await.expect("begin");
    let first = record("k1", "g", 1.0);
    writer
        .apply(&batch(vec![first.clone()]))
        .await
        .expect("apply");
    let (loaded, _) = writer
        .load(std::slice::from_ref(&first.key), &[])
        .await
        .expect("load");
    assert_eq!(loaded.get(&first.key), Some(&first));
    assert!(matches!(
        s.records.get(&ds, &first.key).await,
        Err(StoreError::NotFound)
    ));
    let mut second = record("k1", "h", 2.0);
    second.version = None;
    let mut update = batch(vec![second.clone()]);
    update.changes[0].kind = crate::merge::ChangeKind::Updated;
    writer.apply(&update).await.expect("apply");
    writer
        .renew(LEASE)
        .await
        .expect("renew inside the unit of work");
    let report = ImportReport {
        seen: 2,
        inserted: 1,
        updated: 1,
        ..ImportReport::default()
    };
    let revision = writer
        .finish(Verdict::Commit, &report)
        .await
        .expect("finish")
        .revision;
    assert_eq!(revision, Revision::new(1));
    let stored = s.records.get(&ds, &first.key).await.expect("get");
    assert_eq!(
        (stored.record, stored.import),
        (second.clone(), import.id.clone())
    );
    let history = s
        .records
        .history(&ds, &first.key, &crate::ports::HistoryPage::ALL)
        .await
        .expect("history");
    let states: Vec<_> = history.entries.iter().map(|h| h.record.clone()).collect();
    assert_eq!(states, [first.clone(), second.clone()]);
    assert_eq!(history.next, None);
    // A page at a time: one entry, then the next from its cursor, then nothing more.
    let one = crate::ports::HistoryPage {
        limit: 1,
        after: None,
    };
    let page = s
        .records
        .history(&ds, &first.key, &one)
        .await
        .expect("page");
    assert_eq!(
        page.entries.iter().map(|h| &h.record).collect::<Vec<_>>(),
        [&first]
    );
    let next = crate::ports::HistoryPage {
        limit: 1,
        after: page.next,
    };
    assert!(next.after.is_some(), "a second entry follows");
    let page = s
        .records
        .history(&ds, &first.key, &next)
        .await
        .expect("page");
    assert_eq!(
        page.entries.iter().map(|h| &h.record).collect::<Vec<_>>(),
        [&second]
    );
    assert_eq!(page.next, None, "nothing after the last entry");
    // Past the last entry, a key with history has an empty page; a key without any
    // has none, cursor or not.
    let past = crate::ports::HistoryPage {
        limit: 1,
        after: next.after.map(|a| a + 1_000_000),
    };
    let page = s.records.history(&ds, &first.key, &past).await;
    assert!(page.expect("page").entries.is_empty());
    let unknown = crate::RecordKey::try_new(vec!["never".into()]).expect("key");
    assert!(matches!(
        s.records.history(&ds, &unknown, &past).await,
        Err(StoreError::NotFound)
    ));
    let done = s.vault.get(&import.id).await.expect("get");
    assert_eq!(
        (done.status, done.report),
        (ImportStatus::Completed, Some(report))
    );
    assert_eq!(s.datasets.get(&ds).await.expect("get").revision, revision);
}

/// A worker whose lease was taken over cannot open or finish a unit of work.
pub async fn a_lost_lease_stops_the_writer(s: Stores) {
    let ds = dataset(&s, "lost", SIMPLE).await;
    store(&s, &ds, b"doc", None).await.expect("stored");
    let old = s
        .queue
        .claim("w1", Duration::from_millis(100))
        .await
        .expect("claim")
        .expect("one");
    sleep(Duration::from_millis(300)).await;
    let new = s
        .queue
        .claim("w2", LEASE)
        .await
        .expect("claim")
        .expect("reclaimed");
    let stale = s.records.begin_apply(&old).await;
    assert!(
        matches!(stale, Err(StoreError::LeaseLost)),
        "{:?}",
        stale.err()
    );
    let writer = s
        .records
        .begin_apply(&new)
        .await
        .expect("the new holder writes");
    writer
        .finish(Verdict::Commit, &ImportReport::default())
        .await
        .expect("finish");
}

/// A rejected import keeps none of its batches, is `failed` with its report, and
/// leaves the revision alone.
pub async fn a_rejected_import_keeps_nothing_and_is_marked_failed(s: Stores) {
    let ds = dataset(&s, "reject", SIMPLE).await;
    let import = store(&s, &ds, b"doc", None).await.expect("stored");
    let lease = s
        .queue
        .claim("w", LEASE)
        .await
        .expect("claim")
        .expect("one");
    let mut writer = s.records.begin_apply(&lease).await.expect("begin");
    let r = record("k1", "g", 1.0);
    writer.apply(&batch(vec![r.clone()])).await.expect("apply");
    let report = ImportReport {
        seen: 2,
        invalid: 1,
        ..ImportReport::default()
    };
    let revision = writer
        .finish(Verdict::Reject, &report)
        .await
        .expect("finish")
        .revision;
    assert_eq!(revision, Revision::new(0));
    assert!(matches!(
        s.records.get(&ds, &r.key).await,
        Err(StoreError::NotFound)
    ));
    let done = s.vault.get(&import.id).await.expect("get");
    assert_eq!(
        (done.status, done.report),
        (ImportStatus::Failed, Some(report))
    );
    assert_eq!(s.queue.claim("w", LEASE).await.expect("claim"), None);
}

/// A megabyte of text in one attribute survives the round trip.
pub async fn records_keep_large_values(s: Stores) {
    let ds = dataset(&s, "large", SIMPLE).await;
    store(&s, &ds, b"doc", None).await.expect("stored");
    let lease = s
        .queue
        .claim("w", LEASE)
        .await
        .expect("claim")
        .expect("one");
    let mut writer = s.records.begin_apply(&lease).await.expect("begin");
    let note: String = "ünïcødé and quotes ' \" \\ ".repeat(40_000);
    let big = with_note(record("big/key %", "g", 1.5), note);
    writer
        .apply(&batch(vec![big.clone()]))
        .await
        .expect("apply");
    writer
        .finish(Verdict::Commit, &ImportReport::default())
        .await
        .expect("finish");
    assert_eq!(s.records.get(&ds, &big.key).await.expect("get").record, big);
}

/// Runs futures concurrently and collects their outputs in order.
pub(super) async fn futures_join_all<F: std::future::Future>(
    futures: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    let mut out = Vec::new();
    let futures: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut pending: Vec<_> = futures.into_iter().map(Some).collect();
    let mut results: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all = true;
        for (slot, result) in pending.iter_mut().zip(results.iter_mut()) {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        *result = Some(v);
                        *slot = None;
                    }
                    std::task::Poll::Pending => all = false,
                }
            }
        }
        if all {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    out.extend(results.into_iter().flatten());
    out
}

/// Waits without an async runtime's timer.
pub(super) async fn sleep(duration: Duration) {
    use crate::ports::Clock;
    super::SystemClock.sleep(duration).await;
}

/// Each claim counts an attempt; a release gives it back; requeueing starts again.
pub async fn claims_count_attempts_and_a_release_gives_one_back(s: Stores) {
    let ds = dataset(&s, "attempts", SIMPLE).await;
    store(&s, &ds, b"doc", None).await.expect("stored");
    let short = Duration::from_millis(100);
    let first = s
        .queue
        .claim("w", short)
        .await
        .expect("claim")
        .expect("one");
    assert_eq!(first.attempt, 1);
    sleep(Duration::from_millis(250)).await;
    let second = s
        .queue
        .claim("w", LEASE)
        .await
        .expect("claim")
        .expect("expired");
    assert_eq!(second.attempt, 2, "an expired lease was an attempt");
    s.queue.release(&second).await.expect("release");
    let third = s
        .queue
        .claim("w", LEASE)
        .await
        .expect("claim")
        .expect("released");
    assert_eq!(third.attempt, 2, "a released claim is not an attempt");
}

/// Lease holders are listed while their leases last; expiring a holder's leases lets
/// its imports be claimed at once, and leaves other holders' alone.
pub async fn expired_holders_give_their_imports_back_at_once(s: Stores) {
    let ds = dataset(&s, "holders", SIMPLE).await;
    store(&s, &ds, b"one", None).await.expect("stored");
    store(&s, &ds, b"two", None).await.expect("stored");
    let long = Duration::from_secs(3600);
    let dead = s
        .queue
        .claim("host-1-0", long)
        .await
        .expect("claim")
        .expect("one");
    let live = s
        .queue
        .claim("host-2-0", long)
        .await
        .expect("claim")
        .expect("two");
    assert_eq!(
        s.queue.holders().await.expect("holders"),
        ["host-1-0", "host-2-0"]
    );
    assert!(s.queue.claim("w", long).await.expect("claim").is_none());
    assert_eq!(s.queue.expire("host-1-0").await.expect("expire"), 1);
    assert_eq!(s.queue.holders().await.expect("holders"), ["host-2-0"]);
    let again = s
        .queue
        .claim("w", long)
        .await
        .expect("claim")
        .expect("at once");
    assert_eq!(again.import, dead.import);
    assert_eq!(again.attempt, 2, "the dead worker's claim was an attempt");
    assert_eq!(s.queue.expire("nobody").await.expect("expire"), 0);
    assert!(matches!(
        s.queue.renew(&dead, long).await,
        Err(QueueError::LeaseLost)
    ));
    s.queue
        .renew(&live, long)
        .await
        .expect("the live holder keeps its lease");
}

/// A pause is written once for every instance: another instance (its own wake-ups and
/// board over the same database) obeys it when it next reads, and a resume undoes it.
pub async fn a_pause_is_kept_for_every_instance_until_resumed(s: Stores) {
    use crate::work::{Wakeups, WorkKind, WorkerControl};
    let at = chrono::DateTime::parse_from_rfc3339("2026-12-06T10:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    assert_eq!(s.pauses.paused().await.unwrap(), []);
    assert!(
        s.pauses
            .set_paused(WorkKind::Sources, true, at)
            .await
            .unwrap()
    );
    let later = at + chrono::Duration::seconds(5);
    assert!(
        !s.pauses
            .set_paused(WorkKind::Sources, true, later)
            .await
            .unwrap(),
        "pausing a paused kind changes nothing"
    );
    assert!(
        s.pauses
            .set_paused(WorkKind::Imports, true, later)
            .await
            .unwrap()
    );
    assert_eq!(
        s.pauses.paused().await.unwrap(),
        [(WorkKind::Imports, later), (WorkKind::Sources, at)],
        "in the kinds' order, each with its first pause"
    );

    let (one, other) = (Wakeups::default(), Wakeups::default());
    let clock: std::sync::Arc<dyn crate::ports::Clock> = std::sync::Arc::new(super::SystemClock);
    let here = WorkerControl::new(s.pauses.clone(), one.clone(), clock.clone());
    let there = WorkerControl::new(s.pauses.clone(), other.clone(), clock);
    there.read().await.unwrap();
    assert!(other.board().is_paused(WorkKind::Sources));
    let resumed = here.set_paused(WorkKind::Sources, false).await.unwrap();
    assert_eq!(resumed.paused_since, None);
    assert!(
        other.board().is_paused(WorkKind::Sources),
        "the other instance obeys when it next reads"
    );
    there.read().await.unwrap();
    assert!(!other.board().is_paused(WorkKind::Sources));
    assert!(other.board().is_paused(WorkKind::Imports));
    assert!(
        !s.pauses
            .set_paused(WorkKind::Sources, false, at)
            .await
            .unwrap()
    );
    here.set_paused(WorkKind::Imports, false).await.unwrap();
    assert_eq!(s.pauses.paused().await.unwrap(), []);
}
