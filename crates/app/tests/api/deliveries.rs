//! Deliveries end to end: a subscription receives every customer as a signed webhook
//! from the real server, at a receiver on 127.0.0.1 that verifies signatures and fails
//! a share of first attempts; retries keep `webhook-id`; the counts say so. The
//! captured webhooks are also verified by the official `standardwebhooks` package from
//! PyPI (code we did not write) when it is installed, which CI requires.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::receiver::{Receiver, start_receiver, verify_independently};
use super::support::{Db, TestApp, example, spawn_app_with};

async fn subscribe(app: &TestApp, url: &str, events: Value) -> Value {
    let created = app
        .post_json(
            "/v1/datasets/customers/subscriptions",
            &json!({"url": url, "events": events}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    created.body
}

/// The customers dataset with `url` subscribed to `record.created`, the receiver told
/// its secret; gives the subscription and its path.
async fn customers_subscribed(app: &TestApp, url: &str, receiver: &Receiver) -> (Value, String) {
    assert_eq!(
        app.create_example("customers", "customers.json")
            .await
            .status,
        201
    );
    let subscription = subscribe(app, url, json!(["record.created"])).await;
    receiver.set_secret(subscription["secret"].as_str().unwrap());
    let id = subscription["id"].as_str().unwrap();
    let path = format!("/v1/datasets/customers/subscriptions/{id}");
    (subscription, path)
}

/// The customers workload: every customer reaches the receiver, signed, once per
/// `webhook-id` for a receiver that deduplicates, retried with the same id.
pub async fn every_customer_reaches_the_receiver_signed_and_retried(db: Db) {
    let app = spawn_app_with(db, |s| {
        s.outbound_allow_private = true;
        s.delivery_retry_schedule = "0s,20ms,50ms,100ms,200ms".into();
    })
    .await;
    let (url, receiver) = start_receiver();
    receiver
        .flaky_first
        .store(true, std::sync::atomic::Ordering::SeqCst);
    super::run(&app, async {
        assert_eq!(
            app.create_example("customers", "customers.json")
                .await
                .status,
            201
        );
        let subscription = subscribe(&app, &url, json!(["record.created"])).await;
        let secret = subscription["secret"].as_str().unwrap().to_owned();
        assert!(secret.starts_with("whsec_"), "{subscription}");
        receiver.set_secret(&secret);

        let mut csv = example("data", "customers.csv");
        for i in 0..300 {
            csv.extend(format!("gen-{i:04},Gen,Erated,gen{i}@example.com,\n").as_bytes());
        }
        let imported = app.import("customers", "text/csv", csv).await;
        assert_eq!(imported.body["status"], "completed", "{}", imported.body);
        let expected =
            usize::try_from(imported.body["report"]["inserted"].as_u64().unwrap()).unwrap();
        assert!(expected >= 300, "{}", imported.body);

        let id = subscription["id"].as_str().unwrap();
        let path = format!("/v1/datasets/customers/subscriptions/{id}");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let read = app.get(&path).await;
            let deliveries = &read.body["deliveries"];
            if deliveries["delivered"] == expected && deliveries["pending"] == 0 {
                assert_eq!(deliveries["dead"], 0);
                assert_eq!(deliveries["last_failure_status"], 503);
                assert!(
                    read.body.get("secret").is_none(),
                    "the secret is shown once"
                );
                break;
            }
            assert!(
                Instant::now() < deadline,
                "not all delivered: {}",
                read.body
            );
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }

        let got = receiver.got();
        assert!(got.iter().all(|r| r.verified), "every signature verifies");
        let mut keys = BTreeSet::new();
        let mut attempts = BTreeMap::<String, usize>::new();
        for r in &got {
            let body: Value = serde_json::from_str(&r.body).unwrap();
            assert_eq!(body["type"], "record.created");
            assert!(body["data"]["sequence"].is_i64(), "{body}");
            *attempts.entry(r.headers["webhook-id"].clone()).or_default() += 1;
            // A receiver deduplicating on webhook-id keeps one per customer.
            if attempts[&r.headers["webhook-id"]] == 1 {
                assert!(keys.insert(body["data"]["key"].as_str().unwrap().to_owned()));
            }
        }
        assert_eq!(keys.len(), expected, "each customer once per webhook-id");
        let retried = attempts.values().filter(|n| **n > 1).count();
        assert!(
            retried > 0,
            "some first attempts failed and were retried with their id"
        );
        assert_eq!(
            got.len(),
            expected + retried,
            "nothing sent twice after a 2xx"
        );
        verify_independently(&got, &secret);
    })
    .await;
    app.stop().await;
}

/// What the subscriptions API refuses, and who may do what.
pub async fn subscriptions_are_guarded_and_checked(db: Db) {
    let admin = "admin-token";
    let reader = "read-token";
    let tokens = format!(
        "ops:{}:admin;dash:{}:read",
        super::security::sha256_hex(admin),
        super::security::sha256_hex(reader)
    );
    let app = spawn_app_with(db, |s| {
        s.auth_tokens = intake_app::settings::AuthTokens::Text(tokens)
    })
    .await;
    super::run(&app, async {
        let auth = |token: &str| ("authorization", format!("Bearer {token}"));
        let contract: Value =
            serde_json::from_slice(&example("contracts", "customers.json")).unwrap();
        let made = app
            .client
            .post(app.url("/v1/datasets"))
            .insert_header(auth(admin))
            .send_json(&json!({"name": "customers", "contract": contract}))
            .await
            .unwrap();
        assert_eq!(made.status(), 201);
        let post = |token: &'static str, body: Value| {
            let req = app
                .client
                .post(app.url("/v1/datasets/customers/subscriptions"))
                .insert_header(auth(token));
            async move { TestApp::answer(req.send_json(&body).await.unwrap()).await }
        };
        // A public address (no name: this machine resolves none).
        let url = "https://93.184.216.34/hook";
        post(reader, json!({"url": url}))
            .await
            .problem(403, "forbidden");
        // Private addresses are refused (the default), naming the field.
        let refused = post(admin, json!({"url": "http://127.0.0.1:9/hook"})).await;
        assert_eq!(
            refused.problem(400, "bad_request")["errors"][0]["field"],
            "url"
        );
        let refused = post(admin, json!({"url": "ftp://example.com/x"})).await;
        assert_eq!(
            refused.problem(400, "bad_request")["errors"][0]["field"],
            "url"
        );
        let unknown = post(
            admin,
            json!({"url": url, "events": ["record.created", "record.eaten"]}),
        )
        .await;
        let unknown = unknown.problem(400, "bad_request");
        assert_eq!(unknown["errors"][0]["field"], "events[1]");
        assert!(
            unknown["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("record.updated")
        );
        let bad_secret = post(admin, json!({"url": url, "secret": "hunter2"})).await;
        assert_eq!(
            bad_secret.problem(400, "bad_request")["errors"][0]["field"],
            "secret"
        );
        post(admin, json!({"url": url, "colour": "red"}))
            .await
            .problem(400, "bad_request");

        let chosen = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let created = post(admin, json!({"url": url, "secret": chosen})).await;
        assert_eq!(created.status, 201, "{}", created.body);
        assert_eq!(created.body["secret"], chosen);
        assert_eq!(created.body["status"], "active");
        assert_eq!(
            created.body["events"].as_array().unwrap().len(),
            6,
            "every kind"
        );
        let id = created.body["id"].as_str().unwrap();
        let location = created.header("location").unwrap().to_owned();
        assert_eq!(
            location,
            format!("/v1/datasets/customers/subscriptions/{id}")
        );

        let read = app
            .get_with(&location, ("authorization", &format!("Bearer {reader}")))
            .await;
        assert_eq!(read.status, 200);
        assert!(read.body.get("secret").is_none(), "{}", read.body);
        assert_eq!(read.body["deliveries"]["pending"], 0);
        let listed = app
            .get_with(
                "/v1/datasets/customers/subscriptions",
                ("authorization", &format!("Bearer {reader}")),
            )
            .await;
        assert_eq!(listed.body["subscriptions"].as_array().unwrap().len(), 1);
        assert!(
            !listed.bytes.windows(6).any(|w| w == b"whsec_"),
            "no secret in listings"
        );

        let delete = |token: &'static str, path: String| {
            let req = app.client.delete(app.url(&path)).insert_header(auth(token));
            async move { TestApp::answer(req.send().await.unwrap()).await }
        };
        delete(reader, location.clone())
            .await
            .problem(403, "forbidden");
        assert_eq!(delete(admin, location.clone()).await.status, 204);
        delete(admin, location.clone())
            .await
            .problem(404, "not_found");
        let other = "/v1/datasets/missing/subscriptions";
        let missing = app
            .client
            .post(app.url(other))
            .insert_header(auth(admin))
            .send_json(&json!({"url": url}))
            .await
            .unwrap();
        TestApp::answer(missing).await.problem(404, "not_found");
    })
    .await;
    app.stop().await;
}

