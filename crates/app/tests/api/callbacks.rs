//! Callback timers end to end: `callbackTimeMs` after a version of an account is
//! accepted, the real server's callback worker fires it, and a subscription receives
//! the `record.callback` event with the account as it was at that version; a newer
//! version that arrives first cancels the pending one.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::receiver::start_receiver;
use super::support::{Db, spawn_app_with};

fn update(id: &str, version: u32, tokens: u32, after_ms: u32) -> Value {
    json!({"id": id, "parentProgram": "prog", "parentProgramSubType": "mint",
           "tokens": tokens, "callbackTimeMs": after_ms, "data": {}, "version": version})
}

/// A due timer fires once with the record at its version; a cancelled one never does.
pub async fn callbacks_fire_with_the_record_at_their_version_unless_cancelled(db: Db) {
    let app = spawn_app_with(db, |s| s.outbound_allow_private = true).await;
    let (url, receiver) = start_receiver();
    super::run(&app, async {
        assert_eq!(
            app.create_example("accounts", "accounts.json").await.status,
            201
        );
        let created = app
            .post_json(
                "/v1/datasets/accounts/subscriptions",
                &json!({"url": url, "events": ["record.callback"]}),
            )
            .await;
        assert_eq!(created.status, 201, "{}", created.body);
        receiver.set_secret(created.body["secret"].as_str().unwrap());

        let first = json!([update("acc-1", 1, 10, 300), update("acc-2", 1, 20, 1500)]);
        let imported = app
            .import(
                "accounts",
                "application/json",
                first.to_string().into_bytes(),
            )
            .await;
        assert_eq!(imported.body["status"], "completed", "{}", imported.body);
        let accepted = Instant::now();
        // acc-2's newer version arrives before its callback is due: it cancels it.
        let second = json!([update("acc-2", 2, 25, 400)]);
        let imported = app
            .import(
                "accounts",
                "application/json",
                second.to_string().into_bytes(),
            )
            .await;
        assert_eq!(imported.body["status"], "completed", "{}", imported.body);

        let deadline = Instant::now() + Duration::from_secs(30);
        while receiver.got().len() < 2 {
            assert!(
                Instant::now() < deadline,
                "callbacks never fired: {:?}",
                receiver.got()
            );
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            accepted.elapsed() >= Duration::from_millis(300),
            "a callback fired before it was due"
        );
        // Long enough for the cancelled one to have fired, had it not been cancelled.
        actix_web::rt::time::sleep(Duration::from_millis(1800)).await;
        let got = receiver.got();
        let mut fired: Vec<(String, u64, u64)> = got
            .iter()
            .map(|r| {
                assert!(r.verified, "signed");
                let body: Value = serde_json::from_str(&r.body).unwrap();
                assert_eq!(body["type"], "record.callback", "{body}");
                let data = &body["data"];
                let tokens = data["record"]["measures"]["tokens"].as_f64().unwrap();
                (
                    data["key"].as_str().unwrap().to_owned(),
                    data["version"].as_u64().unwrap(),
                    tokens as u64,
                )
            })
            .collect();
        fired.sort();
        assert_eq!(
            fired,
            [("acc-1".to_owned(), 1, 10), ("acc-2".to_owned(), 2, 25)],
            "acc-1 at version 1; acc-2 only at version 2: {got:?}"
        );

        // The same outcome, listed without a receiver, newest first.
        let listed = app.get("/v1/datasets/accounts/callbacks").await;
        assert_eq!(listed.status, 200, "{}", listed.body);
        let mut outcome: Vec<(&str, u64, &str)> = listed.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["key"].as_str().unwrap(),
                    c["version"].as_u64().unwrap(),
                    c["status"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            outcome.first(),
            Some(&("acc-2", 2, "fired")),
            "newest first"
        );
        outcome.sort_unstable();
        assert_eq!(
            outcome,
            [
                ("acc-1", 1, "fired"),
                ("acc-2", 1, "cancelled"),
                ("acc-2", 2, "fired")
            ]
        );
        let cancelled = app
            .get("/v1/datasets/accounts/callbacks?status=cancelled")
            .await;
        let items = cancelled.body["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{}", cancelled.body);
        assert_eq!(items[0]["replaced_by"], 2);
        let page = app.get("/v1/datasets/accounts/callbacks?limit=2").await;
        let next = page.body["next_cursor"].as_str().unwrap().to_owned();
        let rest = app
            .get(&format!("/v1/datasets/accounts/callbacks?cursor={next}"))
            .await;
        assert_eq!(rest.body["items"].as_array().unwrap().len(), 1);
        assert_eq!(rest.body["next_cursor"], Value::Null);
        assert_eq!(app.get("/v1/datasets/nothing/callbacks").await.status, 404);
        let bad = app.get("/v1/datasets/accounts/callbacks?status=late").await;
        assert_eq!(bad.status, 400);
        assert_eq!(bad.body["errors"][0]["field"], "status", "{}", bad.body);
    })
    .await;
    app.stop().await;
}
