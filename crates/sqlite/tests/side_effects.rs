//! What an import leaves in the outbox and the callbacks table, read with SQL
//! (the read ports of those tables come with the delivery workers).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::collections::BTreeMap;
use std::sync::Arc;

use intake_domain::testkit::callbacks::{CANCELLED_THEN_PENDING, newer_then_older};
use intake_domain::testkit::ingest::{
    apply_document, apply_document_watched, apply_documents, expected_side_effects,
};
use intake_domain::testkit::{ACCOUNTS, EXAM_RESULTS, Stores};
use intake_sqlite::{Settings, SqliteStore};
use sqlx::Connection as _;

async fn open(dir: &tempfile::TempDir) -> (Stores, sqlx::SqliteConnection) {
    let url = format!("sqlite://{}", dir.path().join("intake.db").display());
    let store = SqliteStore::connect(&Settings {
        url: url.clone(),
        ..Settings::default()
    })
    .await
    .unwrap();
    store.migrate().await.unwrap();
    let stores = Stores::new(Arc::new(store), Arc::new(intake_codecs::Codecs::default()));
    (stores, sqlx::SqliteConnection::connect(&url).await.unwrap())
}

async fn events(conn: &mut sqlx::SqliteConnection, dataset: &str) -> BTreeMap<String, i64> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT kind, COUNT(*) FROM outbox WHERE dataset = ? GROUP BY kind")
            .bind(dataset)
            .fetch_all(conn)
            .await
            .unwrap();
    rows.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_applied_document_leaves_one_event_per_change_and_the_newest_timer_per_key() {
    let dir = tempfile::tempdir().unwrap();
    let (stores, mut conn) = open(&dir).await;
    let (_, _, body) = ACCOUNTS.documents[0];
    let expected = expected_side_effects(&stores, ACCOUNTS.contract, body);
    assert!(
        !expected.timers.is_empty(),
        "the accounts workload schedules callbacks"
    );
    apply_document_watched(&stores, "accounts", ACCOUNTS.contract, body).await;

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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_document_leaves_only_its_failure_event() {
    let dir = tempfile::tempdir().unwrap();
    let (stores, mut conn) = open(&dir).await;
    let (_, _, invalid) = EXAM_RESULTS.documents[1];
    apply_document_watched(&stores, "exams", EXAM_RESULTS.contract, invalid).await;
    let kinds = events(&mut conn, "exams").await;
    assert_eq!(
        kinds,
        [("import.failed".to_owned(), 1)].into_iter().collect()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dataset_nobody_subscribed_to_writes_no_events() {
    let dir = tempfile::tempdir().unwrap();
    let (stores, mut conn) = open(&dir).await;
    let (_, _, body) = ACCOUNTS.documents[0];
    apply_document(&stores, "accounts", ACCOUNTS.contract, body).await;
    assert!(events(&mut conn, "accounts").await.is_empty());
}

/// A newer version of a key cancels its pending callback, which stays with the version
/// that replaced it; an older version touches nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_version_cancels_the_pending_callback_and_an_older_one_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let (stores, mut conn) = open(&dir).await;
    apply_documents(
        &stores,
        "accounts",
        ACCOUNTS.contract,
        &newer_then_older().each_ref().map(Vec::as_slice),
    )
    .await;
    let rows: Vec<(Option<i64>, String, Option<i64>)> = sqlx::query_as(
        "SELECT version, status, replaced_by FROM callbacks WHERE dataset = 'accounts' ORDER BY id",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let rows: Vec<(Option<i64>, &str, Option<i64>)> =
        rows.iter().map(|(v, s, r)| (*v, s.as_str(), *r)).collect();
    assert_eq!(rows, CANCELLED_THEN_PENDING);
}
