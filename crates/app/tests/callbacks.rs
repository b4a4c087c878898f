//! The accounts workload (DESIGN §2.2) with real `intake serve` processes: the
//! fixture replayed by `intake replay` with real (scaled) delays prints the known answer
//! and fires exactly the callbacks its timing decides; timers survive a SIGKILL, the
//! overdue ones firing at once and counted late; two servers sharing one PostgreSQL
//! fire each of 10,000 timers once. On SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[path = "support/process.rs"]
mod process;
#[path = "support/receiver.rs"]
mod receiver;
#[path = "support/store.rs"]
mod store;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Child;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use process::{intake, serve, sigterm, wait_until_up};
use receiver::{Received, start_receiver};
use serde_json::{Value, json};
use store::{Store, client, example_contract, get, post};

/// The fixture `../shared/fixtures/account-updates.json`, byte for byte.
const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../examples/data/account-updates.json"
);

/// The environment of these servers, callback times multiplied by `scale`.
fn env<'a>(store: &'a Store, scale: &'a str) -> Vec<(&'a str, &'a str)> {
    store.env(&[
        ("INTAKE_CALLBACK_TIME_SCALE", scale),
        // A killed server's claimed deliveries come back in 9 s, not 35.
        ("INTAKE_DELIVERY_TIMEOUT_MS", "2000"),
    ])
}

/// Creates `accounts` and subscribes the receiver to its callbacks.
async fn accounts_watched(base: &str, url: &str, receiver: &receiver::Receiver) {
    let contract = example_contract("accounts.json");
    post(
        base,
        "/v1/datasets",
        &json!({"name": "accounts", "contract": contract}),
    )
    .await;
    let sub = post(
        base,
        "/v1/datasets/accounts/subscriptions",
        &json!({"url": url, "events": ["record.callback"]}),
    )
    .await;
    receiver.set_secret(sub["secret"].as_str().unwrap());
}

/// Every callback of `accounts` in `status`, all pages.
async fn callbacks(base: &str, status: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = get(
            base,
            &format!("/v1/datasets/accounts/callbacks?status={status}&limit=1000{cursor}"),
        )
        .await;
        all.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return all,
        }
    }
}

/// Waits until no callback is pending and the receiver has `events` of them.
async fn all_settled(base: &str, receiver: &receiver::Receiver, events: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let pending = get(
            base,
            "/v1/datasets/accounts/callbacks?status=pending&limit=1",
        )
        .await;
        if pending["items"].as_array().unwrap().is_empty() && receiver.got().len() >= events {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "callbacks still pending: {pending}; received {}",
            receiver.got().len()
        );
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A metric's value in `/metrics`.
async fn metric(base: &str, name: &str) -> f64 {
    let mut res = client()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap();
    let text = String::from_utf8(res.body().await.unwrap().to_vec()).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} is not in /metrics"))
}

/// The callback events the receiver got: (key, version) → the event's data. A
/// webhook may be sent again (a kill between sending and recording it), with the
/// same `webhook-id`; a timer fired twice would be two events: it fails. Every
/// signature verified.
fn fired_events(got: &[Received]) -> BTreeMap<(String, i64), Value> {
    let mut fired = BTreeMap::new();
    let mut ids = BTreeMap::new();
    for r in got {
        assert!(r.verified, "every signature verifies");
        let body: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(body["type"], "record.callback", "{body}");
        let data = body["data"].clone();
        let key = (
            data["key"].as_str().unwrap().to_owned(),
            data["version"].as_i64().unwrap(),
        );
        let id = ids.entry(key.clone()).or_insert_with(|| r.id().to_owned());
        assert_eq!(id, r.id(), "{key:?} fired twice");
        fired.insert(key, data);
    }
    fired
}

