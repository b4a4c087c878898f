//! Conformance of the job store and the rollup store (ADR 33).

use std::sync::Arc;
use std::time::Duration;

use super::support::{SIMPLE, dataset, drain, receive, service};
use super::{Stores, SystemClock};
use crate::datasets::{DatasetPorts, DatasetService};
use crate::ingest::ImportService;
use crate::ingest::shutdown_channel;
use crate::jobs::{
    JobApiError, JobPorts, JobService, JobSettings, JobSpec, JobWork, ReprocessSpec, RollupSpec,
};
use crate::ports::Clock as _;
use crate::ports::JobView;
use crate::ports::{Directive, JobAction, JobError, JobProgress, JobStatus, NewJob, RollupPoint};
use crate::sources::{SourcePorts, SourceService, SourceSettings};
use crate::work::{Runtime, Wakeups};

fn new_job(dataset: &crate::DatasetName) -> NewJob {
    NewJob {
        dataset: dataset.clone(),
        kind: "rollup".into(),
        params: serde_json::json!({"name": "r"}),
    }
}

fn progress(done: u64, state: Option<u64>) -> JobProgress {
    JobProgress {
        done,
        total: Some(100),
        checkpoint: state.map(|at| serde_json::json!({ "at": at })),
    }
}

/// A job service over these stores, its imports processed by `imports`, its sources
/// fetched through `sources`, its workers woken through `wakeups`.
pub(super) fn job_service(
    s: &Stores,
    imports: &Arc<ImportService>,
    sources: Arc<SourceService>,
    settings: JobSettings,
    wakeups: &Wakeups,
) -> Arc<JobService> {
    let datasets = Arc::new(DatasetService::new(DatasetPorts {
        datasets: s.datasets.clone(),
        contracts: s.contracts.clone(),
        records: s.records.clone(),
        analytics: s.analytics.clone(),
        cache: Arc::new(crate::ports::NoCache),
    }));
    let ports = JobPorts {
        store: s.jobs.clone(),
        rollups: s.rollups.clone(),
        rebuilds: s.rebuilds.clone(),
        imports: imports.clone(),
        sources,
        datasets,
        clock: Arc::new(SystemClock),
    };
    Arc::new(JobService::new(ports, settings).woken_by(wakeups.clone()))
}

/// Sources with no adapter (jobs that pull nothing).
fn no_sources(s: &Stores) -> Arc<SourceService> {
    let ports = SourcePorts {
        store: s.sources.clone(),
        datasets: s.datasets.clone(),
        contracts: s.contracts.clone(),
        adapters: Vec::new(),
        clock: Arc::new(SystemClock),
    };
    Arc::new(SourceService::new(ports, SourceSettings::default()))
}

/// Runs job workers until `job` is completed; its view.
pub(super) async fn run_until_completed(
    jobs: &Arc<JobService>,
    wakeups: Wakeups,
    ds: &crate::DatasetName,
    job: &str,
) -> JobView {
    let runtime = Runtime::new(
        Arc::new(JobWork::new(jobs.clone())),
        Arc::new(SystemClock),
        wakeups,
        jobs.settings().work(),
    );
    let (stop, shutdown) = shutdown_channel();
    let run = async {
        for _ in 0..400 {
            let view = jobs.get(ds, job).await.expect("view");
            if view.status == JobStatus::Completed {
                return view;
            }
            SystemClock.sleep(Duration::from_millis(25)).await;
        }
        panic!("the job did not complete");
    };
    let (view, ()) = futures_lite::future::zip(
        async {
            let view = run.await;
            stop.trigger();
            view
        },
        runtime.run("jobs-1", shutdown),
    )
    .await;
    view
}

