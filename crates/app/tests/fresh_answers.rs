//! Answers come from what each process keeps in memory (ADR 25), yet a change one
//! process commits changes the next answers of every other: two `intake serve`
//! sharing PostgreSQL (told by `NOTIFY`), and a server beside `intake import` on the
//! same SQLite file (told by the file's `data_version`).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[path = "support/process.rs"]
mod process;
#[path = "support/store.rs"]
mod store;

use std::process::Child;
use std::time::{Duration, Instant};

use process::{intake, serve, sigterm, wait_until_up};
use serde_json::{Value, json};
use store::{CONTRACT, Store, client, get, import_items, post};

/// The same contract with a second measure, `double` (the same field again).
const CONTRACT_2: &str = r#"{"format": "csv",
  "fields": {"id": {"type": "string", "required": true},
             "group": {"type": "string", "required": true},
             "value": {"type": "number", "required": true}},
  "key": ["id"], "dimensions": ["group"],
  "measures": {"value": "value", "double": "value"},
  "merge": "last_wins", "on_invalid": "skip_record"}"#;

const AGGREGATE: &str = "/v1/datasets/items/aggregate?measure=value";

/// `rows` keys `{prefix}0…`, all in group `a`, value 1.
fn csv(prefix: &str, rows: usize) -> String {
    let mut doc = String::from("id,group,value\n");
    for i in 0..rows {
        doc.push_str(&format!("{prefix}{i},a,1\n"));
    }
    doc
}

/// The record count of the aggregate's one group at `base` (0 with no records).
async fn count(base: &str) -> u64 {
    let answer = get(base, AGGREGATE).await;
    match answer["groups"].as_array().map(Vec::as_slice) {
        Some([]) => 0,
        Some([group]) => group["count"].as_u64().unwrap(),
        _ => panic!("not one group: {answer}"),
    }
}

/// Waits until `holds` says yes, asking every 5 ms for `within` at most, and says how
/// long it took; fails with what it last answered.
async fn eventually<F, Fut>(within: Duration, mut holds: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let start = Instant::now();
    loop {
        match holds().await {
            Ok(()) => return start.elapsed(),
            Err(now) => assert!(start.elapsed() < within, "after {within:?}: {now}"),
        }
        actix_web::rt::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until the count at `base` is `expected`, at most `within`.
async fn count_becomes(base: &str, expected: u64, within: Duration) -> Duration {
    eventually(within, || async move {
        let now = count(base).await;
        if now == expected {
            Ok(())
        } else {
            Err(format!(
                "{base} still answers count {now}, expected {expected}"
            ))
        }
    })
    .await
}

/// A server that is killed if the test fails before it stops it.
struct Server(Option<Child>);

impl Server {
    fn start(dir: &std::path::Path, env: &[(&str, &str)]) -> (Self, String) {
        let (child, base) = serve(dir, env);
        (Self(Some(child)), base)
    }

    /// Stops it as an operator does; it must exit cleanly.
    fn stop(mut self) {
        let server = self.0.take().unwrap();
        sigterm(&server);
        assert!(server.wait_with_output().unwrap().status.success());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[actix_web::test]
async fn two_servers_sharing_postgres_answer_each_others_imports_and_contracts() {
    let store = Store::postgres("fresh");
    let dir = tempfile::tempdir().unwrap();
    let env = store.env(&[]);
    let (first, a) = Server::start(dir.path(), &env);
    wait_until_up(&client(), &a).await;
    let (second, b) = Server::start(dir.path(), &env);
    wait_until_up(&client(), &b).await;
    let contract: Value = serde_json::from_str(CONTRACT).unwrap();
    post(
        &a,
        "/v1/datasets",
        &json!({"name": "items", "contract": contract}),
    )
    .await;

    for round in 1..=5u64 {
        // B answers (and keeps what it read), then A commits an import.
        assert_eq!(count(&b).await, (round - 1) * 10);
        import_items(&a, csv(&format!("r{round}-"), 10)).await;
        assert_eq!(
            count(&a).await,
            round * 10,
            "A answers its own import at once"
        );
        count_becomes(&b, round * 10, Duration::from_secs(2)).await;
    }

    // A publishes a version with a new measure: B knows it.
    let measure = "/v1/datasets/items/aggregate?measure=double";
    let before = client().get(format!("{b}{measure}")).send().await.unwrap();
    assert_eq!(before.status(), 400, "double is not a measure yet");
    let contract: Value = serde_json::from_str(CONTRACT_2).unwrap();
    post(&a, "/v1/datasets/items/contracts", &contract).await;
    let url = format!("{b}{measure}");
    eventually(Duration::from_secs(2), || async {
        let status = client().get(&url).send().await.unwrap().status();
        if status == 200 {
            Ok(())
        } else {
            Err(format!("B still refuses the new measure ({status})"))
        }
    })
    .await;

    first.stop();
    second.stop();
    store.drop().await;
}

#[actix_web::test]
async fn a_server_answers_what_intake_import_committed_to_its_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let env = Store::Sqlite.env(&[]);
    let (server, base) = Server::start(dir.path(), &env);
    wait_until_up(&client(), &base).await;
    let contract: Value = serde_json::from_str(CONTRACT).unwrap();
    post(
        &base,
        "/v1/datasets",
        &json!({"name": "items", "contract": contract}),
    )
    .await;
    import_items(&base, csv("server-", 10)).await;
    assert_eq!(count(&base).await, 10);

    // Another process commits to the same file.
    let file = dir.path().join("more.csv");
    std::fs::write(&file, csv("cli-", 5)).unwrap();
    let out = intake(dir.path())
        .args(["import", "--dataset", "items"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let took = count_becomes(&base, 15, Duration::from_secs(2)).await;
    eprintln!("the server answered the other process's import after {took:?}");
    server.stop();
}
