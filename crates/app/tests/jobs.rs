//! Jobs end to end (issue 19, part 2), on SQLite and on PostgreSQL: a rollup started
//! through the API keeps each group's aggregate after every import as a series whose
//! last points are what the aggregate route answers; operators list, pause, cancel and
//! restart jobs (with `409`s where an action does not apply); `intake jobs` lists them.
//! A rollup whose server is killed with SIGKILL at several points resumes, on the next
//! server, from its latest checkpoint, and its series equals an uninterrupted run's.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[path = "support/process.rs"]
mod process;
#[path = "support/store.rs"]
mod store;

use std::process::Child;
use std::time::{Duration, Instant};

use process::{intake, serve, sigterm, wait_until_up};
use serde_json::{Value, json};
use store::{CONTRACT, Store, client, get, import_items, post, request};

const JOBS: &str = "/v1/datasets/items/jobs";

async fn create_dataset(base: &str) {
    let body =
        json!({"name": "items", "contract": serde_json::from_str::<Value>(CONTRACT).unwrap()});
    post(base, "/v1/datasets", &body).await;
}

fn rollup(name: &str) -> Value {
    json!({"kind": "rollup", "name": name, "measure": "value", "group_by": "group"})
}

/// Starts a rollup; its id.
async fn start(base: &str, name: &str) -> String {
    let (status, job) = request(base, "POST", JOBS, Some(&rollup(name))).await;
    assert_eq!(status, 201, "{job}");
    assert_eq!(job["status"], "queued", "{job}");
    job["id"].as_str().unwrap().to_owned()
}

async fn job(base: &str, id: &str) -> Value {
    get(base, &format!("{JOBS}/{id}")).await
}

