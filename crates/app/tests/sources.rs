//! Pull sources end to end (issue 18) with real `intake serve` processes and a fake
//! vendor API on 127.0.0.1 that wants its token, pages by cursor and fails a page
//! with a `429` and another with a `500`: every record arrives once across a SIGKILL
//! in the middle of the backfill, on SQLite and on PostgreSQL. Then the vendor moves
//! to its "v2" (page numbers, a renamed field): the source turns degraded with the
//! reason, and a new contract version, a reprocess and a `PATCH` bring it back.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[path = "support/process.rs"]
mod process;
#[path = "support/store.rs"]
mod store;
#[path = "support/vendor.rs"]
mod vendor;

use std::collections::BTreeMap;
use std::process::Child;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use process::{serve, sigterm, wait_until_up};
use serde_json::{Value, json};
use store::{Store, client, get, post, request};
use vendor::{TOKEN, record, start_vendor};

const DATASET: &str = "/v1/datasets/vendor-items";
const SOURCE: &str = "/v1/datasets/vendor-items/sources/vendor";
const RECORDS: u64 = 10_000;
const PER_PAGE: u64 = 500;

fn contract() -> Value {
    json!({
        "format": "json",
        "records": "data.items",
        "fields": {
            "id": {"type": "string", "required": true},
            "group": {"type": "string", "required": true},
            "value": {"type": "number", "required": true}
        },
        "key": ["id"],
        "dimensions": ["group"],
        "measures": {"value": "value"},
        "merge": "last_wins",
        "on_invalid": "skip_record"
    })
}

async fn create_dataset(base: &str) {
    let body = json!({"name": "vendor-items", "contract": contract()});
    post(base, "/v1/datasets", &body).await;
}

/// The vendor's source: pages by cursor, the token by name, hourly.
async fn declare_source(base: &str, url: &str) -> Value {
    let body = json!({
        "name": "vendor", "kind": "json_api", "url": url, "schedule": "1h",
        "pagination": {"kind": "cursor", "cursor_param": "cursor", "next_cursor": "meta.next"},
        "auth": {"header": "Authorization", "prefix": "Bearer ", "secret": "VENDOR_TOKEN"}
    });
    post(base, &format!("{DATASET}/sources"), &body).await
}