/// One holder at a time; saves keep the last K checkpoints; a lapsed lease hands the
/// job, with its latest checkpoint, to the next claimer, and the old holder is refused.
pub async fn jobs_are_claimed_once_and_resumed_from_their_latest_checkpoint(s: Stores) {
    let ds = dataset(&s, "jobbed", SIMPLE).await;
    let created = s.jobs.create(&new_job(&ds)).await.expect("created");
    assert_eq!(created.status, JobStatus::Queued);
    let unknown = crate::DatasetName::parse("nobody").expect("name");
    assert!(matches!(
        s.jobs.create(&new_job(&unknown)).await,
        Err(JobError::NotFound)
    ));

    let lease = Duration::from_millis(1500);
    let a = s
        .jobs
        .claim("a", lease)
        .await
        .expect("claim")
        .expect("a job");
    assert_eq!(
        (a.id.as_str(), a.attempt, a.done),
        (created.id.as_str(), 1, 0)
    );
    assert_eq!(a.checkpoint, None);
    assert!(
        s.jobs.claim("b", lease).await.expect("claim").is_none(),
        "held by a"
    );

    for (done, at) in [(10, 1), (20, 2), (30, 3)] {
        let d = s.jobs.save(&a, &progress(done, Some(at)), lease, 2).await;
        assert_eq!(d.expect("saved"), Directive::Continue);
    }
    // Progress after the last checkpoint is shown but not resumed from.
    s.jobs
        .save(&a, &progress(35, None), lease, 2)
        .await
        .expect("saved");
    let view = s.jobs.get(&ds, &a.id).await.expect("view");
    assert_eq!(
        (view.status, view.done, view.held_by.as_deref()),
        (JobStatus::Running, 35, Some("a"))
    );
    let kept: Vec<(u32, u64)> = view.checkpoints.iter().map(|c| (c.n, c.done)).collect();
    assert_eq!(kept, [(2, 20), (3, 30)], "the last two");

    SystemClock.sleep(lease + Duration::from_millis(300)).await;
    let b = s
        .jobs
        .claim("b", lease)
        .await
        .expect("claim")
        .expect("lapsed");
    assert_eq!((b.attempt, b.done), (2, 30));
    assert_eq!(b.checkpoint, Some(serde_json::json!({"at": 3})));
    assert!(matches!(
        s.jobs.save(&a, &progress(40, Some(4)), lease, 2).await,
        Err(JobError::LeaseLost)
    ));
    assert!(matches!(
        s.jobs.finish(&a, 40, None).await,
        Err(JobError::LeaseLost)
    ));
    s.jobs.finish(&b, 100, None).await.expect("finished");
    let view = s.jobs.get(&ds, &b.id).await.expect("view");
    assert_eq!(
        (view.status, view.done, view.held_by),
        (JobStatus::Completed, 100, None)
    );
    assert!(view.finished_at.is_some());
    assert!(s.jobs.claim("c", lease).await.expect("claim").is_none());
    let listed = s.jobs.list(&ds).await.expect("list");
    assert_eq!(listed.len(), 1);
    let counts = s.jobs.counts().await.expect("counts");
    assert!(counts.contains(&(JobStatus::Completed, 1)), "{counts:?}");
}

