//! What an import leaves in the outbox and the callbacks table, read with SQL
//! (the read ports of those tables come with the delivery workers).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[path = "support/schema.rs"]
mod support;

use std::collections::BTreeMap;

use intake_domain::testkit::callbacks::{CANCELLED_THEN_PENDING, newer_then_older};
use intake_domain::testkit::ingest::{
    apply_document, apply_document_watched, apply_documents, expected_side_effects,
};
use intake_domain::testkit::{ACCOUNTS, EXAM_RESULTS, Harness as _};
use support::{TempSchema, fresh, guarded, url};

async fn connect(t: &TempSchema) -> sqlx::PgConnection {
    let options: sqlx::postgres::PgConnectOptions = url().parse().unwrap();
    let options = options.options([("search_path", t.schema.as_str())]);
    sqlx::ConnectOptions::connect(&options).await.unwrap()
}

async fn events(conn: &mut sqlx::PgConnection, dataset: &str) -> BTreeMap<String, i64> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT kind, COUNT(*) FROM outbox WHERE dataset = $1 GROUP BY kind")
            .bind(dataset)
            .fetch_all(conn)
            .await
            .unwrap();
    rows.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_applied_document_leaves_one_event_per_change_and_the_newest_timer_per_key() {
    let t = fresh().await;
    guarded(vec![t.clone()], async move {
        let stores = t.stores();
        let (_, _, body) = ACCOUNTS.documents[0];
        let expected = expected_side_effects(&stores, ACCOUNTS.contract, body);
        assert!(
            !expected.timers.is_empty(),
            "the accounts workload schedules callbacks"
        );
        apply_document_watched(&stores, "accounts", ACCOUNTS.contract, body).await;

        let mut conn = connect(&t).await;
        let kinds = events(&mut conn, "accounts").await;
        let want = [
            ("import.completed".to_owned(), 1),
            (
                "record.created".to_owned(),
                i64::try_from(expected.created).unwrap(),
            ),
            (
                "record.updated".to_owned(),
                i64::try_from(expected.updated).unwrap(),
            ),
        ];
        assert_eq!(kinds, want.into_iter().collect());
        let timers: Vec<(String, Option<i64>)> = sqlx::query_as(
            "SELECT key, version FROM callbacks WHERE dataset = 'accounts' AND status = 'pending'",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        assert_eq!(
            timers.into_iter().collect::<BTreeMap<_, _>>(),
            expected.timers
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_document_leaves_only_its_failure_event() {
    let t = fresh().await;
    guarded(vec![t.clone()], async move {
        let stores = t.stores();
        let (_, _, invalid) = EXAM_RESULTS.documents[1];
        apply_document_watched(&stores, "exams", EXAM_RESULTS.contract, invalid).await;
        let kinds = events(&mut connect(&t).await, "exams").await;
        assert_eq!(
            kinds,
            [("import.failed".to_owned(), 1)].into_iter().collect()
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dataset_nobody_subscribed_to_writes_no_events() {
    let t = fresh().await;
    guarded(vec![t.clone()], async move {
        let stores = t.stores();
        let (_, _, body) = ACCOUNTS.documents[0];
        apply_document(&stores, "accounts", ACCOUNTS.contract, body).await;
        assert!(events(&mut connect(&t).await, "accounts").await.is_empty());
    })
    .await;
}

/// A newer version of a key cancels its pending callback, which stays with the version
/// that replaced it; an older version touches nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_version_cancels_the_pending_callback_and_an_older_one_does_not() {
    let t = fresh().await;
    guarded(vec![t.clone()], async move {
        let stores = t.stores();
        let documents = newer_then_older();
        let documents = documents.each_ref().map(Vec::as_slice);
        apply_documents(&stores, "accounts", ACCOUNTS.contract, &documents).await;
        let mut conn = connect(&t).await;
        let rows: Vec<(Option<i64>, String, Option<i64>)> = sqlx::query_as(
            "SELECT version, status, replaced_by FROM callbacks \
             WHERE dataset = 'accounts' ORDER BY id",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        let rows: Vec<(Option<i64>, &str, Option<i64>)> =
            rows.iter().map(|(v, s, r)| (*v, s.as_str(), *r)).collect();
        assert_eq!(rows, CANCELLED_THEN_PENDING);
    })
    .await;
}

/// A timer being fired is locked by the firing round's transaction: an import of a
/// newer version waits for it, then finds it fired (never both fired and cancelled)
/// and starts its own; a round that finds only locked due timers looks again in 50 ms
/// (a rollback of the other would wake nobody).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timer_being_fired_is_fired_not_cancelled_and_a_locked_one_is_looked_at_soon() {
    use intake_domain::ports::CallbackFiring;
    use intake_domain::testkit::callbacks::accounts;
    let t = fresh().await;
    guarded(vec![t.clone()], async move {
        let stores = t.stores();
        apply_documents(
            &stores,
            "accounts",
            ACCOUNTS.contract,
            &[&accounts(&[("acc-1", 1)])],
        )
        .await;
        // A firing round in progress: acc-1's timer locked and marked, not committed.
        let mut firing = connect(&t).await;
        sqlx::query("BEGIN").execute(&mut firing).await.unwrap();
        let locked = sqlx::query(
            "UPDATE callbacks SET status = 'fired', settled_at = now() \
             WHERE key = 'acc-1' AND status = 'pending'",
        )
        .execute(&mut firing)
        .await
        .unwrap();
        assert_eq!(locked.rows_affected(), 1);

        let at = chrono::Utc::now() + chrono::Duration::seconds(61);
        match stores.callbacks.fire_due(at, 10).await.unwrap() {
            CallbackFiring::Idle(Some(next)) => assert_eq!(
                next,
                at + chrono::Duration::milliseconds(50),
                "a locked due timer is looked at again in 50 ms"
            ),
            other => panic!("the locked timer is skipped: {other:?}"),
        }

        let service = support::service(&t.store, std::time::Duration::from_secs(30));
        let ds = intake_domain::DatasetName::parse("accounts").unwrap();
        let newer = accounts(&[("acc-1", 2)]);
        let body = futures_lite::stream::iter([Ok::<_, std::io::Error>(newer)]);
        service
            .receive(&ds, "application/json", "test", None, body)
            .await
            .unwrap();
        let importing = tokio::spawn(async move {
            let lease = service.claim("w").await.unwrap().expect("queued");
            service.process(&lease).await.unwrap()
        });
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(
            !importing.is_finished(),
            "the import waits for the firing round's lock"
        );
        sqlx::query("COMMIT").execute(&mut firing).await.unwrap();
        importing.await.unwrap();

        let rows: Vec<(Option<i64>, String, Option<i64>)> = sqlx::query_as(
            "SELECT version, status, replaced_by FROM callbacks \
             WHERE dataset = 'accounts' ORDER BY id",
        )
        .fetch_all(&mut connect(&t).await)
        .await
        .unwrap();
        let rows: Vec<(Option<i64>, &str, Option<i64>)> =
            rows.iter().map(|(v, s, r)| (*v, s.as_str(), *r)).collect();
        assert_eq!(
            rows,
            [(Some(1), "fired", None), (Some(2), "pending", None)],
            "fired first, so not cancelled; the newer version's timer is pending"
        );
    })
    .await;
}