fn kill(mut child: Child) {
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

/// Polls the source until `done` holds of it.
async fn source_until(base: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let source = get(base, SOURCE).await;
        if done(&source) {
            return source;
        }
        assert!(Instant::now() < deadline, "{what}: {source:#}");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until every import is processed and the dataset holds `records`; gives the
/// imports.
async fn settled(base: &str, records: u64) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let imports = get(base, &format!("{DATASET}/imports?limit=1000")).await;
        let imports = imports["imports"].as_array().unwrap().clone();
        let finished = imports
            .iter()
            .all(|i| i["status"] == "completed" || i["status"] == "failed");
        let dataset = get(base, DATASET).await;
        if finished && dataset["records"] == records {
            return imports;
        }
        assert!(
            Instant::now() < deadline,
            "not settled: {dataset} with {} imports",
            imports.len()
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The aggregate an uninterrupted run of `n` records gives: count and sum per group.
fn expected(n: u64) -> BTreeMap<String, (u64, u64)> {
    let mut groups = BTreeMap::new();
    for i in 0..n {
        let (_, group, value) = record(i);
        let entry = groups.entry(group).or_insert((0, 0));
        entry.0 += 1;
        entry.1 += value;
    }
    groups
}

async fn aggregate(base: &str) -> BTreeMap<String, (u64, u64)> {
    let answer = get(
        base,
        &format!("{DATASET}/aggregate?measure=value&group_by=group"),
    )
    .await;
    answer["groups"]
        .as_array()
        .unwrap_or_else(|| panic!("{answer}"))
        .iter()
        .map(|g| {
            let sum = g["sum"].as_f64().unwrap();
            (
                g["group"].as_str().unwrap().to_owned(),
                (g["count"].as_u64().unwrap(), sum.round() as u64),
            )
        })
        .collect()
}

fn env(store: &Store) -> Vec<(&str, &str)> {
    store.env(&[
        ("INTAKE_SECRET_VENDOR_TOKEN", TOKEN),
        ("INTAKE_SOURCE_WORKERS", "1"),
        // A killed server's lease lapses 2 × 1 s + 5 s later.
        ("INTAKE_SOURCE_TIMEOUT_MS", "1000"),
    ])
}

async fn backfill_survives_faults_and_a_sigkill(store: Store) {
    let dir = tempfile::tempdir().unwrap();
    let (url, vendor) = start_vendor(RECORDS, PER_PAGE);
    vendor.delay_ms.store(100, Ordering::SeqCst);
    vendor.fail_once(3, 429, Some(1));
    vendor.fail_once(7, 500, None);
    let env = env(&store);
    let (first, base) = serve(dir.path(), &env);
    wait_until_up(&client(), &base).await;
    create_dataset(&base).await;

    // A mistake is named by field; a secret not configured is refused.
    let mut res = client()
        .post(format!("{base}{DATASET}/sources"))
        .send_json(
            &json!({"name": "bad", "kind": "json_api", "url": url, "schedule": "1h",
            "auth": {"header": "Authorization", "secret": "MISSING"}}),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let problem: Value = res.json().await.unwrap();
    assert_eq!(problem["errors"][0]["field"], "auth.secret", "{problem}");

    let created = declare_source(&base, &url).await;
    assert_eq!(created["status"], "healthy");
    assert_eq!(created["auth"]["secret"], "VENDOR_TOKEN");
    assert!(
        !created.to_string().contains(TOKEN),
        "the secret's value is never shown"
    );

    // SIGKILL in the middle of the backfill, after both faults.
    source_until(&base, "ten pages fetched", |s| {
        s["state"]["pages_fetched"].as_u64().unwrap() >= 10
    })
    .await;
    kill(first);
    let (second, base) = serve(dir.path(), &env);
    wait_until_up(&client(), &base).await;
    let done = source_until(&base, "the backfill completes", |s| {
        !s["state"]["last_success_at"].is_null()
    })
    .await;
    assert_eq!(done["status"], "healthy", "{done}");
    assert_eq!(done["state"]["cursor"], Value::Null);
    assert_eq!(done["state"]["failures"], 0);
    let imports = settled(&base, RECORDS).await;
    assert_eq!(
        imports.len() as u64,
        RECORDS / PER_PAGE,
        "each page is one import"
    );
    assert!(imports.iter().all(|i| i["source"] == "source:vendor"));
    assert_eq!(
        aggregate(&base).await,
        expected(RECORDS),
        "as an uninterrupted run"
    );
    assert_eq!(
        vendor.faulted.load(Ordering::SeqCst),
        2,
        "both faults were met"
    );
    let served = vendor.served();
    assert!(
        (0..RECORDS / PER_PAGE).all(|p| served.contains(&p)),
        "{served:?}"
    );
    assert_eq!(vendor.unauthorized.load(Ordering::SeqCst), 0);
    sigterm(&second);
    assert!(second.wait_with_output().unwrap().status.success());
    store.drop().await;
}

#[actix_web::test]
async fn a_backfill_arrives_once_across_faults_and_a_sigkill_on_sqlite() {
    backfill_survives_faults_and_a_sigkill(Store::Sqlite).await;
}

#[actix_web::test]
async fn a_backfill_arrives_once_across_faults_and_a_sigkill_on_postgres() {
    backfill_survives_faults_and_a_sigkill(Store::postgres("sources")).await;
}

async fn a_vendor_api_change_is_noticed_and_fixed(store: Store) {
    let dir = tempfile::tempdir().unwrap();
    let (url, vendor) = start_vendor(2_000, PER_PAGE);
    let env = env(&store);
    let (server, base) = serve(dir.path(), &env);
    wait_until_up(&client(), &base).await;
    create_dataset(&base).await;
    declare_source(&base, &url).await;
    settled(&base, 2_000).await;

    // The vendor moves to v2: page numbers, `score` instead of `value`, more records.
    vendor.v2.store(true, Ordering::SeqCst);
    vendor.total.store(2_600, Ordering::SeqCst);
    let (status, _) = request(&base, "POST", &format!("{SOURCE}/run"), None).await;
    assert_eq!(status, 202);
    let degraded = source_until(&base, "degraded", |s| s["status"] == "degraded").await;
    let reason = degraded["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("500 records in 1 pages failed the contract on fields value"),
        "{reason}"
    );

    let mut scrape = client()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap();
    let text = String::from_utf8(scrape.body().await.unwrap().to_vec()).unwrap();
    assert!(
        text.contains("intake_sources{status=\"degraded\"} 1"),
        "{text}"
    );

    // The fix: a dry run of the new contract on the stored page, publish it, reprocess
    // the failed page, PATCH the pagination. No restart.
    let faulty = reason
        .split("import ")
        .nth(1)
        .and_then(|r| r.split(':').next())
        .unwrap()
        .to_owned();
    let mut fixed = contract();
    fixed["fields"]["value"]["path"] = json!("score");
    let (status, dry) = request(
        &base,
        "POST",
        &format!("{DATASET}/contracts/dry-run"),
        Some(&json!({"import_id": faulty, "contract": fixed})),
    )
    .await;
    assert_eq!(status, 200, "{dry}");
    post(&base, &format!("{DATASET}/contracts"), &fixed).await;
    let (status, _) = request(
        &base,
        "POST",
        &format!("{DATASET}/imports/{faulty}/reprocess"),
        Some(&json!({"contract_version": 2})),
    )
    .await;
    assert_eq!(status, 202);
    let (status, patched) = request(
        &base,
        "PATCH",
        SOURCE,
        Some(&json!({"pagination": {"kind": "page", "page_param": "page",
            "size_param": "per_page", "size": PER_PAGE}})),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    request(&base, "POST", &format!("{SOURCE}/run"), None).await;
    settled(&base, 2_600).await;
    let healthy = source_until(&base, "healthy", |s| s["status"] == "healthy").await;
    assert_eq!(healthy["reason"], Value::Null);
    assert_eq!(aggregate(&base).await, expected(2_600), "every record once");
    sigterm(&server);
    assert!(server.wait_with_output().unwrap().status.success());
    store.drop().await;
}

#[actix_web::test]
async fn a_vendor_api_change_is_noticed_and_fixed_on_sqlite() {
    a_vendor_api_change_is_noticed_and_fixed(Store::Sqlite).await;
}

#[actix_web::test]
async fn a_vendor_api_change_is_noticed_and_fixed_on_postgres() {
    a_vendor_api_change_is_noticed_and_fixed(Store::postgres("sources")).await;
}

async fn a_file_is_fetched_again_only_when_it_changed(store: Store) {
    let dir = tempfile::tempdir().unwrap();
    let (items, vendor) = start_vendor(300, PER_PAGE);
    let url = items.replace("/items", "/export.csv");
    let (server, base) = serve(dir.path(), &env(&store));
    wait_until_up(&client(), &base).await;
    let mut csv = contract();
    csv["format"] = json!("csv");
    csv.as_object_mut().unwrap().remove("records");
    let body = json!({"name": "vendor-items", "contract": csv});
    post(&base, "/v1/datasets", &body).await;
    let file = json!({"name": "vendor", "kind": "http_file", "url": url, "schedule": "1s"});
    let created = post(&base, &format!("{DATASET}/sources"), &file).await;
    assert_eq!(created["kind"], "http_file");
    settled(&base, 300).await;
    // Runs every second: an unchanged file costs a 304 and no import.
    let deadline = Instant::now() + Duration::from_secs(30);
    while vendor.unchanged.load(Ordering::SeqCst) < 2 {
        assert!(Instant::now() < deadline, "no conditional request");
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    let imports = settled(&base, 300).await;
    assert_eq!(imports.len(), 1, "an unchanged file is not imported again");
    assert_eq!(vendor.files.load(Ordering::SeqCst), 1);
    // A changed file is fetched whole and imported.
    vendor.total.store(450, Ordering::SeqCst);
    let imports = settled(&base, 450).await;
    assert_eq!(imports.len(), 2);
    assert_eq!(aggregate(&base).await, expected(450));
    let source = get(&base, SOURCE).await;
    assert_eq!(source["status"], "healthy", "{source}");
    assert!(source["state"]["pages_fetched"].as_u64().unwrap() >= 2);
    sigterm(&server);
    assert!(server.wait_with_output().unwrap().status.success());
    store.drop().await;
}

#[actix_web::test]
async fn a_file_is_fetched_again_only_when_it_changed_on_sqlite() {
    a_file_is_fetched_again_only_when_it_changed(Store::Sqlite).await;
}

#[actix_web::test]
async fn a_file_is_fetched_again_only_when_it_changed_on_postgres() {
    a_file_is_fetched_again_only_when_it_changed(Store::postgres("sources")).await;
}

/// Waits until the job is as `wanted` says; the job.
async fn job_until(base: &str, id: &str, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let job = get(base, &format!("{DATASET}/jobs/{id}")).await;
        if wanted(&job) {
            return job;
        }
        assert!(Instant::now() < deadline, "{what}: {job:#}");
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A `backfill` job pulls a paused source (which never runs on its own) page by page
/// from the vendor; killed with SIGKILL in the middle, it goes on from its latest
/// checkpoint on the next server, and every record arrives once, each page one
/// import, while the source's own state stays as it was.
async fn a_backfill_job_resumes_after_a_sigkill(store: Store) {
    let dir = tempfile::tempdir().unwrap();
    let (url, vendor) = start_vendor(RECORDS, PER_PAGE);
    vendor.delay_ms.store(100, Ordering::SeqCst);
    vendor.fail_once(4, 503, Some(1));
    let mut env = env(&store);
    env.extend([
        ("INTAKE_JOB_LEASE", "2s"),
        ("INTAKE_JOB_CHECKPOINT_ITEMS", "3"),
        ("INTAKE_JOB_CHECKPOINT_EVERY", "1s"),
    ]);
    let (first, base) = serve(dir.path(), &env);
    wait_until_up(&client(), &base).await;
    create_dataset(&base).await;
    let body = json!({
        "name": "vendor", "kind": "json_api", "url": url, "schedule": "1h", "paused": true,
        "pagination": {"kind": "cursor", "cursor_param": "cursor", "next_cursor": "meta.next"},
        "auth": {"header": "Authorization", "prefix": "Bearer ", "secret": "VENDOR_TOKEN"}
    });
    let paused = post(&base, &format!("{DATASET}/sources"), &body).await;
    assert_eq!(paused["status"], "paused", "{paused}");

    let jobs = format!("{DATASET}/jobs");
    let (status, refused) = request(
        &base,
        "POST",
        &jobs,
        Some(&json!({"kind": "backfill", "source": "nope"})),
    )
    .await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["errors"][0]["field"], "source", "{refused}");
    let (status, job) = request(
        &base,
        "POST",
        &jobs,
        Some(&json!({"kind": "backfill", "source": "vendor"})),
    )
    .await;
    assert_eq!(status, 201, "{job}");
    let id = job["id"].as_str().unwrap().to_owned();
    let pid = first.id();
    job_until(&base, &id, "a checkpoint past page 6", |j| {
        let past = j["checkpoints"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["done"].as_u64().unwrap() > 6);
        past && j["running_on"]
            .as_str()
            .is_some_and(|w| w.contains(&format!("-{pid}-job-")))
    })
    .await;
    kill(first);

    let (second, base) = serve(dir.path(), &env);
    wait_until_up(&client(), &base).await;
    let done = job_until(&base, &id, "the backfill completes", |j| {
        j["status"] == "completed"
    })
    .await;
    let pages = RECORDS / PER_PAGE;
    assert_eq!(done["progress"]["done"], pages, "{done}");
    let imports = settled(&base, RECORDS).await;
    assert_eq!(imports.len() as u64, pages, "each page is one import");
    assert_eq!(
        aggregate(&base).await,
        expected(RECORDS),
        "as an uninterrupted run"
    );
    assert_eq!(
        vendor.faulted.load(Ordering::SeqCst),
        1,
        "the fault was met"
    );
    let source = get(&base, SOURCE).await;
    assert_eq!(source["status"], "paused", "{source}");
    assert_eq!(source["state"]["pages_fetched"], 0, "{source}");
    sigterm(&second);
    assert!(second.wait_with_output().unwrap().status.success());
    store.drop().await;
}

#[actix_web::test]
async fn a_backfill_job_resumes_after_a_sigkill_on_sqlite() {
    a_backfill_job_resumes_after_a_sigkill(Store::Sqlite).await;
}

#[actix_web::test]
async fn a_backfill_job_resumes_after_a_sigkill_on_postgres() {
    a_backfill_job_resumes_after_a_sigkill(Store::postgres("sources_backfill")).await;
}