/// Pause, resume, cancel and restart: a holder learns of a pause or a cancel at its
/// next save and stops; nothing claims a paused or cancelled job; a restart goes back
/// to a kept checkpoint, and is refused while a worker holds the job.
pub async fn operators_pause_resume_cancel_and_restart_jobs(s: Stores) {
    let ds = dataset(&s, "steered", SIMPLE).await;
    let job = s.jobs.create(&new_job(&ds)).await.expect("created");
    let lease = Duration::from_secs(30);
    let a = s.jobs.claim("a", lease).await.expect("claim").expect("job");
    for (done, at) in [(10, 1), (20, 2)] {
        s.jobs
            .save(&a, &progress(done, Some(at)), lease, 5)
            .await
            .expect("saved");
    }
    let paused = s
        .jobs
        .act(&ds, &job.id, JobAction::Pause)
        .await
        .expect("paused");
    assert_eq!(paused.status, JobStatus::Paused);
    let restart = s.jobs.restart(&ds, &job.id, 1).await;
    assert!(
        matches!(restart, Err(JobError::Conflict(_))),
        "held: {restart:?}"
    );
    let d = s
        .jobs
        .save(&a, &progress(25, None), lease, 5)
        .await
        .expect("saved");
    assert_eq!(d, Directive::Stop(JobStatus::Paused));
    assert!(
        s.jobs.claim("b", lease).await.expect("claim").is_none(),
        "paused"
    );
    assert!(matches!(
        s.jobs.save(&a, &progress(26, None), lease, 5).await,
        Err(JobError::LeaseLost)
    ));

    let resumed = s
        .jobs
        .act(&ds, &job.id, JobAction::Resume)
        .await
        .expect("resumed");
    assert_eq!(resumed.status, JobStatus::Queued);
    let b = s
        .jobs
        .claim("b", lease)
        .await
        .expect("claim")
        .expect("resumed job");
    assert_eq!(
        (b.done, b.checkpoint.clone()),
        (20, Some(serde_json::json!({"at": 2})))
    );

    let cancelled = s
        .jobs
        .act(&ds, &job.id, JobAction::Cancel)
        .await
        .expect("cancelled");
    assert_eq!(cancelled.status, JobStatus::Cancelled);
    let d = s
        .jobs
        .save(&b, &progress(21, None), lease, 5)
        .await
        .expect("saved");
    assert_eq!(d, Directive::Stop(JobStatus::Cancelled));
    let again = s.jobs.act(&ds, &job.id, JobAction::Resume).await;
    assert!(matches!(again, Err(JobError::Conflict(_))), "{again:?}");
    assert!(
        s.jobs.claim("c", lease).await.expect("claim").is_none(),
        "cancelled"
    );

    assert!(matches!(
        s.jobs.restart(&ds, &job.id, 9).await,
        Err(JobError::NotFound)
    ));
    let restarted = s.jobs.restart(&ds, &job.id, 1).await.expect("restarted");
    assert_eq!((restarted.status, restarted.done), (JobStatus::Queued, 10));
    assert_eq!(restarted.checkpoints.len(), 1, "later checkpoints dropped");
    let c = s
        .jobs
        .claim("c", lease)
        .await
        .expect("claim")
        .expect("restarted job");
    assert_eq!(c.checkpoint, Some(serde_json::json!({"at": 1})));
    s.jobs.release(&c).await.expect("released");
    let released = s.jobs.get(&ds, &job.id).await.expect("view");
    assert_eq!(
        (released.status, released.held_by),
        (JobStatus::Queued, None)
    );
    let from_start = s.jobs.restart(&ds, &job.id, 0).await.expect("restarted");
    assert_eq!((from_start.done, from_start.checkpoints.len()), (0, 0));

    // A repeating job at its end waits, queued, until its next run is due.
    let d = s.jobs.claim("d", lease).await.expect("claim").expect("job");
    s.jobs
        .save(&d, &progress(40, Some(9)), lease, 5)
        .await
        .expect("saved");
    let next = chrono::Utc::now() + chrono::Duration::milliseconds(800);
    s.jobs.snooze(&d, 40, next).await.expect("snoozed");
    let waiting = s.jobs.get(&ds, &job.id).await.expect("view");
    assert_eq!(
        (waiting.status, waiting.done, waiting.attempts),
        (JobStatus::Queued, 40, 0)
    );
    assert!(
        (waiting.due_at - next).num_milliseconds().abs() < 5,
        "{waiting:?}"
    );
    assert!(
        s.jobs.claim("e", lease).await.expect("claim").is_none(),
        "not due yet"
    );
    SystemClock.sleep(Duration::from_millis(1000)).await;
    let e = s
        .jobs
        .claim("e", lease)
        .await
        .expect("claim")
        .expect("due now");
    assert_eq!(
        (e.done, e.checkpoint.clone()),
        (40, Some(serde_json::json!({"at": 9})))
    );
    assert!(matches!(
        s.jobs.get(&ds, "no-such-job").await,
        Err(JobError::NotFound)
    ));
}