/// Waits until the job is completed; the job.
async fn completed(base: &str, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let job = job(base, id).await;
        match job["status"].as_str() {
            Some("completed") => return job,
            Some("failed" | "cancelled") => panic!("the job ended: {job}"),
            _ => {}
        }
        assert!(Instant::now() < deadline, "the job did not complete: {job}");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the job is as `wanted` says; the job.
async fn wait_for(base: &str, id: &str, wanted: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let job = job(base, id).await;
        if wanted(&job) {
            return job;
        }
        assert!(Instant::now() < deadline, "the job never got there: {job}");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A rollup's points without what differs between two runs (nothing should).
async fn series(base: &str, name: &str) -> Vec<Value> {
    let answer = get(
        base,
        &format!("/v1/datasets/items/rollups/{name}?limit=10000"),
    )
    .await;
    answer["points"].as_array().expect("points").clone()
}

async fn steer(store: Store) {
    let dir = tempfile::tempdir().unwrap();
    let env = store.env(&[
        ("INTAKE_WORKERS", "1"),
        ("INTAKE_JOB_CHECKPOINT_ITEMS", "2"),
    ]);
    let (mut server, base) = serve(dir.path(), &env);
    wait_until_up(&client(), &base).await;
    create_dataset(&base).await;
    import_items(&base, "id,group,value\na1,a,1\na2,a,2\nb1,b,5\n".into()).await;
    import_items(&base, "id,group,value\na1,b,10\nb2,b,6\n".into()).await;
    import_items(&base, "id,group,value\na2,a,4\n".into()).await;

    // Mistakes are named.
    let bad = json!({"kind": "rollup", "name": "x", "measure": "nope", "group_by": "group"});
    let (status, problem) = request(&base, "POST", JOBS, Some(&bad)).await;
    assert_eq!(status, 400, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("nope"),
        "{problem}"
    );
    let far = json!({"kind": "rollup", "name": "x", "measure": "value", "group_by": "group",
        "every": "9000h"});
    let (status, problem) = request(&base, "POST", JOBS, Some(&far)).await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "every", "{problem}");
    let (status, problem) = request(&base, "POST", JOBS, Some(&json!({"kind": "shuffle"}))).await;
    assert_eq!(status, 400, "{problem}");
    let (status, _) = request(
        &base,
        "POST",
        "/v1/datasets/nobody/jobs",
        Some(&rollup("x")),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = request(&base, "GET", "/v1/datasets/items/rollups/by_group", None).await;
    assert_eq!(status, 404, "no such rollup yet");

    let id = start(&base, "by_group").await;
    let done = completed(&base, &id).await;
    assert_eq!(done["progress"]["done"], 6, "six changes: {done}");
    assert_eq!(done["progress"]["total"], 6, "{done}");
    assert!(
        !done["checkpoints"].as_array().unwrap().is_empty(),
        "{done}"
    );
    let points = series(&base, "by_group").await;
    let last = |group: &str| {
        points
            .iter()
            .rfind(|p| p["group"] == group)
            .unwrap_or_else(|| panic!("a point of {group}"))
            .clone()
    };
    let aggregate = get(
        &base,
        "/v1/datasets/items/aggregate?measure=value&group_by=group",
    )
    .await;
    for group in aggregate["groups"].as_array().unwrap() {
        let key = group["group"].as_str().unwrap();
        let point = last(key);
        assert_eq!(point["count"], group["count"], "{key}: {point} vs {group}");
        let (mean, expected) = (
            point["mean"].as_f64().unwrap(),
            group["mean"].as_f64().unwrap(),
        );
        assert!((mean - expected).abs() < 1e-9, "{key}: {point} vs {group}");
    }
    assert_eq!(
        points.len(),
        5,
        "a,b after the first; a,b after the move; a after the last: {points:?}"
    );

    // Steering: an ended job cannot be paused or cancelled, only restarted.
    for action in ["pause", "cancel", "resume"] {
        let (status, problem) =
            request(&base, "POST", &format!("{JOBS}/{id}/{action}"), None).await;
        assert_eq!(status, 409, "{action}: {problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains("completed"),
            "{problem}"
        );
    }
    let (status, _) = request(
        &base,
        "POST",
        &format!("{JOBS}/{id}/restart"),
        Some(&json!({"checkpoint": 99})),
    )
    .await;
    assert_eq!(status, 404);
    let (status, again) = request(
        &base,
        "POST",
        &format!("{JOBS}/{id}/restart"),
        Some(&json!({"checkpoint": 0})),
    )
    .await;
    assert_eq!(
        (status, again["status"].as_str()),
        (200, Some("queued")),
        "{again}"
    );
    completed(&base, &id).await;
    assert_eq!(
        series(&base, "by_group").await,
        points,
        "the same series again"
    );
    let (status, taken) = request(&base, "POST", JOBS, Some(&rollup("by_group"))).await;
    assert_eq!(status, 409, "one job per rollup name: {taken}");
    let (status, unknown) = request(&base, "GET", &format!("{JOBS}/nope"), None).await;
    assert_eq!(status, 404, "{unknown}");

    // A job paused before a worker takes it waits; resumed, it completes.
    let (status, _) = request(&base, "POST", "/admin/workers/jobs/pause", None).await;
    assert_eq!(status, 200);
    let second = start(&base, "again").await;
    let (status, paused) = request(&base, "POST", &format!("{JOBS}/{second}/pause"), None).await;
    assert_eq!(
        (status, paused["status"].as_str()),
        (200, Some("paused")),
        "{paused}"
    );
    let (status, _) = request(&base, "POST", "/admin/workers/jobs/resume", None).await;
    assert_eq!(status, 200);
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        job(&base, &second).await["status"],
        "paused",
        "nobody takes a paused job"
    );
    let state = get(&base, "/admin/state").await;
    assert_eq!(state["queues"]["jobs_paused"], 1, "{}", state["queues"]);
    let (status, _) = request(&base, "POST", &format!("{JOBS}/{second}/resume"), None).await;
    assert_eq!(status, 200);
    completed(&base, &second).await;
    let listed = get(&base, JOBS).await;
    assert_eq!(listed["jobs"].as_array().unwrap().len(), 2, "{listed}");
    assert_eq!(listed["jobs"][0]["id"], second.as_str(), "newest first");

    // A repeating rollup adds the imports committed after its run, at its next run.
    let body = json!({"kind": "rollup", "name": "live", "measure": "value",
        "group_by": "group", "every": "1s"});
    let (status, live) = request(&base, "POST", JOBS, Some(&body)).await;
    assert_eq!(status, 201, "{live}");
    let live = live["id"].as_str().unwrap().to_owned();
    let waiting = wait_for(&base, &live, |j| {
        j["status"] == "queued" && j["progress"]["done"] == 6
    })
    .await;
    assert!(waiting["next_run_at"].is_string(), "{waiting}");
    let before = series(&base, "live").await.len();
    import_items(&base, "id,group,value\nc1,c,7\n".into()).await;
    wait_for(&base, &live, |j| j["progress"]["done"] == 7).await;
    let after = series(&base, "live").await;
    assert_eq!(after.len(), before + 1, "{after:?}");
    assert_eq!(
        (
            after[before]["group"].as_str(),
            after[before]["mean"].as_f64()
        ),
        (Some("c"), Some(7.0))
    );
    let (status, _) = request(&base, "POST", &format!("{JOBS}/{live}/cancel"), None).await;
    assert_eq!(status, 200);

    // The command line reads the same jobs from the database.
    let out = intake(dir.path())
        .envs(env.iter().copied())
        .args(["jobs", "--dataset", "items"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert_eq!(
        text.lines()
            .filter(|l| l.contains("completed") && l.contains("rollup"))
            .count(),
        2,
        "{text}"
    );
    assert!(text.contains(&id), "{text}");

    sigterm(&server);
    server.wait().unwrap();
    store.drop().await;
}

#[actix_web::test]
async fn rollups_are_started_read_and_steered_on_sqlite() {
    steer(Store::Sqlite).await;
}

#[actix_web::test]
async fn rollups_are_started_read_and_steered_on_postgres() {
    steer(Store::postgres("jobs")).await;
}

/// Kills `child` (SIGKILL) once the job, held by `child`, has kept a checkpoint past
/// `after` items and is still running; the items it had done.
async fn kill_past(child: &mut Child, base: &str, id: &str, after: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let job = job(base, id).await;
        let kept = job["checkpoints"].as_array().unwrap();
        let past = kept.iter().any(|c| c["done"].as_u64().unwrap() > after);
        assert_ne!(
            job["status"], "completed",
            "the job ended before it could be killed: {job}"
        );
        let holder = job["running_on"].as_str().unwrap_or_default();
        if past && job["status"] == "running" && holder.contains(&format!("-{}-job-", child.id())) {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            return job["progress"]["done"].as_u64().unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "no checkpoint past {after}: {job}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn survive(store: Store) {
    let dir = tempfile::tempdir().unwrap();
    // Small checkpoints and a short lease; pages of 100 changes make the run long
    // enough to be killed in the middle, twice.
    let env = store.env(&[
        ("INTAKE_WORKERS", "1"),
        ("INTAKE_JOB_LEASE", "2s"),
        ("INTAKE_JOB_CHECKPOINT_ITEMS", "500"),
        ("INTAKE_JOB_CHECKPOINT_EVERY", "1s"),
        ("INTAKE_JOB_PAGE", "100"),
    ]);
    let (mut first, base) = serve(dir.path(), &env);
    wait_until_up(&client(), &base).await;
    create_dataset(&base).await;
    // Keys come back with new values and groups: changes move records between groups.
    for n in 0..12_u32 {
        let mut doc = String::from("id,group,value\n");
        for i in 0..1000_u32 {
            let key = (i * 7 + n * 131) % 3000;
            doc.push_str(&format!("k{key},g{},{}.{}\n", (i + n) % 7, i % 97, n));
        }
        import_items(&base, doc).await;
    }
    let id = start(&base, "killed").await;
    let at_first = kill_past(&mut first, &base, &id, 1000).await;

    let (mut second, base) = serve(dir.path(), &env);
    wait_until_up(&client(), &base).await;
    let at_second = kill_past(&mut second, &base, &id, at_first + 1500).await;
    assert!(at_second > at_first, "{at_first} then {at_second}");

    let (mut third, base) = serve(dir.path(), &env);
    wait_until_up(&client(), &base).await;
    let killed = completed(&base, &id).await;
    assert_eq!(
        killed["attempts"], 1,
        "progress clears the attempts: {killed}"
    );
    assert_eq!(killed["progress"]["done"], 12_000, "{killed}");
    let whole = start(&base, "whole").await;
    completed(&base, &whole).await;
    let (a, b) = (series(&base, "killed").await, series(&base, "whole").await);
    assert!(a.len() > 12, "{} points", a.len());
    assert_eq!(
        a, b,
        "a run killed twice gives the series of an uninterrupted one"
    );

    sigterm(&third);
    third.wait().unwrap();
    store.drop().await;
}

#[actix_web::test]
async fn a_rollup_killed_twice_gives_an_uninterrupted_runs_series_on_sqlite() {
    survive(Store::Sqlite).await;
}

#[actix_web::test]
async fn a_rollup_killed_twice_gives_an_uninterrupted_runs_series_on_postgres() {
    survive(Store::postgres("jobs_crash")).await;
}

/// The document `n` of the reprocess test: keys come back across documents with other
/// groups and values, so which arrival wins decides the answer.
fn reprocess_doc(n: u32) -> String {
    let mut doc = String::from("id,group,value\n");
    for i in 0..1000_u32 {
        let key = (i * 7 + n * 131) % 3000;
        doc.push_str(&format!("k{key},g{},{}.{}\n", (i + n) % 7, i % 97, n));
    }
    doc
}

/// Each group's count and sum when the first arrival of each key wins, worked out here
/// from the documents, in arrival order.
fn first_wins(docs: u32) -> std::collections::BTreeMap<String, (u64, f64)> {
    let mut first: std::collections::HashMap<String, (String, f64)> = Default::default();
    for n in 0..docs {
        for line in reprocess_doc(n).lines().skip(1) {
            let cells: Vec<&str> = line.split(',').collect();
            first
                .entry(cells[0].to_owned())
                .or_insert_with(|| (cells[1].to_owned(), cells[2].parse().unwrap()));
        }
    }
    let mut groups = std::collections::BTreeMap::new();
    for (group, value) in first.into_values() {
        let entry: &mut (u64, f64) = groups.entry(group).or_default();
        entry.0 += 1;
        entry.1 += value;
    }
    groups
}

/// The aggregate route's count and mean per group.
async fn by_group(base: &str) -> Vec<(String, u64, f64)> {
    let aggregate = get(
        base,
        "/v1/datasets/items/aggregate?measure=value&group_by=group",
    )
    .await;
    aggregate["groups"]
        .as_array()
        .unwrap_or_else(|| panic!("{aggregate}"))
        .iter()
        .map(|g| {
            (
                g["group"].as_str().unwrap().to_owned(),
                g["count"].as_u64().unwrap(),
                g["mean"].as_f64().unwrap(),
            )
        })
        .collect()
}

/// A reprocess through a contract version that keeps the first arrival of each key
/// (the imports arrived under last-wins), killed with SIGKILL twice while it works:
/// the next server takes the job and the import its killed worker held, and the
/// dataset ends as the documents give under that contract, worked out independently;
/// a reprocess restarts from the beginning only.
async fn reprocess_survives(store: Store) {
    const DOCS: u32 = 30;
    let dir = tempfile::tempdir().unwrap();
    let env = store.env(&[
        ("INTAKE_WORKERS", "1"),
        ("INTAKE_JOB_LEASE", "2s"),
        ("INTAKE_JOB_CHECKPOINT_ITEMS", "1"),
        ("INTAKE_JOB_CHECKPOINT_EVERY", "1s"),
    ]);
    let (mut first, base) = serve(dir.path(), &env);
    wait_until_up(&client(), &base).await;
    create_dataset(&base).await;
    for n in 0..DOCS {
        import_items(&base, reprocess_doc(n)).await;
    }
    let last_wins = by_group(&base).await;
    let mut contract: Value = serde_json::from_str(CONTRACT).unwrap();
    contract["merge"] = json!("first_wins");
    let (status, published) = request(
        &base,
        "POST",
        "/v1/datasets/items/contracts",
        Some(&contract),
    )
    .await;
    assert_eq!(
        (status, published["version"].as_u64()),
        (201, Some(2)),
        "{published}"
    );
    let body = json!({"kind": "reprocess", "contract_version": 2});
    let (status, started) = request(&base, "POST", JOBS, Some(&body)).await;
    assert_eq!(status, 201, "{started}");
    let id = started["id"].as_str().unwrap().to_owned();
    let (status, twice) = request(&base, "POST", JOBS, Some(&body)).await;
    assert_eq!(status, 409, "one reprocess at a time: {twice}");
    let (status, unknown) = request(
        &base,
        "POST",
        JOBS,
        Some(&json!({"kind": "reprocess", "contract_version": 9})),
    )
    .await;
    assert_eq!(status, 400, "{unknown}");

    let at_first = kill_past(&mut first, &base, &id, 3).await;
    let (mut second, base) = serve(dir.path(), &env);
    wait_until_up(&client(), &base).await;
    let at_second = kill_past(&mut second, &base, &id, at_first + 4).await;
    assert!(at_second > at_first, "{at_first} then {at_second}");

    let (mut third, base) = serve(dir.path(), &env);
    wait_until_up(&client(), &base).await;
    // `intake jobs --watch` follows the job until it has ended.
    let watched = intake(dir.path())
        .envs(env.iter().copied())
        .args(["jobs", "--dataset", "items", "--watch"])
        .output()
        .unwrap();
    assert!(
        watched.status.success(),
        "{}",
        String::from_utf8_lossy(&watched.stderr)
    );
    assert_eq!(
        job(&base, &id).await["status"],
        "completed",
        "watched to its end"
    );
    let done = completed(&base, &id).await;
    assert_eq!(
        (
            done["progress"]["done"].as_u64(),
            done["progress"]["total"].as_u64()
        ),
        (Some(u64::from(DOCS)), Some(u64::from(DOCS))),
        "{done}"
    );
    let rebuilt = by_group(&base).await;
    let expected = first_wins(DOCS);
    assert_eq!(rebuilt.len(), expected.len(), "{rebuilt:?}");
    for (group, count, mean) in &rebuilt {
        let (n, sum) = expected[group];
        #[allow(clippy::cast_precision_loss, reason = "a few thousand records")]
        let want = sum / n as f64;
        assert_eq!(*count, n, "{group}");
        assert!((mean - want).abs() < 1e-9, "{group}: {mean} vs {want}");
    }
    assert_ne!(rebuilt, last_wins, "the new contract took effect");
    let imports = get(&base, "/v1/datasets/items/imports?limit=100").await;
    let imports = imports["imports"].as_array().unwrap();
    assert_eq!(imports.len(), DOCS as usize);
    assert!(
        imports
            .iter()
            .all(|i| i["status"] == "completed" && i["contract_version"] == 2),
        "{imports:?}"
    );

    let (status, problem) = request(
        &base,
        "POST",
        &format!("{JOBS}/{id}/restart"),
        Some(&json!({"checkpoint": 1})),
    )
    .await;
    assert_eq!(status, 409, "{problem}");
    sigterm(&third);
    third.wait().unwrap();
    store.drop().await;
}

#[actix_web::test]
async fn a_reprocess_killed_twice_rebuilds_the_dataset_on_sqlite() {
    reprocess_survives(Store::Sqlite).await;
}

#[actix_web::test]
async fn a_reprocess_killed_twice_rebuilds_the_dataset_on_postgres() {
    reprocess_survives(Store::postgres("jobs_reprocess")).await;
}
