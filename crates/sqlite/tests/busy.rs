//! SQLite has one writer: while an import holds the write lock, other workers' claims
//! find nothing instead of failing once the busy timeout has passed, and writers wait
//! for the lock without taking the connections readers need (ADR 42).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::time::Duration;

use intake_domain::ports::{
    DatasetStore, ImportQueue, ImportSummary, ImportVault, ImportWriter, NewImport, RecordStore,
};
use intake_domain::{Contract, ContractVersion, DatasetName};
use intake_sqlite::{Settings, SqliteStore};

const CONTRACT: &str = r#"{"format": "csv", "fields": {"id": {"type": "string", "required": true}},
    "key": ["id"], "merge": "last_wins", "on_invalid": "skip_record"}"#;

/// A migrated store on a new file (kept while the directory lives), holding the
/// dataset `busy`.
async fn store(settings: Settings) -> (tempfile::TempDir, SqliteStore, DatasetName) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("intake.db").display());
    let store = SqliteStore::connect(&Settings { url, ..settings })
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let ds = DatasetName::parse("busy").unwrap();
    store
        .create(&ds, &Contract::parse(CONTRACT).unwrap())
        .await
        .unwrap();
    (dir, store, ds)
}

/// Stores `body` as an import of `ds`, queued.
async fn receive(store: &SqliteStore, ds: &DatasetName, body: &[u8]) -> ImportSummary {
    let import = NewImport {
        dataset: ds.clone(),
        contract: ContractVersion::FIRST,
        content_type: "text/csv".into(),
        source: "test".into(),
        idempotency_key: None,
    };
    let mut writer = store.begin(&import).await.unwrap();
    writer.write(body).await.unwrap();
    writer.commit(&format!("{body:?}")).await.unwrap()
}

/// Claims the next import and opens its unit of work, which takes the write lock at
/// its first use (here a renewal).
async fn hold_the_write_lock(store: &SqliteStore) -> Box<dyn ImportWriter> {
    let lease = store
        .claim("holder", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    let mut unit_of_work = store.begin_apply(&lease).await.unwrap();
    unit_of_work.renew(Duration::from_secs(30)).await.unwrap();
    unit_of_work
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_while_an_import_holds_the_write_lock_finds_nothing() {
    let (_dir, store, ds) = store(Settings {
        busy_timeout: Duration::from_millis(200),
        ..Settings::default()
    })
    .await;
    for body in [&b"one"[..], b"two"] {
        receive(&store, &ds, body).await;
    }
    let unit_of_work = hold_the_write_lock(&store).await;

    let claimed = store.claim("other", Duration::from_secs(30)).await;
    assert!(matches!(claimed, Ok(None)), "{claimed:?}");

    drop(unit_of_work);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let claimed = store.claim("other", Duration::from_secs(30)).await.unwrap();
    assert!(
        claimed.is_some(),
        "the second import is claimable once the lock is free"
    );
}

/// Writers queue for the process's one writing connection without taking a reading
/// one: while an import holds the write lock, more writers than the pool has
/// connections wait their turn, reads are answered meanwhile (an import reads its
/// document while it holds the lock), and every writer goes through once the lock is
/// free. With writers waiting in SQLite's busy handler on pooled connections, the
/// pool ran dry and the reads (the import's own, too) timed out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_waiting_for_the_lock_leave_the_readers_their_connections() {
    let (_dir, store, ds) = store(Settings {
        max_connections: 2,
        acquire_timeout: Duration::from_millis(300),
        busy_timeout: Duration::from_secs(10),
        ..Settings::default()
    })
    .await;
    let received = receive(&store, &ds, b"id\none\n").await;
    let unit_of_work = hold_the_write_lock(&store).await;

    let waiting: Vec<_> = (0..4)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let name = DatasetName::parse(format!("waiting-{i}")).unwrap();
                store
                    .create(&name, &Contract::parse(CONTRACT).unwrap())
                    .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..3 {
        let read = DatasetStore::get(&store, &ds).await;
        assert!(read.is_ok(), "a read while writers wait: {read:?}");
        let got = ImportVault::get(&store, &received.id).await;
        assert!(
            got.is_ok(),
            "the import's own read while writers wait: {got:?}"
        );
    }
    assert!(
        waiting.iter().all(|w| !w.is_finished()),
        "the writers wait for the lock"
    );

    drop(unit_of_work);
    for w in waiting {
        let created = tokio::time::timeout(Duration::from_secs(5), w).await;
        assert!(
            matches!(created, Ok(Ok(Ok(_)))),
            "each writer goes through once the lock is free: {created:?}"
        );
    }
    assert_eq!(DatasetStore::list(&store).await.unwrap().len(), 5);
}