/// A rollup job run by the runtime over two imports: a point per group each import
/// touched, as that import left it, read back as a series; the last points agree with
/// the aggregate of the latest state.
pub async fn a_rollup_keeps_each_groups_aggregate_after_every_import(s: Stores) {
    let ds = dataset(&s, "rolled", SIMPLE).await;
    let imports = service(&s, 2);
    receive(
        &imports,
        &ds,
        b"id,group,value\na1,a,1\na2,a,2\nb1,b,5\n",
        None,
    )
    .await;
    drain(&imports).await;
    receive(&imports, &ds, b"id,group,value\na1,b,10\n", None).await;
    drain(&imports).await;

    let settings = JobSettings {
        page: 2,
        checkpoint_items: 1,
        idle_poll: Duration::from_millis(50),
        ..JobSettings::default()
    };
    let wakeups = Wakeups::default();
    let jobs = job_service(&s, &imports, no_sources(&s), settings, &wakeups);
    let spec = |measure: &str, group_by: &str| {
        JobSpec::Rollup(RollupSpec {
            name: "by_group".into(),
            measure: measure.into(),
            group_by: group_by.into(),
            every: None,
        })
    };
    let bad = jobs.create(&ds, spec("nope", "group")).await;
    assert!(bad.is_err(), "an unknown measure is refused");
    let job = jobs
        .create(&ds, spec("value", "group"))
        .await
        .expect("created");

    let view = run_until_completed(&jobs, wakeups, &ds, &job.id).await;
    assert_eq!((view.done, view.total), (4, Some(4)), "four changes");
    assert!(!view.checkpoints.is_empty());

    let series = jobs
        .series(&ds, "by_group", None, None, 100)
        .await
        .expect("series");
    let seen: Vec<(String, u64, Option<f64>)> = series
        .iter()
        .map(|p: &RollupPoint| (p.group.clone(), p.count, p.mean))
        .collect();
    assert_eq!(
        seen,
        [
            ("a".to_owned(), 2, Some(1.5)),
            ("b".to_owned(), 1, Some(5.0)),
            ("a".to_owned(), 1, Some(2.0)),
            ("b".to_owned(), 2, Some(7.5)),
        ]
    );
    assert_ne!(series[0].import, series[2].import, "a point per import");
    assert!(series[0].at <= series[2].at);
    let later = series[2].at + chrono::Duration::seconds(1);
    let none = jobs
        .series(&ds, "by_group", Some(later), None, 100)
        .await
        .expect("series");
    assert!(none.is_empty(), "nothing after the last import");
    assert!(
        jobs.series(&ds, "other", None, None, 10).await.is_err(),
        "no such rollup"
    );
}

/// The records of a dataset as `(canonical key, value)`, in key order.
async fn values(s: &Stores, ds: &crate::DatasetName) -> Vec<(String, f64)> {
    let query = crate::ports::RecordQuery {
        limit: 100,
        ..Default::default()
    };
    let page = s.records.list(ds, &query).await.expect("records");
    page.records
        .iter()
        .map(|r| {
            let value = r.record.measures.get("value").expect("a value");
            (r.record.key.canonical(), value)
        })
        .collect()
}

/// The deliveries waiting for a subscription.
async fn pending(s: &Stores, subscription: &str) -> u64 {
    s.subscriptions
        .counts(subscription)
        .await
        .expect("counts")
        .pending
}

async fn subscribe(s: &Stores, ds: &crate::DatasetName) -> String {
    let new = crate::ports::NewSubscription {
        dataset: ds.clone(),
        url: "https://receiver.example/hook".into(),
        events: None,
        secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
    };
    s.subscriptions.create(&new).await.expect("subscribed").id
}

