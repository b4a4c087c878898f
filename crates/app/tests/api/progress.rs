//! An import's progress while it is processed (issue 20).

use serde_json::{Value, json};

use super::support::{Db, TestApp, spawn_app_with};

/// While an import is processed, its answer says how many records were seen, how
/// many bytes of its size were read, and a rate; the finished import has a report and
/// no progress.
pub async fn an_import_shows_its_progress_while_it_is_processed(db: Db) {
    let app = spawn_app_with(db, |s| s.max_document_bytes = 16 << 20).await;
    super::run(&app, shows_progress(&app)).await;
    app.stop().await;
}

async fn shows_progress(app: &TestApp) {
    let contract = json!({"format": "csv",
        "fields": {"id": {"type": "string", "required": true},
                   "group": {"type": "string", "required": true},
                   "value": {"type": "number", "required": true}},
        "key": ["id"], "dimensions": ["group"], "measures": {"value": "value"},
        "merge": "last_wins", "on_invalid": "skip_record"});
    let created = app
        .post_json(
            "/v1/datasets",
            &json!({"name": "big", "contract": contract}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let mut doc = String::from("id,group,value\n");
    for i in 0..200_000 {
        doc.push_str(&format!("k{i:07},g{},{i}\n", i % 7));
    }
    let size = doc.len() as u64;
    let accepted = app
        .post_bytes(
            "/v1/datasets/big/imports",
            Some("text/csv"),
            doc.into_bytes(),
        )
        .await;
    assert_eq!(accepted.status, 202, "{}", accepted.body);
    assert!(
        accepted.body.get("progress").is_none(),
        "not yet processing"
    );
    let path = format!(
        "/v1/datasets/big/imports/{}",
        accepted.body["id"].as_str().unwrap()
    );
    let mut seen: Vec<Value> = Vec::new();
    let finished = loop {
        let now = app.get(&path).await;
        assert_eq!(now.status, 200, "{}", now.body);
        if now.body["status"] == "completed" {
            break now.body;
        }
        if let Some(progress) = now.body.get("progress") {
            assert_eq!(now.body["status"], "processing");
            seen.push(progress.clone());
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert!(finished.get("progress").is_none(), "{finished}");
    assert_eq!(finished["report"]["seen"], 200_000);
    assert!(!seen.is_empty(), "no progress was shown while processing");
    for pair in seen.windows(2) {
        assert!(pair[0]["records_seen"].as_u64() <= pair[1]["records_seen"].as_u64());
        assert!(pair[0]["bytes_read"].as_u64() <= pair[1]["bytes_read"].as_u64());
    }
    assert!(
        seen.iter()
            .any(|p| p["records_seen"].as_u64().unwrap() > 0
                && p["bytes_read"].as_u64().unwrap() > 0),
        "{seen:?}"
    );
    let last = seen.last().unwrap();
    assert_eq!(last["bytes_total"], size);
    assert!(last["bytes_read"].as_u64().unwrap() <= size);
    assert!(last["records_seen"].as_u64().unwrap() <= 200_000);
    assert!(last["records_per_second"].as_f64().unwrap() >= 0.0);
    let listed = app.get("/v1/datasets/big/imports").await;
    assert!(listed.body["imports"][0].get("progress").is_none());
}