/// Waits until the subscription's counts satisfy `done`; gives them.
async fn counts_until(app: &TestApp, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let read = app.get(path).await;
        if done(&read.body["deliveries"]) {
            return read.body["deliveries"].clone();
        }
        assert!(Instant::now() < deadline, "never got there: {}", read.body);
        actix_web::rt::time::sleep(Duration::from_millis(30)).await;
    }
}

/// An operator's day: a receiver's outage leaves dead deliveries, listed and replayed
/// once it is back; a paused subscription's deliveries wait and go on resume; a
/// rotated secret signs what follows.
pub async fn dead_deliveries_are_replayed_and_paused_ones_wait(db: Db) {
    use std::sync::atomic::Ordering;
    let app = spawn_app_with(db, |s| {
        s.outbound_allow_private = true;
        s.delivery_retry_schedule = "0s,10ms".into();
    })
    .await;
    let (url, receiver) = start_receiver();
    receiver.flaky_first.store(true, Ordering::SeqCst);
    super::run(&app, async {
        let (subscription, path) = customers_subscribed(&app, &url, &receiver).await;

        receiver.down.store(true, Ordering::SeqCst);
        let csv =
            "id,first_name,last_name,email\nd-1,Dee,Ad,d1@example.com\nd-2,Dee,Ad,d2@example.com\n";
        let imported = app
            .import("customers", "text/csv", csv.as_bytes().to_vec())
            .await;
        assert_eq!(imported.body["status"], "completed", "{}", imported.body);
        let counts = counts_until(&app, &path, |c| c["dead"] == 2).await;
        assert_eq!(
            (
                counts["pending"].as_u64(),
                counts["last_failure_status"].as_u64()
            ),
            (Some(0), Some(500))
        );
        let dead = app
            .get(&format!("{path}/deliveries?status=dead&limit=1"))
            .await;
        assert_eq!(dead.status, 200, "{}", dead.body);
        assert_eq!(dead.body["items"][0]["attempts"], 2);
        assert_eq!(dead.body["items"][0]["last_status_code"], 500);
        let cursor = dead.body["next_cursor"].as_str().unwrap().to_owned();
        let rest = app
            .get(&format!("{path}/deliveries?status=dead&cursor={cursor}"))
            .await;
        assert_eq!(rest.body["items"].as_array().unwrap().len(), 1);
        assert!(rest.body["next_cursor"].is_null());
        let bad = app.get(&format!("{path}/deliveries?status=lost")).await;
        assert_eq!(
            bad.problem(400, "bad_request")["errors"][0]["field"],
            "status"
        );

        receiver.down.store(false, Ordering::SeqCst);
        let one = dead.body["items"][0]["event_id"].as_str().unwrap();
        let replayed = app
            .post_json(&format!("{path}/deliveries/{one}/replay"), &json!({}))
            .await;
        assert_eq!(
            (replayed.status.as_u16(), &replayed.body["replayed"]),
            (202, &json!(1))
        );
        counts_until(&app, &path, |c| c["delivered"] == 1).await;
        let replayed = app
            .post_json(&format!("{path}/replay"), &json!({"status": "dead"}))
            .await;
        assert_eq!(replayed.body["replayed"], 1, "{}", replayed.body);
        counts_until(&app, &path, |c| c["delivered"] == 2 && c["dead"] == 0).await;
        let neither = app.post_json(&format!("{path}/replay"), &json!({})).await;
        neither.problem(400, "bad_request");

        // Paused: deliveries wait, and go once resumed.
        let paused = app.patch_json(&path, &json!({"paused": true})).await;
        assert_eq!(paused.body["status"], "paused", "{}", paused.body);
        let csv = "id,first_name,last_name,email\np-1,Pat,Sed,p1@example.com\n";
        app.import("customers", "text/csv", csv.as_bytes().to_vec())
            .await;
        actix_web::rt::time::sleep(Duration::from_millis(300)).await;
        let waiting = app.get(&path).await;
        assert_eq!(waiting.body["deliveries"]["pending"], 1, "{}", waiting.body);
        let before = receiver.got().len();

        // A new secret signs what is sent from now on.
        let rotated = app
            .post_json(&format!("{path}/rotate-secret"), &json!({}))
            .await;
        let secret = rotated.body["secret"].as_str().unwrap().to_owned();
        assert_ne!(secret, subscription["secret"].as_str().unwrap());
        receiver.set_secret(&secret);
        let resumed = app.patch_json(&path, &json!({"paused": false})).await;
        assert_eq!(resumed.body["status"], "active");
        assert!(resumed.body.get("secret").is_none());
        counts_until(&app, &path, |c| c["delivered"] == 3 && c["pending"] == 0).await;
        let got = receiver.got();
        // The paused one arrived after the resume only (twice if its first attempt was
        // one the receiver failed), signed with the rotated secret.
        let after = &got[before..];
        assert!(!after.is_empty() && after.len() <= 2, "{after:?}");
        assert!(
            after.iter().all(|r| r.verified && r.body.contains("p-1")),
            "{after:?}"
        );
        assert!(
            !got[..before].iter().any(|r| r.body.contains("p-1")),
            "nothing sent while paused"
        );
        let unknown = app
            .patch_json(&format!("{path}x"), &json!({"paused": true}))
            .await;
        unknown.problem(404, "not_found");
    })
    .await;
    app.stop().await;
}

