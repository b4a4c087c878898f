//! The management API end to end (issue 19, part 1), with two `intake serve` processes
//! sharing one database, on SQLite and on PostgreSQL: `/admin/state` shows the
//! instance, its adapters, workers and queues with every secret redacted; the log
//! filter changes at run time (a bad one is a `400` naming it); a kind of work paused
//! on one instance is obeyed by the other, its imports wait queued, and a resume on
//! the other instance lets them finish.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[path = "support/process.rs"]
mod process;
#[path = "support/store.rs"]
mod store;

use std::io::Read as _;
use std::time::{Duration, Instant};

use process::{serve, sigterm, wait_until_up};
use serde_json::{Value, json};
use store::{CONTRACT, Store, client, get, post, request};

const SECRET: &str = "s3cret-vendor-token";

/// Sends a CSV document without waiting; its import's id.
async fn import(base: &str, doc: &str) -> String {
    let mut res = client()
        .post(format!("{base}/v1/datasets/items/imports"))
        .insert_header(("Content-Type", "text/csv"))
        .send_body(doc.to_owned())
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    body["id"].as_str().expect("an import id").to_owned()
}

async fn status(base: &str, id: &str) -> String {
    let import = get(base, &format!("/v1/datasets/items/imports/{id}")).await;
    import["status"].as_str().unwrap().to_owned()
}

fn kind<'a>(state: &'a Value, kind: &str) -> &'a Value {
    state["workers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kind"] == kind)
        .unwrap()
}

async fn operate(store: Store) {
    let dir = tempfile::tempdir().unwrap();
    let env = store.env(&[
        ("INTAKE_SECRET_VENDOR_TOKEN", SECRET),
        ("INTAKE_WORKERS", "1"),
    ]);
    let (mut one, a) = serve(dir.path(), &env);
    wait_until_up(&client(), &a).await;
    let (mut other, b) = serve(dir.path(), &env);
    wait_until_up(&client(), &b).await;
    let body =
        json!({"name": "items", "contract": serde_json::from_str::<Value>(CONTRACT).unwrap()});
    post(&a, "/v1/datasets", &body).await;
    // A receiver that is never there: its deliveries stay pending, then dead.
    let hook = format!("http://127.0.0.1:{}/hook", process::free_port());
    let subscription = post(
        &a,
        "/v1/datasets/items/subscriptions",
        &json!({"url": hook}),
    )
    .await;

    // The state: who, what, how.
    let (code, state) = request(&a, "GET", "/admin/state", None).await;
    assert_eq!(code, 200, "{state}");
    assert!(
        !state.to_string().contains(SECRET),
        "a secret answered: {state}"
    );
    assert_eq!(state["config"]["secrets"]["VENDOR_TOKEN"], "[redacted]");
    assert_eq!(state["version"], env!("CARGO_PKG_VERSION"));
    assert!(
        state["instance"]
            .as_str()
            .unwrap()
            .ends_with(&one.id().to_string())
    );
    let database = &state["adapters"][0];
    assert_eq!(database["status"], "up", "{database}");
    assert_eq!(database["required"], true, "{database}");
    assert!(
        database["latency_ms"].as_f64().unwrap() >= 0.0,
        "{database}"
    );
    let imports = kind(&state, "imports");
    assert_eq!(
        (&imports["status"], &imports["count"]),
        (&json!("running"), &json!(1))
    );
    assert_eq!(state["queues"]["imports_waiting"], 0);
    assert_eq!(state["queues"]["deliveries"], json!([]), "no event yet");
    assert_eq!(state["log_filter"], "error");
    assert!(state["recent_errors"].is_array(), "{state}");

    // The log filter, at run time: a bad one changes nothing.
    let (code, problem) = request(
        &a,
        "PUT",
        "/admin/log-level",
        Some(&json!({"filter": "info,[oops"})),
    )
    .await;
    assert_eq!(code, 400, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "filter", "{problem}");
    let (code, level) = request(
        &a,
        "PUT",
        "/admin/log-level",
        Some(&json!({"filter": "warn"})),
    )
    .await;
    assert_eq!((code, &level["filter"]), (200, &json!("warn")));
    assert_eq!(
        request(&a, "GET", "/admin/log-level", None).await.1["filter"],
        "warn"
    );

    // Paused on one instance: the other obeys, and the import waits queued.
    let (code, paused) = request(&a, "POST", "/admin/workers/imports/pause", None).await;
    assert_eq!(
        (code, &paused["status"]),
        (200, &json!("paused")),
        "{paused}"
    );
    let (code, problem) = request(&a, "POST", "/admin/workers/cleaning/pause", None).await;
    assert_eq!(code, 404, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("imports, deliveries")
    );
    // PAUSES_READ_EVERY is a second.
    actix_web::rt::time::sleep(Duration::from_millis(1500)).await;
    let id = import(&b, "id,group,value\nk1,a,1\nk2,a,2\n").await;
    actix_web::rt::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(status(&a, &id).await, "received", "paused, yet processed");
    let (_, state) = request(&b, "GET", "/admin/state", None).await;
    assert_eq!(kind(&state, "imports")["status"], "paused", "{state}");
    assert!(kind(&state, "imports")["paused_since"].is_string());
    assert_eq!(state["queues"]["imports_waiting"], 1, "{state}");
    assert_eq!(kind(&state, "deliveries")["status"], "running");

    // Resumed on the other instance: the import finishes.
    let (code, resumed) = request(&b, "POST", "/admin/workers/imports/resume", None).await;
    assert_eq!(
        (code, &resumed["status"]),
        (200, &json!("running")),
        "{resumed}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while status(&a, &id).await != "completed" {
        assert!(
            Instant::now() < deadline,
            "never processed after the resume"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, state) = request(&a, "GET", "/admin/state", None).await;
    let queued = &state["queues"]["deliveries"][0];
    assert_eq!(queued["subscription"], subscription["id"], "{state}");
    assert_eq!(queued["dataset"], "items");
    let waiting = queued["pending"].as_u64().unwrap() + queued["dead"].as_u64().unwrap();
    assert!(waiting >= 1, "{queued}");

    for child in [&one, &other] {
        sigterm(child);
    }
    let mut logged = String::new();
    one.stderr
        .take()
        .unwrap()
        .read_to_string(&mut logged)
        .unwrap();
    assert!(one.wait().unwrap().success());
    assert!(other.wait().unwrap().success());
    // Started at `error`: the pause's warning shows only because the filter changed.
    assert!(logged.contains("workers paused"), "{logged}");
    assert!(!logged.contains(SECRET));
    store.drop().await;
}

#[actix_web::test]
async fn operators_see_state_change_the_log_filter_and_pause_work_on_sqlite() {
    operate(Store::Sqlite).await;
}

#[actix_web::test]
async fn operators_see_state_change_the_log_filter_and_pause_work_on_postgres() {
    operate(Store::postgres("admin")).await;
}
