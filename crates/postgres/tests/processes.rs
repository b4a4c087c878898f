//! Workers in separate processes against one PostgreSQL: several processes drain one
//! queue without applying anything twice, and a worker killed with SIGKILL in the
//! middle of an import leaves nothing half-applied. The child processes are this test
//! binary, re-run on its ignored entry point.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[path = "support/schema.rs"]
mod support;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use intake_domain::ingest::{ImportWorker, shutdown_channel};
use intake_domain::ports::{DatasetStore, ImportVault, RecordQuery, RecordStore};
use intake_domain::testkit::SystemClock;
use intake_domain::{ImportStatus, Revision};
use intake_postgres::PgStore;
use support::{csv, dataset, fresh, guarded, receive_all, reports, service, settings, state};

const CHILD: &str = "child_process_runs_workers";

/// The entry point of the worker processes the other tests start: runs
/// `INTAKE_TEST_WORKERS` workers on schema `INTAKE_TEST_SCHEMA` until killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "entry point of the worker processes that other tests start"]
async fn child_process_runs_workers() {
    let var = |name: &str| std::env::var(name).expect(name);
    let store = PgStore::connect(&settings(&var("INTAKE_TEST_SCHEMA"))).unwrap();
    let lease = Duration::from_millis(var("INTAKE_TEST_LEASE_MS").parse().unwrap());
    let service = service(&store, lease);
    let (_trigger, shutdown) = shutdown_channel();
    let workers: usize = var("INTAKE_TEST_WORKERS").parse().unwrap();
    let tasks: Vec<_> = (0..workers)
        .map(|i| {
            let worker = ImportWorker::new(service.clone(), Arc::new(SystemClock));
            let shutdown = shutdown.clone();
            let name = format!("pid{}-w{i}", std::process::id());
            tokio::spawn(async move { worker.run(&name, shutdown).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

/// A child process of workers, killed (SIGKILL) when dropped.
struct Workers(Child);

impl Workers {
    fn spawn(schema: &str, workers: usize, lease: Duration) -> Self {
        let child = Command::new(std::env::current_exe().unwrap())
            .args([CHILD, "--exact", "--ignored", "--nocapture"])
            .env("INTAKE_TEST_SCHEMA", schema)
            .env("INTAKE_TEST_WORKERS", workers.to_string())
            .env("INTAKE_TEST_LEASE_MS", lease.as_millis().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting a worker process");
        Self(child)
    }

    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Fails the test once `limit` has passed since `start`; otherwise waits a little.
async fn tick(what: &str, start: Instant, limit: Duration) {
    assert!(start.elapsed() < limit, "timed out waiting for {what}");
    tokio::time::sleep(Duration::from_millis(50)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_of_four_workers_apply_100_imports_exactly_once() {
    let t = fresh().await;
    let schemas = vec![t.clone()];
    guarded(schemas, async move {
        let service = service(&t.store, Duration::from_secs(30));
        let docs: Vec<_> = (0..100).map(|d| csv(&format!("d{d}-"), 10)).collect();
        receive_all(&t.store, &service, docs).await;
        let mut a = Workers::spawn(&t.schema, 4, Duration::from_secs(30));
        let mut b = Workers::spawn(&t.schema, 4, Duration::from_secs(30));
        let start = Instant::now();
        while !reports(&t.store).await.iter().all(Option::is_some) {
            tick("100 imports", start, Duration::from_secs(180)).await;
        }
        a.kill();
        b.kill();
        let (records, history) = state(&t).await;
        assert_eq!(records.len(), 1000);
        assert!(history.iter().all(|&n| n == 1), "a key was applied twice");
        let ds = DatasetStore::get(&t.store, &dataset()).await.unwrap();
        assert_eq!(ds.revision, Revision::new(100));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_import_leaves_nothing_half_applied() {
    let (reference, crashed) = (fresh().await, fresh().await);
    let schemas = vec![reference.clone(), crashed.clone()];
    guarded(schemas, async move {
        let doc = vec![csv("k", 120_000)];
        let lease = Duration::from_millis(1500);

        let service_ref = service(&reference.store, lease);
        receive_all(&reference.store, &service_ref, doc.clone()).await;
        let lease_ref = service_ref.claim("reference").await.unwrap().unwrap();
        service_ref.process(&lease_ref).await.unwrap();

        let service = service(&crashed.store, lease);
        receive_all(&crashed.store, &service, doc).await;
        let id = reports_ids(&crashed.store).await;
        let mut child = Workers::spawn(&crashed.schema, 1, lease);
        let start = Instant::now();
        while ImportVault::get(&crashed.store, &id).await.unwrap().status
            != ImportStatus::Processing
        {
            tick(
                "the child to claim the import",
                start,
                Duration::from_secs(60),
            )
            .await;
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
        child.kill();
        let after_kill = ImportVault::get(&crashed.store, &id).await.unwrap();
        assert_eq!(
            after_kill.status,
            ImportStatus::Processing,
            "killed mid-import"
        );
        let query = RecordQuery {
            limit: 1,
            ..RecordQuery::default()
        };
        let visible = RecordStore::list(&crashed.store, &dataset(), &query)
            .await
            .unwrap();
        assert_eq!(
            visible.total, 0,
            "nothing of an unfinished import is visible"
        );

        let started = Instant::now();
        let lease = loop {
            if let Some(lease) = service.claim("restarted").await.unwrap() {
                break lease;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "never reclaimed"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        service.process(&lease).await.unwrap();
        assert_eq!(
            reports(&crashed.store).await,
            reports(&reference.store).await
        );
        assert_eq!(state(&crashed).await, state(&reference).await);
        let (_, history) = state(&crashed).await;
        assert!(history.len() == 120_000 && history.iter().all(|&n| n == 1));
    })
    .await;
}

async fn reports_ids(store: &PgStore) -> intake_domain::ImportId {
    let imports = ImportVault::list(store, &dataset(), 1, 0).await.unwrap();
    imports[0].id.clone()
}