fn kill(mut child: Child) {
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

/// A timer of the replay, with when its version was accepted.
struct Timer {
    key: String,
    version: i64,
    accepted: DateTime<Utc>,
    due: DateTime<Utc>,
    fired: bool,
}

fn at(value: &Value) -> DateTime<Utc> {
    value.as_str().unwrap().parse().unwrap()
}

/// `intake replay` of the fixture with pauses of 0–100 ms and callback times scaled by
/// 1/20 (0–495 ms): prints the fixture's answer and summary, and each accepted version's
/// callback fired or was cancelled as the acceptance times decide: cancelled exactly
/// when a newer version of the account was accepted before it was due.
async fn the_fixture_replays_with_the_callbacks_its_timing_decides(store: Store) {
    const SCALE: f64 = 0.05;
    let dir = tempfile::tempdir().unwrap();
    let (url, receiver) = start_receiver();
    let env = env(&store, "0.05");
    let (server, base) = serve(dir.path(), &env);
    wait_until_up(&client(), &base).await;
    accounts_watched(&base, &url, &receiver).await;

    let file = FIXTURE;
    let mut replay = intake(dir.path());
    replay.args(["replay", file, "--dataset", "accounts", "--server", &base]);
    replay.args(["--delay", "0..100ms", "--seed", "7"]);
    let output = actix_web::rt::task::spawn_blocking(move || replay.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The fixture's answer (../shared/fixtures/README.md).
    for (subtype, id, tokens, version) in [
        ("account", "gkDF8QaR", 517, 39),
        ("auction", "kbtvQBEr", 271, 11),
        ("auctionData", "cYcekbx6", 960, 11),
        ("escrow", "A72KnHfa", 880, 12),
        ("masterEdition", "U5kG5d2y", 772, 12),
        ("metadata", "ZBTDeX9W", 696, 12),
        ("mint", "6BhkGCMV", 330, 39),
    ] {
        let line = stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(subtype))
            .unwrap_or_else(|| panic!("no {subtype} line in\n{stdout}"));
        let words: Vec<&str> = line.split_whitespace().collect();
        assert!(words[1].starts_with(id), "{line}");
        assert_eq!(
            (words[2], words[3]),
            (tokens.to_string().as_str(), version.to_string().as_str()),
            "{line}"
        );
    }
    assert!(
        stdout.contains("124 updates sent: 96 indexed, 23 ignored as old, 0 duplicates, 5 invalid"),
        "{stdout}"
    );

    // What the timing decides, from when each version was accepted (its timer's due
    // time less its scaled delay, on the server's clock).
    let updates: Vec<Value> = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
    let delay_of = |key: &str, version: i64| {
        let update = updates
            .iter()
            .find(|u| u["id"] == key && u["version"] == version)
            .unwrap();
        let ms = update["callbackTimeMs"].as_f64().unwrap() * SCALE;
        chrono::Duration::microseconds((ms * 1000.0) as i64)
    };
    let fired = callbacks(&base, "fired").await;
    let cancelled = callbacks(&base, "cancelled").await;
    assert!(callbacks(&base, "pending").await.is_empty());
    assert_eq!(
        fired.len() + cancelled.len(),
        96,
        "one timer per accepted version"
    );
    let timers: Vec<Timer> = fired
        .iter()
        .map(|c| (c, true))
        .chain(cancelled.iter().map(|c| (c, false)))
        .map(|(c, fired)| {
            let (key, version) = (c["key"].as_str().unwrap(), c["version"].as_i64().unwrap());
            let due = at(&c["due_at"]);
            Timer {
                key: key.to_owned(),
                version,
                accepted: due - delay_of(key, version),
                due,
                fired,
            }
        })
        .collect();
    let mut decided = 0;
    for t in &timers {
        let newer_accepted: Vec<DateTime<Utc>> = timers
            .iter()
            .filter(|n| n.key == t.key && n.version > t.version)
            .map(|n| n.accepted)
            .collect();
        // Too close to call: the newer import's commit and the fire race.
        let margin = chrono::Duration::milliseconds(50);
        if newer_accepted.iter().any(|a| (*a - t.due).abs() < margin) {
            continue;
        }
        decided += 1;
        let cancelled_by_timing = newer_accepted.iter().any(|a| *a < t.due);
        assert_eq!(
            t.fired, !cancelled_by_timing,
            "{} v{} due {}: newer versions accepted at {newer_accepted:?}",
            t.key, t.version, t.due
        );
    }
    assert!(decided >= 80, "only {decided} of 96 timers were clear-cut");
    assert!(
        !fired.is_empty() && !cancelled.is_empty(),
        "both outcomes happen"
    );

    // Every fired callback reached the receiver once, with the account as it was at
    // that version; nothing cancelled did.
    let listed: BTreeSet<(String, i64)> = fired
        .iter()
        .map(|c| {
            (
                c["key"].as_str().unwrap().to_owned(),
                c["version"].as_i64().unwrap(),
            )
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while fired_events(&receiver.got()).len() < listed.len() && Instant::now() < deadline {
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    let got = fired_events(&receiver.got());
    assert_eq!(got.keys().cloned().collect::<BTreeSet<_>>(), listed);
    for ((key, version), data) in &got {
        let update = updates
            .iter()
            .find(|u| u["id"] == key.as_str() && u["version"] == *version)
            .unwrap();
        assert_eq!(data["record"]["version"], *version, "{data}");
        assert_eq!(
            data["record"]["measures"]["tokens"].as_f64(),
            update["tokens"].as_f64(),
            "the record at that version: {data}"
        );
    }
    assert_eq!(
        metric(&base, "intake_callbacks_cancelled_total").await,
        cancelled.len() as f64
    );
    sigterm(&server);
    assert!(server.wait_with_output().unwrap().status.success());
    store.drop().await;
}

/// `count` accounts, each with its callback due `spread_ms * i / count` after it is
/// accepted.
fn accounts(count: usize, from_ms: u64, spread_ms: u64) -> Vec<u8> {
    let items: Vec<Value> = (0..count)
        .map(|i| {
            json!({"id": format!("acc-{i:05}"), "parentProgram": "prog",
                   "parentProgramSubType": "mint", "tokens": i, "data": {},
                   "callbackTimeMs": from_ms + spread_ms * i as u64 / count as u64,
                   "version": 1})
        })
        .collect();
    serde_json::to_vec(&items).unwrap()
}

async fn import(base: &str, body: Vec<u8>) {
    let mut res = client()
        .post(format!("{base}/v1/datasets/accounts/imports?wait=true"))
        .insert_header(("content-type", "application/json"))
        .send_body(body)
        .await
        .unwrap();
    let import: Value = res.json().await.unwrap();
    assert_eq!(import["status"], "completed", "{import}");
}

/// 1,000 timers due over 3 s; the server is killed halfway through firing them and
/// restarted once all are overdue: every one fires once, and those the second server
/// fires are counted late.
async fn timers_survive_a_sigkill(store: Store) {
    let dir = tempfile::tempdir().unwrap();
    let (url, receiver) = start_receiver();
    let env = env(&store, "1");
    let (first, base) = serve(dir.path(), &env);
    wait_until_up(&client(), &base).await;
    accounts_watched(&base, &url, &receiver).await;
    import(&base, accounts(1_000, 0, 3_000)).await;
    actix_web::rt::time::sleep(Duration::from_millis(1_500)).await;
    kill(first);
    // Every timer is overdue by the time the second server starts.
    actix_web::rt::time::sleep(Duration::from_secs(2)).await;
    let restarted = Utc::now();
    let (second, base) = serve(dir.path(), &env);
    wait_until_up(&client(), &base).await;
    all_settled(&base, &receiver, 1_000).await;

    let fired = callbacks(&base, "fired").await;
    assert_eq!(fired.len(), 1_000);
    let got = fired_events(&receiver.got());
    assert_eq!(got.len(), 1_000, "every timer fired once");
    let after_restart: Vec<&Value> = fired
        .iter()
        .filter(|c| at(&c["settled_at"]) >= restarted)
        .collect();
    assert!(
        !after_restart.is_empty() && after_restart.len() < 1_000,
        "the kill came halfway: {} fired after the restart",
        after_restart.len()
    );
    assert!(
        after_restart
            .iter()
            .all(|c| c["lateness_ms"].as_i64().unwrap() > 100)
    );
    assert_eq!(
        metric(&base, "intake_callbacks_late_total").await,
        after_restart.len() as f64,
        "the overdue ones are counted late"
    );
    sigterm(&second);
    assert!(second.wait_with_output().unwrap().status.success());
    store.drop().await;
}

#[actix_web::test]
async fn the_fixture_replays_with_the_callbacks_its_timing_decides_on_sqlite() {
    the_fixture_replays_with_the_callbacks_its_timing_decides(Store::Sqlite).await;
}

#[actix_web::test]
async fn the_fixture_replays_with_the_callbacks_its_timing_decides_on_postgres() {
    the_fixture_replays_with_the_callbacks_its_timing_decides(Store::postgres("callback")).await;
}

#[actix_web::test]
async fn timers_survive_a_sigkill_on_sqlite() {
    timers_survive_a_sigkill(Store::Sqlite).await;
}

#[actix_web::test]
async fn timers_survive_a_sigkill_on_postgres() {
    timers_survive_a_sigkill(Store::postgres("callback")).await;
}

#[actix_web::test]
async fn two_servers_sharing_postgres_fire_each_of_10k_timers_once() {
    let store = Store::postgres("callback");
    let dir = tempfile::tempdir().unwrap();
    let (url, receiver) = start_receiver();
    let env = env(&store, "1");
    let (first, base) = serve(dir.path(), &env);
    wait_until_up(&client(), &base).await;
    let (second, other) = serve(dir.path(), &env);
    wait_until_up(&client(), &other).await;
    accounts_watched(&base, &url, &receiver).await;
    import(&other, accounts(10_000, 1_000, 3_000)).await;
    all_settled(&base, &receiver, 10_000).await;
    let got = fired_events(&receiver.got());
    assert_eq!(got.len(), 10_000, "each timer fired once");
    assert_eq!(callbacks(&other, "fired").await.len(), 10_000);
    for server in [first, second] {
        sigterm(&server);
        assert!(server.wait_with_output().unwrap().status.success());
    }
    store.drop().await;
}
