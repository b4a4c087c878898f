//! A worker in a child process killed with SIGKILL in the middle of a large import on
//! the SQLite file: nothing of it is visible, the file recovers, and the import,
//! claimed again when its lease expires, ends as an uninterrupted run would. The child
//! is this test binary, re-run on its ignored entry point.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use intake_domain::ingest::{ImportService, ImportWorker, IngestSettings, shutdown_channel};
use intake_domain::ports::{DatasetStore, ImportVault, RecordQuery, RecordStore};
use intake_domain::testkit::{Stores, SystemClock};
use intake_domain::{Contract, DatasetName, ImportStatus, Record};
use intake_sqlite::SqliteStore;
use sqlx::Connection as _;

const CHILD: &str = "child_process_runs_a_worker";
const LEASE: Duration = Duration::from_millis(1500);

#[path = "support/store.rs"]
mod support;
use support::{CONTRACT, open};

fn service(store: &SqliteStore) -> Arc<ImportService> {
    let decoder = Arc::new(intake_codecs::Codecs::default());
    let stores = Stores::new(Arc::new(store.clone()), decoder);
    let ports = stores.ingest_ports(Arc::new(SystemClock));
    let settings = IngestSettings {
        lease: LEASE,
        renew_every: LEASE / 3,
        ..IngestSettings::default()
    };
    Arc::new(ImportService::new(ports, settings))
}

fn ds() -> DatasetName {
    DatasetName::parse("items").unwrap()
}

/// The entry point of the worker process: one worker on `INTAKE_TEST_DB` until killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "entry point of the worker process that another test starts"]
async fn child_process_runs_a_worker() {
    let store = open(&std::env::var("INTAKE_TEST_DB").unwrap()).await;
    let (_trigger, shutdown) = shutdown_channel();
    let worker = ImportWorker::new(service(&store), Arc::new(SystemClock));
    worker.run("child", shutdown).await;
}

/// Rows of the document: enough that its transaction outgrows SQLite's page cache.
const ROWS: usize = 50_000;

fn wal_size(path: &str) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Creates the dataset, receives the document, and gives the import's id.
async fn receive(store: &SqliteStore, doc: &[u8]) -> intake_domain::ImportId {
    store
        .create(&ds(), &Contract::parse(CONTRACT).unwrap())
        .await
        .unwrap();
    let chunks: Vec<_> = doc
        .chunks(64 * 1024)
        .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
        .collect();
    let body = futures_lite::stream::iter(chunks);
    let received = service(store)
        .receive(&ds(), "text/csv", "test", None, body)
        .await
        .unwrap();
    received.import.id
}

/// Every record, and the history rows and keys with history (counted in SQL: one
/// query instead of one per key).
async fn state(store: &SqliteStore, path: &str) -> (Vec<Record>, (i64, i64)) {
    let query = RecordQuery {
        limit: u32::MAX,
        ..RecordQuery::default()
    };
    let page = RecordStore::list(store, &ds(), &query).await.unwrap();
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{path}"))
        .await
        .unwrap();
    let counts: (i64, i64) =
        sqlx::query_as("SELECT COUNT(*), COUNT(DISTINCT key) FROM record_history")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    (page.records.into_iter().map(|r| r.record).collect(), counts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_import_leaves_nothing_half_applied() {
    let dir = tempfile::tempdir().unwrap();
    let rows: String = (0..ROWS)
        .map(|i| format!("k{i},g{},{i}\n", i % 7))
        .collect();
    let doc = format!("id,group,value\n{rows}").into_bytes();

    let reference_path = dir.path().join("reference.db").display().to_string();
    let reference = open(&reference_path).await;
    receive(&reference, &doc).await;
    let service_ref = service(&reference);
    let lease = service_ref.claim("reference").await.unwrap().unwrap();
    let expected = service_ref.process(&lease).await.unwrap();

    let path = dir.path().join("crashed.db").display().to_string();
    let crashed = open(&path).await;
    let id = receive(&crashed, &doc).await;
    let child = Command::new(std::env::current_exe().unwrap())
        .args([CHILD, "--exact", "--ignored", "--nocapture"])
        .env("INTAKE_TEST_DB", &path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let child = KillOnDrop(child);
    let start = Instant::now();
    while ImportVault::get(&crashed, &id).await.unwrap().status != ImportStatus::Processing {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the child never claimed it"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Killed once the import's open transaction has spilled pages into the WAL: its
    // writes have begun and nothing of them is committed (a timed sleep raced a fast
    // import to its end).
    let wal = format!("{path}-wal");
    let claimed = wal_size(&wal);
    while wal_size(&wal) < claimed + 1_000_000 {
        assert_eq!(
            ImportVault::get(&crashed, &id).await.unwrap().status,
            ImportStatus::Processing,
            "the import ended before it could be killed: give it more rows"
        );
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the child never wrote"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(child); // SIGKILL

    let after = ImportVault::get(&crashed, &id).await.unwrap();
    assert_eq!(after.status, ImportStatus::Processing, "killed mid-import");
    assert!(
        state(&crashed, &path).await.0.is_empty(),
        "nothing of it is visible"
    );
    let service = service(&crashed);
    let start = Instant::now();
    let lease = loop {
        if let Some(lease) = service.claim("restarted").await.unwrap() {
            break lease;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "never reclaimed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let processed = service.process(&lease).await.unwrap();
    assert_eq!(processed.report, expected.report);
    let (records, history) = state(&crashed, &path).await;
    assert_eq!(
        (records.len(), history),
        (ROWS, (ROWS as i64, ROWS as i64)),
        "each key applied once"
    );
    assert_eq!((records, history), state(&reference, &reference_path).await);
}
