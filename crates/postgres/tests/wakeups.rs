//! Wake-ups across instances: work committed through one store (one `intake serve`)
//! wakes the idle workers of another at once, through `LISTEN/NOTIFY`, while their
//! safety-net poll is an hour away.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[path = "support/schema.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::StreamExt as _;
use intake_domain::ImportStatus;
use intake_domain::ingest::{
    ImportService, ImportWorker, IngestSettings, Shutdown, shutdown_channel,
};
use intake_domain::ports::{ImportSummary, ImportVault};
use intake_domain::testkit::{Sleepless, Stores, SystemClock};
use intake_domain::work::Wakeups;
use intake_postgres::PgStore;
use support::{csv, dataset, fresh, guarded, receive_all, settings};

/// A service whose workers poll once an hour: only a wake-up makes them claim soon.
fn sleepy(store: &PgStore) -> Arc<ImportService> {
    let decoder = Arc::new(intake_codecs::Codecs::default());
    let stores = Stores::new(Arc::new(store.clone()), decoder);
    let settings = IngestSettings {
        idle_poll: Duration::from_secs(3600),
        ..IngestSettings::default()
    };
    let service = ImportService::new(stores.ingest_ports(Arc::new(SystemClock)), settings);
    Arc::new(service.woken_by(Wakeups::default()))
}

/// An instance with one sleepy import worker and the relay from PostgreSQL to its
/// wake-ups, until `shutdown`: the relay's task and the worker's.
fn one_worker(
    store: &PgStore,
    shutdown: &Shutdown,
) -> (tokio::task::JoinHandle<()>, tokio::task::JoinHandle<()>) {
    let workers = sleepy(store);
    let relay = tokio::spawn({
        let (store, wakeups, shutdown) =
            (store.clone(), workers.wakeups().clone(), shutdown.clone());
        async move { store.relay_wakeups(wakeups, shutdown).await }
    });
    let worker = tokio::spawn({
        let (worker, shutdown) = (
            ImportWorker::new(workers, Arc::new(SystemClock)),
            shutdown.clone(),
        );
        async move { worker.run("b-0", shutdown).await }
    });
    (relay, worker)
}

/// Receives a 10-row CSV document whose ids start with `prefix`.
async fn receive_csv(service: &ImportService, prefix: &str) -> ImportSummary {
    let body = futures_lite::stream::iter([Ok::<_, std::io::Error>(csv(prefix, 10))]).boxed();
    service
        .receive(&dataset(), "text/csv", "test", None, body)
        .await
        .unwrap()
        .import
}

async fn completed(store: &PgStore, import: &ImportSummary) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = store.get(&import.id).await.unwrap().status;
        if status == ImportStatus::Completed {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the import was not processed: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_received_by_one_instance_wakes_the_idle_workers_of_another() {
    let t = fresh().await;
    let schema = t.schema.clone();
    guarded(vec![t.clone()], async move {
        // Instance B: one idle worker, and the relay from PostgreSQL to its wake-ups.
        let b = t.store.clone();
        let (trigger, shutdown) = shutdown_channel();
        let (relay, worker) = one_worker(&b, &shutdown);

        // Instance A, with no workers, receives the documents.
        let a = PgStore::connect(&settings(&schema)).unwrap();
        let receiving = sleepy(&a);
        receive_all(&a, &receiving, vec![csv("first", 10)]).await;
        let first = a.list(&dataset(), 1, 0).await.unwrap().remove(0);
        completed(&b, &first).await;
        // The worker is idle again, an hour from its next poll: only the
        // notification of the second import's commit can wake it.
        let second = receive_csv(&receiving, "second").await;
        completed(&b, &second).await;

        trigger.trigger();
        worker.await.unwrap();
        relay.await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_in_one_instance_is_woken_when_another_finishes_its_import() {
    let t = fresh().await;
    let schema = t.schema.clone();
    guarded(vec![t.clone()], async move {
        // Instance B processes; instance A receives and waits, its polls never ending.
        let (trigger, shutdown) = shutdown_channel();
        let (b_relay, worker) = one_worker(&t.store, &shutdown);
        let a = PgStore::connect(&settings(&schema)).unwrap();
        let decoder = Arc::new(intake_codecs::Codecs::default());
        let stores = Stores::new(Arc::new(a.clone()), decoder);
        let waiting = Arc::new(
            ImportService::new(
                stores.ingest_ports(Arc::new(Sleepless)),
                IngestSettings::default(),
            )
            .woken_by(Wakeups::default()),
        );
        let a_relay = tokio::spawn({
            let (a, wakeups, shutdown) = (a.clone(), waiting.wakeups().clone(), shutdown.clone());
            async move { a.relay_wakeups(wakeups, shutdown).await }
        });
        receive_all(&a, &waiting, Vec::new()).await;
        let import = receive_csv(&waiting, "waited").await;
        let finished = tokio::time::timeout(
            Duration::from_secs(30),
            waiting.wait(&dataset(), &import.id, Duration::from_secs(3600)),
        )
        .await
        .expect("the waiter was not woken when the other instance finished the import")
        .unwrap();
        assert_eq!(finished.status, ImportStatus::Completed);

        trigger.trigger();
        worker.await.unwrap();
        b_relay.await.unwrap();
        a_relay.await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_tells_of_the_new_revision_before_it_tells_that_it_finished() {
    let t = fresh().await;
    let schema = t.schema.clone();
    guarded(vec![t.clone()], async move {
        let mut listener = sqlx::postgres::PgListener::connect(&support::url())
            .await
            .unwrap();
        listener.listen("intake_work").await.unwrap();
        let service = sleepy(&t.store);
        receive_all(&t.store, &service, Vec::new()).await;
        let import = receive_csv(&service, "told").await;
        let lease = service.claim("w").await.unwrap().unwrap();
        service.process(&lease).await.unwrap();
        // A relay handles notifications in order: an instance whose waiter is woken
        // by `finished:` has already forgotten the dataset's old revision.
        let mut heard = Vec::new();
        while !heard.iter().any(|p: &String| p.contains(":finished:")) {
            let notification = tokio::time::timeout(Duration::from_secs(10), listener.recv())
                .await
                .expect("no notification of the finished import")
                .unwrap();
            if notification.payload().starts_with(&format!("{schema}:")) {
                heard.push(notification.payload().to_owned());
            }
        }
        let position = |what: &str| heard.iter().position(|p| p.contains(what));
        let (revision, finished) = (position(":dataset:"), position(":finished:"));
        assert!(
            revision.is_some() && revision < finished,
            "the order heard: {heard:?} (import {})",
            import.id
        );
    })
    .await;
}
