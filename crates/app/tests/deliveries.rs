//! The customers workload (DESIGN §2.3) with real `intake serve` processes: every new
//! customer reaches a receiver that fails 30 % of requests and is down for a stretch,
//! across a SIGKILL of the server in the middle of delivering, on SQLite and on
//! PostgreSQL; and two servers sharing one PostgreSQL never send an event twice.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[path = "support/process.rs"]
mod process;
#[path = "support/receiver.rs"]
mod receiver;
#[path = "support/store.rs"]
mod store;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Child;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use process::{serve, sigterm, wait_until_up};
use receiver::{Received, start_receiver, verify_independently};
use serde_json::{Value, json};
use store::{Store, client, example_contract, get, post};

/// Enough attempts, quickly, that an outage of a few seconds kills nothing.
const SCHEDULE: &str = "0s,20ms,50ms,100ms,200ms,300ms,500ms,500ms,1s,1s,1s,1s,1s,1s,1s,1s,\
    1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s";

/// The environment of these servers.
fn env(store: &Store) -> Vec<(&str, &str)> {
    store.env(&[
        ("INTAKE_DELIVERY_RETRY_SCHEDULE", SCHEDULE),
        ("INTAKE_DELIVERY_TIMEOUT_MS", "2000"),
    ])
}

/// Creates `customers`, subscribes the receiver and gives the subscription's path.
async fn subscribed(base: &str, url: &str, receiver: &receiver::Receiver) -> (String, String) {
    let contract = example_contract("customers.json");
    post(
        base,
        "/v1/datasets",
        &json!({"name": "customers", "contract": contract}),
    )
    .await;
    let sub = post(
        base,
        "/v1/datasets/customers/subscriptions",
        &json!({"url": url, "events": ["record.created"]}),
    )
    .await;
    let secret = sub["secret"].as_str().unwrap().to_owned();
    receiver.set_secret(&secret);
    let path = format!(
        "/v1/datasets/customers/subscriptions/{}",
        sub["id"].as_str().unwrap()
    );
    (path, secret)
}

/// Imports the example customers and `generated` more; gives how many were inserted.
async fn import_customers(base: &str, generated: usize) -> u64 {
    let mut inserted = 0;
    let mut generated_csv = String::from("id,first_name,last_name,email,phone\n");
    for i in 0..generated {
        generated_csv.push_str(&format!("g-{i:05},Gen,Erated,g{i}@example.com,\n"));
    }
    let example = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/data/customers.csv"
    ))
    .unwrap();
    for body in [example, generated_csv.into_bytes()] {
        let mut res = client()
            .post(format!("{base}/v1/datasets/customers/imports?wait=true"))
            .insert_header(("content-type", "text/csv"))
            .send_body(body)
            .await
            .unwrap();
        let report: Value = res.json().await.unwrap();
        assert_eq!(report["status"], "completed", "{report}");
        inserted += report["report"]["inserted"].as_u64().unwrap();
    }
    inserted
}

/// Waits until every delivery of the subscription is delivered; gives the counts.
async fn all_delivered(base: &str, path: &str, expected: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let read = get(base, path).await;
        let counts = &read["deliveries"];
        if counts["delivered"] == expected && counts["pending"] == 0 {
            return counts.clone();
        }
        assert!(Instant::now() < deadline, "not all delivered: {read}");
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Each webhook id stands for one customer, every customer came, every signature held.
fn assert_each_customer_once_per_id(got: &[Received], expected: u64) {
    assert!(got.iter().all(|r| r.verified), "every signature verifies");
    let mut keys_by_id = BTreeMap::<&str, String>::new();
    for r in got {
        let body: Value = serde_json::from_str(&r.body).unwrap();
        let key = body["data"]["key"].as_str().unwrap().to_owned();
        let earlier = keys_by_id.insert(r.id(), key.clone());
        assert!(
            earlier.is_none_or(|k| k == key),
            "webhook-id {} changed its event",
            r.id()
        );
    }
    let keys: BTreeSet<&String> = keys_by_id.values().collect();
    assert_eq!(
        keys_by_id.len() as u64,
        expected,
        "one webhook-id per customer"
    );
    assert_eq!(
        keys.len() as u64,
        expected,
        "every customer, once after deduplication"
    );
}

fn kill(mut child: Child) {
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

async fn survives_a_sigkill_and_an_outage(store: Store) {
    let dir = tempfile::tempdir().unwrap();
    let (url, receiver) = start_receiver();
    receiver.fail_percent.store(30, Ordering::SeqCst);
    let env = env(&store);
    let (first, base) = serve(dir.path(), &env);
    wait_until_up(&client(), &base).await;
    let (path, secret) = subscribed(&base, &url, &receiver).await;
    let expected = import_customers(&base, 10_000).await;

    // Mid-delivery: the receiver goes down and the server is killed.
    let deadline = Instant::now() + Duration::from_secs(120);
    while receiver.got().len() < 1_500 {
        assert!(Instant::now() < deadline, "deliveries never started");
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    receiver.down.store(true, Ordering::SeqCst);
    kill(first);
    let (second, base) = serve(dir.path(), &env);
    wait_until_up(&client(), &base).await;
    actix_web::rt::time::sleep(Duration::from_secs(2)).await;
    receiver.down.store(false, Ordering::SeqCst);

    let counts = all_delivered(&base, &path, expected).await;
    assert_eq!(counts["dead"], 0, "{counts}");
    let got = receiver.got();
    assert!(got.len() as u64 > expected, "failures were retried");
    assert_each_customer_once_per_id(&got, expected);
    verify_independently(&got, &secret);
    sigterm(&second);
    assert!(second.wait_with_output().unwrap().status.success());
    store.drop().await;
}

#[actix_web::test]
async fn customers_reach_the_receiver_across_a_sigkill_and_an_outage_on_sqlite() {
    survives_a_sigkill_and_an_outage(Store::Sqlite).await;
}

#[actix_web::test]
async fn customers_reach_the_receiver_across_a_sigkill_and_an_outage_on_postgres() {
    survives_a_sigkill_and_an_outage(Store::postgres("deliver")).await;
}

#[actix_web::test]
async fn two_servers_sharing_postgres_send_each_event_once() {
    let store = Store::postgres("deliver");
    let dir = tempfile::tempdir().unwrap();
    let (url, receiver) = start_receiver();
    let env = env(&store);
    let (first, base) = serve(dir.path(), &env);
    wait_until_up(&client(), &base).await;
    // The second migrates nothing new and shares the queue.
    let (second, other) = serve(dir.path(), &env);
    wait_until_up(&client(), &other).await;
    let (path, _) = subscribed(&base, &url, &receiver).await;
    let expected = import_customers(&other, 5_000).await;
    all_delivered(&base, &path, expected).await;
    let got = receiver.got();
    assert_eq!(
        got.len() as u64,
        expected,
        "nothing failed, so nothing was sent twice"
    );
    assert_each_customer_once_per_id(&got, expected);
    for server in [first, second] {
        sigterm(&server);
        assert!(server.wait_with_output().unwrap().status.success());
    }
    store.drop().await;
}