/// The store's side of a reprocess: `hold` waits for an import in progress, clears the
/// dataset, queues its rollups again and holds its imports; import workers get none of
/// the dataset's imports while the job has not ended (other datasets go on); the job
/// claims the held ones oldest first, one at a time, written without events; a
/// cancelled job lets import workers take what waited.
pub async fn a_rebuild_holds_a_datasets_imports_for_its_job_alone(s: Stores) {
    let ds = dataset(&s, "rebuilt", SIMPLE).await;
    let other = dataset(&s, "bystander", SIMPLE).await;
    let subscription = subscribe(&s, &ds).await;
    let imports = service(&s, 2);
    receive(&imports, &ds, b"id,group,value\na1,a,1\na2,a,2\n", None).await;
    receive(&imports, &ds, b"id,group,value\na1,b,10\n", None).await;
    drain(&imports).await;
    let announced = pending(&s, &subscription).await;
    assert!(announced > 0, "the first processing announced its changes");

    // A rollup that ran over the history as it was.
    let rollup = s.jobs.create(&new_job(&ds)).await.expect("rollup");
    let lease = Duration::from_secs(30);
    let r = s.jobs.claim("r", lease).await.expect("claim").expect("job");
    s.jobs
        .save(&r, &progress(3, Some(3)), lease, 5)
        .await
        .expect("saved");
    s.jobs.finish(&r, 3, None).await.expect("finished");
    let first = s.vault.list(&ds, 1, 0).await.expect("imports");
    let point = RollupPoint {
        import: first[0].id.clone(),
        at: chrono::Utc::now(),
        seq: 1,
        group: "a".into(),
        count: 1,
        sum: 2.0,
        mean: Some(2.0),
        stddev: Some(0.0),
    };
    s.rollups
        .save_points(&ds, "r", &[point])
        .await
        .expect("points");

    // An import in progress: the reset waits for it.
    receive(&imports, &ds, b"id,group,value\na3,c,3\n", None).await;
    let in_progress = imports.claim("w").await.expect("claim").expect("an import");
    let job = s
        .jobs
        .create(&NewJob {
            dataset: ds.clone(),
            kind: "reprocess".into(),
            params: serde_json::json!({"contract_version": 1}),
        })
        .await
        .expect("created");
    let contract = crate::ContractVersion::FIRST;
    assert!(matches!(
        s.rebuilds.hold(&ds, &job.id, contract).await,
        Err(crate::ports::RebuildError::Busy)
    ));
    assert_eq!(values(&s, &ds).await.len(), 2, "nothing cleared while busy");
    imports.release(&in_progress).await.expect("released");

    let before = s.datasets.get(&ds).await.expect("dataset").revision;
    let held = s.rebuilds.hold(&ds, &job.id, contract).await.expect("held");
    assert_eq!(held, 2, "every import of the dataset processed so far");
    assert_eq!(s.rebuilds.held(&job.id).await.expect("held"), 2);
    assert!(values(&s, &ds).await.is_empty(), "latest state cleared");
    let key = crate::RecordKey::try_new(vec!["a1".into()]).expect("key");
    assert!(
        s.records
            .history(&ds, &key, &crate::ports::HistoryPage::ALL)
            .await
            .is_err(),
        "history cleared"
    );
    assert!(s.datasets.get(&ds).await.expect("dataset").revision > before);
    let requeued = s.jobs.get(&ds, &rollup.id).await.expect("rollup");
    assert_eq!((requeued.status, requeued.done), (JobStatus::Queued, 0));
    let points = s
        .rollups
        .points(&ds, "r", None, None, 10)
        .await
        .expect("points");
    assert!(points.is_empty(), "the rollup starts again from nothing");

    // Import workers: another dataset's imports, and none of this one's.
    receive(&imports, &other, b"id,group,value\nx,x,1\n", None).await;
    receive(&imports, &ds, b"id,group,value\nn1,n,4\n", None).await;
    let lease_other = imports.claim("w").await.expect("claim").expect("an import");
    let other_import = s.vault.get(&lease_other.import).await.expect("import");
    assert_eq!(other_import.import.dataset, other);
    imports.process(&lease_other).await.expect("processed");
    assert!(
        imports.claim("w").await.expect("claim").is_none(),
        "held back"
    );

    // The job: oldest first, one at a time.
    let mut order = Vec::new();
    loop {
        let claimed = s.rebuilds.claim_held(&job.id, "job", lease).await;
        let Some(held) = claimed.expect("claimed") else {
            break;
        };
        assert!(matches!(
            s.rebuilds
                .claim_held(&job.id, "job2", Duration::from_secs(30))
                .await,
            Err(crate::ports::RebuildError::Busy)
        ));
        order.push(s.vault.get(&held.import).await.expect("import").received_at);
        imports.process(&held).await.expect("processed");
    }
    assert_eq!(order.len(), 2);
    assert!(order.is_sorted(), "arrival order");
    assert_eq!(s.rebuilds.held(&job.id).await.expect("held"), 0);
    assert_eq!(
        values(&s, &ds).await,
        [("a1".to_owned(), 10.0), ("a2".to_owned(), 2.0)]
    );
    assert_eq!(
        pending(&s, &subscription).await,
        announced,
        "nothing announced again"
    );

    // Still queued: the dataset's imports not yet processed wait until the job ends.
    assert!(imports.claim("w").await.expect("claim").is_none());
    s.jobs
        .act(&ds, &job.id, JobAction::Cancel)
        .await
        .expect("cancelled");
    drain(&imports).await;
    assert_eq!(
        values(&s, &ds).await.len(),
        4,
        "the waiting imports applied"
    );
    assert!(
        pending(&s, &subscription).await > announced,
        "imports processed for the first time are announced"
    );
}