/// Housekeeping through the real server: a subscription whose every attempt fails for
/// `delivery_disable_after` is disabled (and nothing more is sent to it); resumed and
/// replayed, its events are delivered, then pruned after `delivery_retention`.
pub async fn failing_subscriptions_are_disabled_and_delivered_events_pruned(db: Db) {
    use std::sync::atomic::Ordering;
    let app = spawn_app_with(db, |s| {
        s.outbound_allow_private = true;
        s.delivery_retry_schedule = "0s,10ms".into();
        s.delivery_disable_after = "400ms".into();
        s.delivery_retention = "2s".into();
    })
    .await;
    let (url, receiver) = start_receiver();
    super::run(&app, async {
        let (_, path) = customers_subscribed(&app, &url, &receiver).await;

        receiver.down.store(true, Ordering::SeqCst);
        let csv = "id,first_name,last_name,email
f-1,Fay,Ling,f1@example.com
";
        app.import("customers", "text/csv", csv.as_bytes().to_vec())
            .await;
        counts_until(&app, &path, |c| c["dead"] == 1).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let read = app.get(&path).await;
            if read.body["status"] == "disabled" {
                break;
            }
            assert!(Instant::now() < deadline, "never disabled: {}", read.body);
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
        // Disabled: a new event waits, whatever the receiver does.
        receiver.down.store(false, Ordering::SeqCst);
        let before = receiver.got().len();
        let csv = "id,first_name,last_name,email
f-2,Fay,Ling,f2@example.com
";
        app.import("customers", "text/csv", csv.as_bytes().to_vec())
            .await;
        actix_web::rt::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(receiver.got().len(), before, "nothing sent while disabled");

        let resumed = app.patch_json(&path, &json!({"paused": false})).await;
        assert_eq!(resumed.body["status"], "active", "{}", resumed.body);
        let replayed = app
            .post_json(&format!("{path}/replay"), &json!({"status": "dead"}))
            .await;
        assert_eq!(replayed.body["replayed"], 1, "{}", replayed.body);
        counts_until(&app, &path, |c| c["delivered"] == 2 && c["pending"] == 0).await;
        // Two seconds after they were written, delivered events are pruned.
        counts_until(&app, &path, |c| c["delivered"] == 0 && c["dead"] == 0).await;
        let listed = app.get(&format!("{path}/deliveries")).await;
        assert_eq!(listed.body["items"], json!([]), "{}", listed.body);
        // Longer than `delivery_disable_after` since it was resumed and delivered to:
        // it is not failing, so still active.
        let read = app.get(&path).await;
        assert_eq!(read.body["status"], "active", "{}", read.body);
    })
    .await;
    app.stop().await;
}