/// A reprocess run by the runtime: imports received under one contract are processed
/// again through another (keyed differently), in arrival order, and the result is
/// what they would have given had they arrived under it; an import received while the
/// job waits is processed after it; a reprocess restarts from the beginning only.
pub async fn a_reprocess_rebuilds_a_dataset_as_if_its_imports_arrived_under_another_contract(
    s: Stores,
) {
    let ds = dataset(&s, "reprocessed", SIMPLE).await;
    let imports = service(&s, 2);
    receive(
        &imports,
        &ds,
        b"id,group,value\na1,a,1\na2,a,2\nb1,b,5\n",
        None,
    )
    .await;
    receive(&imports, &ds, b"id,group,value\na1,b,10\n", None).await;
    drain(&imports).await;
    assert_eq!(values(&s, &ds).await.len(), 3);
    // Version 2 keys records by their group: last wins per group.
    let by_group = SIMPLE.replace(r#""key": ["id"]"#, r#""key": ["group"]"#);
    s.contracts
        .publish(&ds, &super::support::contract(&by_group))
        .await
        .expect("published");

    let settings = JobSettings {
        idle_poll: Duration::from_millis(50),
        ..JobSettings::default()
    };
    let wakeups = Wakeups::default();
    let jobs = job_service(&s, &imports, no_sources(&s), settings, &wakeups);
    let spec = |version: u32| {
        JobSpec::Reprocess(ReprocessSpec {
            contract_version: crate::ContractVersion::try_new(version).expect("a version"),
        })
    };
    assert!(
        matches!(
            jobs.create(&ds, spec(9)).await,
            Err(JobApiError::Invalid { .. })
        ),
        "no such version"
    );
    let job = jobs.create(&ds, spec(2)).await.expect("created");
    assert!(
        matches!(
            jobs.create(&ds, spec(2)).await,
            Err(JobApiError::Conflict(_))
        ),
        "one reprocess at a time"
    );
    // Received while the job waits: processed after it, under version 2.
    receive(&imports, &ds, b"id,group,value\nc1,c,7\nb2,b,11\n", None).await;

    let view = run_until_completed(&jobs, wakeups, &ds, &job.id).await;
    assert_eq!((view.done, view.total), (2, Some(2)), "two imports");
    assert_eq!(
        values(&s, &ds).await,
        [("a".to_owned(), 2.0), ("b".to_owned(), 10.0)],
        "last wins per group, in arrival order"
    );
    let b = crate::RecordKey::try_new(vec!["b".into()]).expect("key");
    let history = s
        .records
        .history(&ds, &b, &crate::ports::HistoryPage::ALL)
        .await
        .expect("history");
    let seen: Vec<f64> = history
        .entries
        .iter()
        .filter_map(|e| e.record.measures.get("value"))
        .collect();
    assert_eq!(seen, [5.0, 10.0], "history as if arrived under version 2");
    for import in s
        .vault
        .list(&ds, 10, 0)
        .await
        .expect("imports")
        .iter()
        .skip(1)
    {
        assert_eq!(import.import.contract.get(), 2, "{import:?}");
        assert_eq!(import.status, crate::ImportStatus::Completed);
    }

    drain(&imports).await;
    assert_eq!(
        values(&s, &ds).await,
        [
            ("a".to_owned(), 2.0),
            ("b".to_owned(), 11.0),
            ("c".to_owned(), 7.0)
        ]
    );
    assert!(
        matches!(
            jobs.restart(&ds, &job.id, 1).await,
            Err(JobApiError::Conflict(_))
        ),
        "a reprocess restarts from the beginning only"
    );
}

/// Record deletions (ADR 40) are imports: a reprocess replays them in order, so a
/// deleted record stays deleted, and a rollup reads them as the state leaving its
/// group (a key created again afterwards joins as new).
pub async fn a_reprocess_keeps_deleted_records_deleted_and_rollups_see_them_go(s: Stores) {
    let ds = dataset(&s, "forgotten", SIMPLE).await;
    let imports = service(&s, 4);
    receive(
        &imports,
        &ds,
        b"id,group,value\na1,a,1\na2,a,2\nb1,b,5\n",
        None,
    )
    .await;
    drain(&imports).await;
    for key in ["a2", "a1"] {
        let key = crate::RecordKey::parse(key, 1).expect("key");
        let state = s.records.get(&ds, &key).await.expect("a record");
        imports
            .delete_record(&ds, &state, "test", None)
            .await
            .expect("stored");
        drain(&imports).await;
    }
    receive(&imports, &ds, b"id,group,value\na1,b,7\n", None).await;
    drain(&imports).await;
    let expected = [("a1".to_owned(), 7.0), ("b1".to_owned(), 5.0)];
    assert_eq!(values(&s, &ds).await, expected);

    let changes = s.rollups.changes(&ds, 0, 100).await.expect("changes");
    let seen: Vec<(String, bool, bool)> = changes
        .iter()
        .map(|c| (c.record.key.canonical(), c.deleted, c.previous.is_some()))
        .collect();
    assert_eq!(
        seen,
        [
            ("a1".to_owned(), false, false),
            ("a2".to_owned(), false, false),
            ("b1".to_owned(), false, false),
            ("a2".to_owned(), true, false),
            ("a1".to_owned(), true, false),
            ("a1".to_owned(), false, false),
        ],
        "a deletion has no previous state, nor has the key created again"
    );

    let settings = JobSettings {
        idle_poll: Duration::from_millis(50),
        ..JobSettings::default()
    };
    let wakeups = Wakeups::default();
    let jobs = job_service(&s, &imports, no_sources(&s), settings, &wakeups);
    let rollup = JobSpec::Rollup(RollupSpec {
        name: "by_group".into(),
        measure: "value".into(),
        group_by: "group".into(),
        every: None,
    });
    let job = jobs.create(&ds, rollup).await.expect("created");
    run_until_completed(&jobs, wakeups.clone(), &ds, &job.id).await;
    let series = jobs
        .series(&ds, "by_group", None, None, 100)
        .await
        .expect("series");
    let last = |group: &str| {
        series
            .iter()
            .rfind(|p| p.group == group)
            .map(|p| (p.count, p.mean))
    };
    assert_eq!(last("a"), Some((0, None)), "both of group a were deleted");
    assert_eq!(last("b"), Some((2, Some(6.0))));

    let reprocess = JobSpec::Reprocess(ReprocessSpec {
        contract_version: crate::ContractVersion::try_new(1).expect("a version"),
    });
    let job = jobs.create(&ds, reprocess).await.expect("created");
    let view = run_until_completed(&jobs, wakeups, &ds, &job.id).await;
    assert_eq!(
        view.total,
        Some(4),
        "the document, two deletions, the document"
    );
    assert_eq!(values(&s, &ds).await, expected, "a2 stays deleted");
}
