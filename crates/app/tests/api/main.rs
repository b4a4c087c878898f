//! End to end over HTTP: the real server (`spawn_app`) on SQLite and on PostgreSQL,
//! every `/v1` route and the operational endpoints driven with a real client,
//! including bad input. Each case runs once per database.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod analytics;
mod callbacks;
mod deadlines;
mod deliveries;
mod golden;
mod limits;
mod negotiation;
mod progress;
#[path = "../support/receiver.rs"]
mod receiver;
mod robustness;
mod security;
mod support;
mod v2;

use analytics::{
    a_records_history_is_paged_with_limit_and_cursor,
    aggregate_and_top_answer_and_refuse_bad_questions,
    an_import_changes_the_next_aggregate_at_once,
    answers_carry_an_etag_and_a_matching_if_none_match_is_304,
    markr_documents_give_the_aggregates_the_documents_imply,
    records_and_aggregates_export_as_csv_and_ndjson,
};

use golden::v1_golden_exchanges_replay;
use intake_codecs::Codecs;
use intake_domain::Contract;
use intake_domain::merge::{MergeSession, SessionResult};
use serde_json::{Value, json};
use support::{Answer, TestApp, example};
use v2::{
    v2_aggregates_several_measures_with_any_percentiles,
    v2_pages_with_cursors_that_stay_stable_under_inserts,
};

/// Defines each case once per database.
macro_rules! on_both_databases {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[actix_web::test]
                async fn $case() {
                    let app = super::support::spawn_app(super::support::Db::Sqlite).await;
                    super::run(&app, super::$case(&app)).await;
                    app.stop().await;
                }
            )*
        }
        mod postgres {
            $(
                #[actix_web::test]
                async fn $case() {
                    let app = super::support::spawn_app(super::support::Db::Postgres).await;
                    super::run(&app, super::$case(&app)).await;
                    app.stop().await;
                }
            )*
        }
    };
    (with_db: $($module:ident :: $case:ident),* $(,)?) => {
        mod sqlite_cases {
            $(
                #[actix_web::test]
                async fn $case() {
                    super::$module::$case(super::support::Db::Sqlite).await;
                }
            )*
        }
        mod postgres_cases {
            $(
                #[actix_web::test]
                async fn $case() {
                    super::$module::$case(super::support::Db::Postgres).await;
                }
            )*
        }
    };
}

on_both_databases!(
    datasets_and_contracts_are_created_read_and_refused_when_bad,
    the_markr_sample_is_imported_once_and_read_back,
    the_reference_workloads_give_what_a_dry_run_of_them_gives,
    a_bad_document_is_refused_or_reported_and_kept,
    imports_are_listed_downloaded_and_reprocessed,
    a_draft_contract_is_tried_without_writing_anything,
    records_are_filtered_paged_and_validated,
    operations_endpoints_report_health_metrics_and_the_api,
    markr_documents_give_the_aggregates_the_documents_imply,
    an_import_changes_the_next_aggregate_at_once,
    answers_carry_an_etag_and_a_matching_if_none_match_is_304,
    a_records_history_is_paged_with_limit_and_cursor,
    aggregate_and_top_answer_and_refuse_bad_questions,
    records_and_aggregates_export_as_csv_and_ndjson,
    v1_golden_exchanges_replay,
    v2_pages_with_cursors_that_stay_stable_under_inserts,
    v2_aggregates_several_measures_with_any_percentiles,
    a_dataset_is_deleted_and_its_documents_kept_until_purged,
    a_record_is_deleted_through_an_import_that_history_and_the_import_list_show,
    records_are_filtered_by_several_values_any_field_and_time,
    records_are_sorted_by_a_measure,
);

/// Runs a case; a failed one panics only after its server stopped and its database
/// was dropped, so a failing run leaves no schema behind.
async fn run(app: &TestApp, case: impl std::future::Future<Output = ()>) {
    use futures_lite::FutureExt as _;
    let outcome = std::panic::AssertUnwindSafe(case).catch_unwind().await;
    if let Err(panic) = outcome {
        app.cleanup().await;
        std::panic::resume_unwind(panic);
    }
}

on_both_databases!(with_db:
    security::tokens_and_scopes_guard_every_route,
    security::rate_limits_answer_429_per_caller,
    deadlines::a_request_past_its_deadline_is_cancelled_with_a_504,
    negotiation::answers_are_json_or_xml_by_accept_and_406_otherwise,
    limits::oversized_or_malformed_requests_are_refused_by_route_class,
    robustness::stalled_uploads_never_starve_requests_or_workers,
    deliveries::every_customer_reaches_the_receiver_signed_and_retried,
    deliveries::subscriptions_are_guarded_and_checked,
    deliveries::dead_deliveries_are_replayed_and_paused_ones_wait,
    deliveries::failing_subscriptions_are_disabled_and_delivered_events_pruned,
    callbacks::callbacks_fire_with_the_record_at_their_version_unless_cancelled,
    progress::an_import_shows_its_progress_while_it_is_processed,
);

#[actix_web::test]
async fn contracts_over_the_limits_are_refused_naming_the_limit() {
    robustness::contracts_over_the_limits_are_refused_naming_the_limit(support::Db::Sqlite).await;
}

#[actix_web::test]
async fn http_layer_refusals_are_problems() {
    robustness::http_layer_refusals_are_problems(support::Db::Sqlite).await;
}

#[actix_web::test]
async fn a_database_outage_is_a_quick_503() {
    robustness::a_database_outage_is_a_quick_503().await;
}

#[actix_web::test]
async fn without_redis_limits_hold_in_the_process_and_readiness_is_degraded() {
    security::without_redis_limits_hold_in_the_process_and_readiness_is_degraded().await;
}

#[actix_web::test]
async fn encoded_paths_need_the_scope_of_the_route_they_reach() {
    security::encoded_paths_need_the_scope_of_the_route_they_reach(support::Db::Sqlite).await;
}

#[actix_web::test]
async fn without_tokens_only_loopback_is_bound() {
    security::no_tokens_means_loopback_only().await;
}

/// With no worker to process it, `?wait=true` gives up after `import_wait_seconds` and
/// answers `202` with where to poll; the import stays queued.
async fn a_wait_that_outlasts_the_limit_answers_202_with_where_to_poll(db: support::Db) {
    let app = support::spawn_app_with(db, |s| {
        s.workers = 0;
        s.import_wait_seconds = 1;
    })
    .await;
    app.create_example("customers", "customers.json").await;
    let started = std::time::Instant::now();
    let answer = app
        .import("customers", "text/csv", example("data", "customers.csv"))
        .await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    assert_eq!(answer.body["status"], "received");
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(1),
        "it waited"
    );
    let location = answer.header("location").expect("where to poll").to_owned();
    assert_eq!(app.get(&location).await.body["status"], "received");
    app.stop().await;
}

#[actix_web::test]
async fn sqlite_a_wait_that_outlasts_the_limit_answers_202() {
    a_wait_that_outlasts_the_limit_answers_202_with_where_to_poll(support::Db::Sqlite).await;
}

#[actix_web::test]
async fn postgres_a_wait_that_outlasts_the_limit_answers_202() {
    a_wait_that_outlasts_the_limit_answers_202_with_where_to_poll(support::Db::Postgres).await;
}

/// What the pure pipeline makes of an example document (the independent answer).
fn dry_run(contract: &str, document: &str) -> SessionResult {
    let text = String::from_utf8(example("contracts", contract)).expect("utf-8");
    let contract = Contract::parse(&text).expect("a valid contract");
    let mut session = MergeSession::new(&contract);
    let bytes = std::io::Cursor::new(example("data", document));
    for item in Codecs::default().decode_reader(contract.format(), bytes) {
        session.push(item);
    }
    session.finish()
}

/// `DELETE /v1/datasets/{ds}` takes the records, history, subscriptions and sources at
/// once and keeps the documents, the name taken, until `?purge=true`; the name then
/// makes a new, empty dataset.
async fn a_record_is_deleted_through_an_import_that_history_and_the_import_list_show(
    app: &TestApp,
) {
    let created = app.create_example("customers", "customers.json").await;
    assert_eq!(created.status, 201, "{}", created.body);
    let done = app
        .import("customers", "text/csv", example("data", "customers.csv"))
        .await;
    assert_eq!(done.body["status"], "completed", "{}", done.body);
    let before = app.get("/v1/datasets/customers").await.body["records"]
        .as_u64()
        .unwrap();
    let record = app.get("/v1/datasets/customers/records/c-001").await;
    assert_eq!(record.status, 200, "{}", record.body);

    app.delete("/v1/datasets/customers/records/c-404")
        .await
        .problem(404, "not_found");
    app.delete("/v1/datasets/nobody/records/c-001")
        .await
        .problem(404, "not_found");
    let deleted = app.delete("/v1/datasets/customers/records/c-001").await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    assert_eq!(deleted.body["key"], "c-001");
    assert_eq!(deleted.body["record"], record.body, "the state it had");
    let import = &deleted.body["import"];
    assert_eq!(import["status"], "completed", "{import}");
    assert_eq!(import["source"], "api");
    assert_eq!(
        import["content_type"],
        "application/vnd.intake.deletions+json"
    );
    assert_eq!(import["report"]["deleted"], 1, "{import}");
    let id = import["id"].as_str().unwrap();
    assert!(
        deleted.header("location").unwrap().ends_with(id),
        "{:?}",
        deleted.header("location")
    );

    app.get("/v1/datasets/customers/records/c-001")
        .await
        .problem(404, "not_found");
    app.delete("/v1/datasets/customers/records/c-001")
        .await
        .problem(404, "not_found");
    let after = app.get("/v1/datasets/customers").await;
    assert_eq!(after.body["records"], before - 1, "{}", after.body);
    let listed = app.get("/v1/datasets/customers/records?limit=1").await;
    assert_eq!(listed.body["records"][0]["key"], "c-002", "{}", listed.body);
    let history = app
        .get("/v1/datasets/customers/records/c-001/history")
        .await;
    let entries = history.body["history"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{}", history.body);
    assert!(entries[0].get("deleted").is_none(), "{}", history.body);
    assert_eq!(entries[1]["deleted"], true);
    assert_eq!(entries[1]["import_id"], id);
    assert_eq!(entries[1]["attributes"], record.body["attributes"]);
    // The deletion is an import of the dataset: listed, its document readable, and
    // no contract can be tried on it.
    let imports = app.get("/v1/datasets/customers/imports").await;
    assert_eq!(imports.body["imports"][0]["id"], id, "{}", imports.body);
    let document = app
        .get(&format!("/v1/datasets/customers/imports/{id}/document"))
        .await;
    let document: Value = serde_json::from_slice(&document.bytes).unwrap();
    assert_eq!(document["delete"][0]["key"], "c-001", "{document}");
    let contract: Value = serde_json::from_slice(&example("contracts", "customers.json")).unwrap();
    let tried = app
        .post_json(
            "/v1/datasets/customers/contracts/dry-run",
            &json!({"import_id": id, "contract": contract}),
        )
        .await;
    tried.problem(409, "conflict");
    // Only the route writes deletion documents: an upload of one is refused, even to
    // a dataset of JSON documents.
    let accounts = app.create_example("accounts", "accounts.json").await;
    assert_eq!(accounts.status, 201, "{}", accounts.body);
    let forged = serde_json::to_vec(&document).unwrap();
    app.post_bytes(
        "/v1/datasets/accounts/imports",
        Some("application/vnd.intake.deletions+json; charset=utf-8"),
        forged,
    )
    .await
    .problem(415, "unsupported_media_type");
    // Reprocessing the first document brings the record back; the deletion stays in
    // its history.
    let first = done.body["id"].as_str().unwrap();
    let requeued = app
        .post_json(
            &format!("/v1/datasets/customers/imports/{first}/reprocess"),
            &json!({}),
        )
        .await;
    assert_eq!(requeued.status, 202, "{}", requeued.body);
    let mut back = app.get("/v1/datasets/customers/records/c-001").await;
    for _ in 0..200 {
        if back.status == 200 {
            break;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(50)).await;
        back = app.get("/v1/datasets/customers/records/c-001").await;
    }
    assert_eq!(back.status, 200, "{}", back.body);
    assert_eq!(back.body["attributes"], record.body["attributes"]);
    // An Idempotency-Key first sent with an upload names no deletion: refused.
    let reused = app
        .client
        .post(app.url("/v1/datasets/customers/imports?wait=true"))
        .insert_header(("Content-Type", "text/csv"))
        .insert_header(("Idempotency-Key", "shared-key"))
        .send_body("id,first_name,last_name,email,phone\nc-900,A,B,a@example.com,\n")
        .await
        .unwrap();
    assert_eq!(reused.status(), 200);
    let refused = app
        .client
        .delete(app.url("/v1/datasets/customers/records/c-002"))
        .insert_header(("Idempotency-Key", "shared-key"))
        .send()
        .await
        .unwrap();
    let refused = TestApp::answer(refused).await;
    let problem = refused.problem(409, "conflict");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("not a deletion"),
        "{problem}"
    );
    let kept = app.get("/v1/datasets/customers/records/c-002").await;
    assert_eq!(kept.status, 200, "nothing deleted: {}", kept.body);
}

async fn a_dataset_is_deleted_and_its_documents_kept_until_purged(app: &TestApp) {
    let created = app.create_example("customers", "customers.json").await;
    assert_eq!(created.status, 201, "{}", created.body);
    let done = app
        .import("customers", "text/csv", example("data", "customers.csv"))
        .await;
    assert_eq!(done.body["status"], "completed", "{}", done.body);
    let import = done.body["id"].as_str().unwrap().to_owned();
    let records = app.get("/v1/datasets/customers").await.body["records"]
        .as_u64()
        .unwrap();
    assert!(records > 0);
    let hook = json!({"url": "https://93.184.216.34/hook"});
    let subscribed = app
        .post_json("/v1/datasets/customers/subscriptions", &hook)
        .await;
    assert_eq!(subscribed.status, 201, "{}", subscribed.body);

    let bad = app.delete("/v1/datasets/customers?purge=maybe").await;
    bad.problem(400, "bad_request");
    let deleted = app.delete("/v1/datasets/customers").await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    assert_eq!(
        deleted.body,
        json!({"name": "customers", "records": records, "documents": 1, "purged": false})
    );
    app.get("/v1/datasets/customers")
        .await
        .problem(404, "not_found");
    let listed = app.get("/v1/datasets").await;
    assert_eq!(listed.body["datasets"], json!([]));
    app.get("/v1/datasets/customers/records")
        .await
        .problem(404, "not_found");
    let subscriptions = app.get("/v1/datasets/customers/subscriptions").await;
    assert_eq!(subscriptions.body, json!({"subscriptions": []}));
    // Its documents are kept: each can still be read by its id, not processed again.
    let kept = app
        .get(&format!("/v1/datasets/customers/imports/{import}/document"))
        .await;
    assert_eq!(kept.bytes, example("data", "customers.csv"));
    app.post_json(
        &format!("/v1/datasets/customers/imports/{import}/reprocess"),
        &json!({}),
    )
    .await
    .problem(404, "not_found");
    app.get("/v1/datasets/customers/imports")
        .await
        .problem(404, "not_found");
    app.delete("/v1/datasets/customers")
        .await
        .problem(404, "not_found");
    let taken = app.create_example("customers", "customers.json").await;
    let problem = taken.problem(409, "conflict");
    assert!(
        problem["detail"].as_str().unwrap().contains("?purge=true"),
        "{problem}"
    );

    let purged = app.delete("/v1/datasets/customers?purge=true").await;
    assert_eq!(
        purged.body,
        json!({"name": "customers", "records": 0, "documents": 1, "purged": true})
    );
    app.get(&format!("/v1/datasets/customers/imports/{import}/document"))
        .await
        .problem(404, "not_found");
    let again = app.create_example("customers", "customers.json").await;
    assert_eq!(again.status, 201, "{}", again.body);
    let fresh = app.get("/v1/datasets/customers").await;
    assert_eq!(fresh.body["records"], 0, "{}", fresh.body);
    let redone = app
        .import("customers", "text/csv", example("data", "customers.csv"))
        .await;
    assert_eq!(redone.body["status"], "completed", "{}", redone.body);
    assert_ne!(
        redone.body["id"],
        json!(import),
        "a new document, not the purged one"
    );
    assert!(redone.body.get("duplicate_of").is_none(), "{}", redone.body);
    let counted = app.get("/v1/datasets/customers").await;
    assert_eq!(counted.body["records"], records);

    // The Markr route makes its dataset on first use, but not over a tombstone.
    let sample = example("data", "markr-sample-results.xml");
    let markr = || app.post_bytes("/import", Some("text/xml+markr"), sample.clone());
    assert_eq!(markr().await.status, 200);
    app.delete("/v1/datasets/exam-results").await;
    let refused = markr().await;
    let problem = refused.problem(409, "conflict");
    assert!(
        problem["detail"].as_str().unwrap().contains("?purge=true"),
        "{problem}"
    );
    app.delete("/v1/datasets/exam-results?purge=true").await;
    assert_eq!(markr().await.status, 200);
}

async fn datasets_and_contracts_are_created_read_and_refused_when_bad(app: &TestApp) {
    let created = app
        .create_example("exam-results", "exam-results.json")
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(
        created.header("location"),
        Some("/v1/datasets/exam-results")
    );
    assert_eq!(created.body["current_contract"], 1);
    assert_eq!(created.body["revision"], 0);

    let again = app
        .create_example("exam-results", "exam-results.json")
        .await;
    again.problem(409, "conflict");
    let bad_name = app
        .create_example("Exam Results", "exam-results.json")
        .await;
    let problem = bad_name.problem(400, "bad_request");
    assert_eq!(problem["errors"][0]["field"], "name");

    let invalid = json!({"name": "broken", "contract": {"format": "xml", "records": "a/b",
        "fields": {"id": {"path": "id", "type": "string"}}, "key": ["id"],
        "merge": "last_wins", "on_invalid": "skip_record"}});
    let refused = app.post_json("/v1/datasets", &invalid).await;
    let problem = refused.problem(422, "invalid_contract");
    assert_eq!(
        problem["errors"][0]["field"], "contract.key[0]",
        "{problem}"
    );
    assert!(
        app.get("/v1/datasets/broken").await.status == 404,
        "nothing was created"
    );
    let mut nul: Value =
        serde_json::from_slice(&example("contracts", "exam-results.json")).unwrap();
    nul["description"] = json!("a\u{0}b");
    let refused = app
        .post_json("/v1/datasets", &json!({"name": "nul", "contract": nul}))
        .await;
    assert_eq!(
        refused.problem(422, "invalid_contract")["errors"][0]["field"],
        "contract.description"
    );

    let malformed = app
        .post_bytes(
            "/v1/datasets",
            Some("application/json"),
            b"{\"name\": ".to_vec(),
        )
        .await;
    malformed.problem(400, "bad_request");
    let not_json = app
        .post_bytes("/v1/datasets", Some("text/plain"), b"name=x".to_vec())
        .await;
    not_json.problem(415, "unsupported_media_type");
    let huge = json!({"name": "huge", "contract": {"padding": "x".repeat(100 * 1024)}});
    app.post_json("/v1/datasets", &huge)
        .await
        .problem(413, "payload_too_large");

    let listed = app.get("/v1/datasets").await;
    assert_eq!(listed.body["datasets"][0]["name"], "exam-results");
    app.get("/v1/datasets/nope").await.problem(404, "not_found");
    app.get("/v1/datasets/NOPE")
        .await
        .problem(400, "bad_request");

    let mut v2: Value = serde_json::from_slice(&example("contracts", "exam-results.json")).unwrap();
    v2["on_invalid"] = json!("skip_record");
    let published = app
        .post_json("/v1/datasets/exam-results/contracts", &v2)
        .await;
    assert_eq!(published.status, 201, "{}", published.body);
    assert_eq!(published.body["version"], 2);
    assert_eq!(
        published.header("location"),
        Some("/v1/datasets/exam-results/contracts/2")
    );
    let read = app.get("/v1/datasets/exam-results/contracts/2").await;
    assert_eq!(read.body["contract"]["on_invalid"], "skip_record");
    let versions = app.get("/v1/datasets/exam-results/contracts").await;
    assert_eq!(versions.body["contracts"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        app.get("/v1/datasets/exam-results").await.body["current_contract"],
        2
    );
    app.get("/v1/datasets/exam-results/contracts/9")
        .await
        .problem(404, "not_found");
    app.get("/v1/datasets/exam-results/contracts/0")
        .await
        .problem(400, "bad_request");
    app.get("/v1/datasets/nope/contracts")
        .await
        .problem(404, "not_found");
    let orphan = app.post_json("/v1/datasets/nope/contracts", &v2).await;
    orphan.problem(404, "not_found");
}

async fn the_markr_sample_is_imported_once_and_read_back(app: &TestApp) {
    app.create_example("exam-results", "exam-results.json")
        .await;
    let sample = example("data", "markr-sample-results.xml");
    let done = app
        .import("exam-results", "text/xml+markr", sample.clone())
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(done.body["status"], "completed");
    let expected = dry_run("exam-results.json", "markr-sample-results.xml");
    assert_eq!(done.body["report"]["seen"], expected.report.seen);
    assert_eq!(
        done.body["report"]["inserted"],
        expected.records.len() as u64
    );
    assert_eq!(done.body["report"]["conflicts"], expected.report.conflicts);
    let location = done.header("location").expect("a Location").to_owned();
    assert_eq!(app.get(&location).await.body["id"], done.body["id"]);

    let again = app.import("exam-results", "text/xml+markr", sample).await;
    assert_eq!(again.status, 200);
    assert_eq!(
        again.body["id"], done.body["id"],
        "the same body is the same import"
    );
    assert_eq!(
        again.body["duplicate_of"], done.body["id"],
        "{}",
        again.body
    );
    assert_eq!(
        again.header("intake-duplicate-of"),
        done.body["id"].as_str(),
        "said in a header too"
    );
    assert!(
        done.body.get("duplicate_of").is_none(),
        "a first import is no duplicate: {}",
        done.body
    );
    let dataset = app.get("/v1/datasets/exam-results").await;
    assert_eq!(dataset.body["revision"], 1, "applied once");
    assert_eq!(dataset.body["records"], expected.records.len() as u64);

    let record = app
        .get("/v1/datasets/exam-results/records/9863%2F002299")
        .await;
    assert_eq!(record.status, 200, "{}", record.body);
    assert_eq!(
        record.body["key_components"],
        json!(["9863", "002299"]),
        "keys stay text"
    );
    let stored = expected
        .records
        .values()
        .find(|r| r.key.canonical() == "9863/002299");
    let percent = stored.and_then(|r| r.measures.get("percent"));
    assert_eq!(record.body["measures"]["percent"].as_f64(), percent);
    app.get("/v1/datasets/exam-results/records/9863%2F2299")
        .await
        .problem(404, "not_found");
    app.get("/v1/datasets/exam-results/records/9863")
        .await
        .problem(400, "bad_request");
    let history = app
        .get("/v1/datasets/exam-results/records/9863%2F002299/history")
        .await;
    assert_eq!(history.body["key"], "9863/002299");
    assert!(
        !history.body["history"]
            .as_array()
            .expect("a list")
            .is_empty()
    );

    let conflicts = app
        .get("/v1/datasets/exam-results/conflicts?limit=1000")
        .await;
    let listed = conflicts.body["conflicts"].as_array().expect("a list");
    assert_eq!(listed.len() as u64, expected.report.conflicts);
    assert_eq!(listed[0]["kind"], "identity");
    assert_eq!(listed[0]["import_id"], done.body["id"]);
}

async fn the_reference_workloads_give_what_a_dry_run_of_them_gives(app: &TestApp) {
    let workloads = [
        (
            "exams",
            "exam-results.json",
            "exam-results.xml",
            "application/xml",
        ),
        (
            "accounts",
            "accounts.json",
            "account-updates.json",
            "application/json",
        ),
        ("customers", "customers.json", "customers.csv", "text/csv"),
    ];
    for (dataset, contract, document, media_type) in workloads {
        assert_eq!(app.create_example(dataset, contract).await.status, 201);
        let done = app
            .import(dataset, media_type, example("data", document))
            .await;
        assert_eq!(done.body["status"], "completed", "{dataset}: {}", done.body);
        let expected = dry_run(contract, document);
        let report = serde_json::to_value(&expected.report).unwrap();
        for count in [
            "seen",
            "inserted",
            "updated",
            "unchanged",
            "superseded",
            "invalid",
            "conflicts",
        ] {
            assert_eq!(
                done.body["report"][count], report[count],
                "{dataset}: {count}"
            );
        }
        let records = app
            .get(&format!("/v1/datasets/{dataset}/records?limit=1000"))
            .await;
        assert_eq!(
            records.body["total"],
            expected.records.len() as u64,
            "{dataset}"
        );
        for (got, want) in records.body["records"]
            .as_array()
            .unwrap()
            .iter()
            .zip(expected.records.values())
        {
            assert_eq!(
                got["key"],
                want.key.canonical(),
                "{dataset}: ordered by key"
            );
        }
    }
}

async fn a_bad_document_is_refused_or_reported_and_kept(app: &TestApp) {
    app.create_example("exam-results", "exam-results.json")
        .await;
    let invalid = example("data", "exam-results-invalid.xml");
    let failed = app
        .import("exam-results", "application/xml", invalid.clone())
        .await;
    assert_eq!(failed.body["status"], "failed", "{}", failed.body);
    let errors = failed.body["report"]["errors"].as_array().expect("errors");
    assert!(
        !errors.is_empty() && errors[0]["location"].is_object(),
        "{}",
        failed.body
    );
    assert_eq!(
        app.get("/v1/datasets/exam-results").await.body["records"],
        0,
        "nothing applied"
    );
    let id = failed.body["id"].as_str().unwrap();
    let kept = app
        .get(&format!("/v1/datasets/exam-results/imports/{id}/document"))
        .await;
    assert_eq!(kept.bytes, invalid, "the raw document is kept");

    let broken = app
        .import(
            "exam-results",
            "application/xml",
            b"<mcq-test-results><oops".to_vec(),
        )
        .await;
    assert_eq!(
        broken.body["status"], "failed",
        "malformed XML fails its import, not the server"
    );

    let wrong_type = app
        .post_bytes(
            "/v1/datasets/exam-results/imports",
            Some("text/csv"),
            b"a,b".to_vec(),
        )
        .await;
    wrong_type.problem(415, "unsupported_media_type");
    let no_type = app
        .post_bytes("/v1/datasets/exam-results/imports", None, b"<x/>".to_vec())
        .await;
    no_type.problem(415, "unsupported_media_type");
    let oversized = vec![b' '; (1 << 20) + 1];
    let too_big = app
        .post_bytes(
            "/v1/datasets/exam-results/imports",
            Some("application/xml"),
            oversized,
        )
        .await;
    too_big.problem(413, "payload_too_large");
    let unknown = app
        .post_bytes(
            "/v1/datasets/nope/imports",
            Some("application/xml"),
            b"<x/>".to_vec(),
        )
        .await;
    unknown.problem(404, "not_found");
    let listed = app.get("/v1/datasets/exam-results/imports").await;
    assert_eq!(
        listed.body["imports"].as_array().map(Vec::len),
        Some(2),
        "refused bodies are not stored"
    );
}

async fn imports_are_listed_downloaded_and_reprocessed(app: &TestApp) {
    app.create_example("customers", "customers.json").await;
    let csv = example("data", "customers.csv");
    let path = "/v1/datasets/customers/imports";
    let queued = app
        .post_bytes(path, Some("text/csv; charset=utf-8"), csv.clone())
        .await;
    assert_eq!(queued.status, 202, "{}", queued.body);
    let id = queued.body["id"].as_str().expect("an id").to_owned();
    let keyed = app
        .client
        .post(app.url(path))
        .insert_header(("content-type", "text/csv"))
        .insert_header(("idempotency-key", "batch-7"))
        .send_body("id,first_name,last_name,email,phone\n99,A,B,a@b.c,1\n")
        .await
        .expect("sent");
    assert_eq!(keyed.status(), 202);
    let replayed = app
        .client
        .post(app.url(path))
        .insert_header(("content-type", "text/csv"))
        .insert_header(("idempotency-key", "batch-7"))
        .send_body("id,first_name,last_name,email,phone\n98,C,D,c@d.e,2\n")
        .await
        .expect("sent");
    assert_eq!(
        replayed.status(),
        200,
        "the same key is the first import, applied once"
    );
    let bad_key = app
        .client
        .post(app.url(path))
        .insert_header(("content-type", "text/csv"))
        .insert_header(("idempotency-key", "x".repeat(201)))
        .send_body("id\n1\n")
        .await
        .expect("sent");
    assert_eq!(bad_key.status(), 400);
    let listed = app.get(&format!("{path}?limit=1")).await;
    assert_eq!(listed.body["imports"].as_array().map(Vec::len), Some(1));
    let all = app.get(path).await;
    assert_eq!(
        all.body["imports"].as_array().map(Vec::len),
        Some(2),
        "one per body or key"
    );
    app.get(&format!("{path}?limit=0"))
        .await
        .problem(400, "bad_request");
    app.get(&format!("{path}?offset=-1"))
        .await
        .problem(400, "bad_request");

    let document = app.get(&format!("{path}/{id}/document")).await;
    assert_eq!(document.bytes, csv, "byte for byte");
    assert_eq!(document.header("x-content-type-options"), Some("nosniff"));
    assert!(
        document
            .header("content-disposition")
            .is_some_and(|d| d.starts_with("attachment"))
    );
    assert_eq!(
        document.header("content-type"),
        Some("text/csv; charset=utf-8")
    );
    app.get(&format!("{path}/not*an*id"))
        .await
        .problem(400, "bad_request");
    app.get(&format!("{path}/0123456789abcdef"))
        .await
        .problem(404, "not_found");
    app.get(&format!("/v1/datasets/nope/imports/{id}"))
        .await
        .problem(404, "not_found");

    let import_path = format!("{path}/{id}");
    let mut waited = app.get(&import_path).await;
    for _ in 0..200 {
        if waited.body["status"] == "completed" {
            break;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(50)).await;
        waited = app.get(&import_path).await;
    }
    assert_eq!(
        waited.body["status"], "completed",
        "the workers processed it"
    );
    let again = app
        .post_bytes(&format!("{import_path}/reprocess"), None, Vec::new())
        .await;
    assert_eq!(again.status, 202, "{}", again.body);
    assert_eq!(again.body["status"], "received");
    let bad_version = json!({"contract_version": 7});
    let refused = app
        .post_json(&format!("{import_path}/reprocess"), &bad_version)
        .await;
    let problem = refused.problem(400, "bad_request");
    assert_eq!(problem["errors"][0]["field"], "contract_version");
}

async fn a_draft_contract_is_tried_without_writing_anything(app: &TestApp) {
    app.create_example("exam-results", "exam-results.json")
        .await;
    let path = "/v1/datasets/exam-results/imports";
    let invalid = example("data", "exam-results-invalid.xml");
    let failed = app.post_bytes(path, Some("application/xml"), invalid).await;
    let id = failed.body["id"].as_str().unwrap().to_owned();
    let mut draft: Value =
        serde_json::from_slice(&example("contracts", "exam-results.json")).unwrap();
    draft["on_invalid"] = json!("skip_record");
    let body = json!({"import_id": id, "contract": draft});
    let tried = app
        .post_json("/v1/datasets/exam-results/contracts/dry-run", &body)
        .await;
    assert_eq!(tried.status, 200, "{}", tried.body);
    assert_eq!(
        tried.body["verdict"], "commit",
        "skipping the bad record applies the rest"
    );
    let records = tried.body["records"].as_array().expect("records");
    assert_eq!(
        records.len() as u64,
        tried.body["records_total"].as_u64().unwrap()
    );
    assert!(!records.is_empty());
    assert!(tried.body["report"]["invalid"].as_u64() > Some(0));
    assert_eq!(
        app.get("/v1/datasets/exam-results").await.body["records"],
        0,
        "nothing written"
    );
    assert_eq!(
        app.get("/v1/datasets/exam-results/contracts").await.body["contracts"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );

    let bad_draft = json!({"import_id": id, "contract": {"format": "yaml"}});
    let refused = app
        .post_json("/v1/datasets/exam-results/contracts/dry-run", &bad_draft)
        .await;
    refused.problem(422, "invalid_contract");
    let unknown = json!({"import_id": "0123456789abcdef", "contract": draft});
    let missing = app
        .post_json("/v1/datasets/exam-results/contracts/dry-run", &unknown)
        .await;
    missing.problem(404, "not_found");
    let bad_id = json!({"import_id": "../etc", "contract": draft});
    let refused = app
        .post_json("/v1/datasets/exam-results/contracts/dry-run", &bad_id)
        .await;
    assert_eq!(
        refused.problem(400, "bad_request")["errors"][0]["field"],
        "import_id"
    );
}

/// Record lists keep any of several values given for one name, filter on any field
/// the contract declares (customers have no dimension), and on `updated_since`; the
/// same filters hold for v2 pages and exports, and mistakes are `400`s naming them.
async fn records_are_filtered_by_several_values_any_field_and_time(app: &TestApp) {
    app.create_example("customers", "customers.json").await;
    let done = app
        .import("customers", "text/csv", example("data", "customers.csv"))
        .await;
    assert_eq!(done.body["status"], "completed", "{}", done.body);
    let two = app
        .get("/v1/datasets/customers/records?first_name=Ada&first_name=Charles&limit=1")
        .await;
    assert_eq!(two.body["total"], 2, "{}", two.body);
    assert_eq!(keys(&two, "records"), ["c-001"]);
    let paged = app
        .get("/v1/datasets/customers/records?first_name=Ada&first_name=Charles&limit=1&offset=1")
        .await;
    assert_eq!(keys(&paged, "records"), ["c-002"]);
    let quoted = app
        .get("/v1/datasets/customers/records?first_name=Grace%20%22Amazing%22")
        .await;
    assert_eq!(keys(&quoted, "records"), ["c-003"]);
    let both = app
        .get("/v1/datasets/customers/records?first_name=Ada&last_name=Turing")
        .await;
    assert_eq!(both.body["total"], 0, "every field must hold");
    let v2 = app
        .get("/v2/datasets/customers/records?last_name=Babbage&last_name=Hopper&limit=1")
        .await;
    assert_eq!(keys(&v2, "items"), ["c-002"]);
    let next = v2.body["next_cursor"].as_str().unwrap();
    let v2 = app
        .get(&format!(
            "/v2/datasets/customers/records?last_name=Babbage&last_name=Hopper&limit=1&cursor={next}"
        ))
        .await;
    assert_eq!(keys(&v2, "items"), ["c-003"]);
    let csv = app
        .get_with(
            "/v1/datasets/customers/records?last_name=Dijkstra&last_name=Lovelace",
            ("accept", "text/csv"),
        )
        .await;
    let text = String::from_utf8(csv.bytes.clone()).unwrap();
    let rows: Vec<&str> = text.lines().skip(1).map(|l| &l[..5]).collect();
    assert_eq!(rows, ["c-001", "c-006"], "{text}");

    let since = chrono::Utc::now();
    let later = app
        .import(
            "customers",
            "text/csv",
            b"id,first_name,last_name,email\nc-007,Barbara,Liskov,barbara@example.com\n".to_vec(),
        )
        .await;
    assert_eq!(later.body["status"], "completed", "{}", later.body);
    let since = since.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let recent = app
        .get(&format!(
            "/v1/datasets/customers/records?updated_since={}",
            since.replace('+', "%2B")
        ))
        .await;
    assert_eq!(keys(&recent, "records"), ["c-007"], "{}", recent.body);

    let unknown = app.get("/v1/datasets/customers/records?colour=red").await;
    let problem = unknown.problem(400, "bad_request");
    assert_eq!(problem["errors"][0]["field"], "colour");
    assert!(
        problem["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("is not a field of this dataset (its fields: email, first_name"),
        "{problem}"
    );
    let bad_time = app
        .get("/v1/datasets/customers/records?updated_since=yesterday")
        .await;
    assert_eq!(
        bad_time.problem(400, "bad_request")["errors"][0]["field"],
        "updated_since"
    );
}

/// `?sort=-percent` pages records highest first (ties by key), `?sort=percent` lowest
/// first, with filters on dimensions or other fields; a name that is not a measure,
/// a cursor or an export with `sort` is a `400` naming it.
async fn records_are_sorted_by_a_measure(app: &TestApp) {
    app.create_example("exam-results", "exam-results.json")
        .await;
    let sample = example("data", "markr-sample-results.xml");
    let done = app.import("exam-results", "text/xml+markr", sample).await;
    assert_eq!(done.body["status"], "completed", "{}", done.body);
    let all = app
        .get("/v1/datasets/exam-results/records?limit=1000")
        .await;
    let mut expected: Vec<(f64, String, String)> = all.body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["measures"]["percent"].as_f64().unwrap(),
                r["key"].as_str().unwrap().to_owned(),
                r["attributes"]["last_name"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
            )
        })
        .collect();
    expected.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    let top = app
        .get("/v1/datasets/exam-results/records?sort=-percent&limit=5&offset=2")
        .await;
    let wanted: Vec<String> = expected[2..7].iter().map(|e| e.1.clone()).collect();
    assert_eq!(keys(&top, "records"), wanted);
    assert_eq!(top.body["total"], 81);
    let lowest = app
        .get("/v1/datasets/exam-results/records?sort=percent&limit=1")
        .await;
    let min = expected.iter().map(|e| e.0).fold(f64::INFINITY, f64::min);
    let first = expected
        .iter()
        .filter(|e| e.0 == min)
        .map(|e| &e.1)
        .min()
        .unwrap();
    assert_eq!(&keys(&lowest, "records"), std::slice::from_ref(first));
    // A field filter checked outside the database sorts the same way.
    let name = &expected[0].2;
    let theirs: Vec<String> = expected
        .iter()
        .filter(|e| &e.2 == name)
        .map(|e| e.1.clone())
        .collect();
    let filtered = app
        .get(&format!(
            "/v1/datasets/exam-results/records?sort=-percent&last_name={}&limit=100",
            name.replace(' ', "%20")
        ))
        .await;
    assert_eq!(keys(&filtered, "records"), theirs);

    let unknown = app
        .get("/v1/datasets/exam-results/records?sort=-grade")
        .await;
    let problem = unknown.problem(400, "bad_request");
    assert_eq!(problem["errors"][0]["field"], "sort");
    assert!(
        problem["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("its measures: "),
        "{problem}"
    );
    app.get("/v1/datasets/exam-results/records?sort=-")
        .await
        .problem(400, "bad_request");
    let export = app
        .get_with(
            "/v1/datasets/exam-results/records?sort=-percent",
            ("accept", "text/csv"),
        )
        .await;
    assert_eq!(export.status, 400);
}

async fn records_are_filtered_paged_and_validated(app: &TestApp) {
    app.create_example("accounts", "accounts.json").await;
    let done = app
        .import(
            "accounts",
            "application/json",
            example("data", "account-updates.json"),
        )
        .await;
    assert_eq!(done.body["status"], "completed", "{}", done.body);
    let expected = dry_run("accounts.json", "account-updates.json");
    let all = app.get("/v1/datasets/accounts/records?limit=1000").await;
    assert_eq!(all.body["total"], expected.records.len() as u64);
    let first = &all.body["records"][0];
    let (dimension, value) = first["dimensions"]
        .as_object()
        .and_then(|d| d.iter().next())
        .expect("a dimension");
    let value = value.as_str().unwrap();
    let matching = expected
        .records
        .values()
        .filter(|r| r.dimensions.get(dimension) == Some(value))
        .count();
    let filtered = app
        .get(&format!(
            "/v1/datasets/accounts/records?{dimension}={value}&limit=1"
        ))
        .await;
    assert_eq!(
        filtered.body["total"], matching as u64,
        "filtered by {dimension}={value}"
    );
    assert_eq!(filtered.body["records"].as_array().map(Vec::len), Some(1));
    let second = app
        .get("/v1/datasets/accounts/records?limit=1&offset=1")
        .await;
    assert_eq!(
        second.body["records"][0]["key"],
        all.body["records"][1]["key"]
    );
    let nul = app
        .get("/v1/datasets/accounts/records?subtype=mi%00nt")
        .await;
    assert_eq!(
        (nul.status.as_u16(), &nul.body["total"]),
        (200, &json!(0)),
        "NUL matches nothing"
    );
    let typo = app.get("/v1/datasets/accounts/records?subtipe=mint").await;
    assert_eq!(
        typo.problem(400, "bad_request")["errors"][0]["field"],
        "subtipe"
    );
    let nul_key = app.get("/v1/datasets/accounts/records/a%00b").await;
    nul_key.problem(400, "bad_request");
    app.get("/v1/datasets/accounts/records/a%00b/history")
        .await
        .problem(400, "bad_request");
    app.get("/v1/datasets/accounts/records?limit=abc")
        .await
        .problem(400, "bad_request");
    app.get("/v1/datasets/accounts/records?limit=1001")
        .await
        .problem(400, "bad_request");
    app.get("/v1/datasets/nope/records")
        .await
        .problem(404, "not_found");
    app.get("/v1/datasets/nope/conflicts")
        .await
        .problem(404, "not_found");
}

async fn operations_endpoints_report_health_metrics_and_the_api(app: &TestApp) {
    let health = app.get("/healthz").await;
    assert_eq!(health.body["status"], "ok");
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.body["dependencies"][0]["status"], "up");

    let traced = app
        .get_with("/v1/datasets/nope", ("x-request-id", "trace-me-42"))
        .await;
    assert_eq!(
        traced.header("x-request-id"),
        Some("trace-me-42"),
        "kept when sent"
    );
    assert_eq!(traced.body["instance"], "trace-me-42");
    let generated = app.get("/v1/datasets").await;
    assert_eq!(
        generated.header("x-request-id").map(str::len),
        Some(36),
        "a UUID otherwise"
    );
    app.get("/v2/nothing-here").await.problem(404, "not_found");

    app.create_example("exam-results", "exam-results.json")
        .await;
    app.import(
        "exam-results",
        "application/xml",
        example("data", "exam-results.xml"),
    )
    .await;
    let metrics = String::from_utf8(app.get("/metrics").await.bytes).unwrap();
    for line in [
        "intake_imports_total{outcome=\"completed\"} 1",
        "intake_http_requests_total{method=\"GET\",route=\"/v1/datasets/{dataset}\",status=\"404\"} 1",
        "intake_import_queue_depth 0",
        "intake_http_request_duration_seconds_count{method=\"GET\",route=\"/healthz\",status=\"200\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    assert!(metrics.contains("intake_pool_connections{"), "{metrics}");

    let spec = app.get("/openapi/v1.json").await;
    assert_eq!(spec.body["openapi"], "3.1.0");
    assert!(spec.body["paths"]["/v1/datasets/{dataset}/imports"]["post"].is_object());
    let docs = app.get("/docs/").await;
    assert_eq!(docs.status, 200);
    assert!(
        String::from_utf8_lossy(&docs.bytes).contains("swagger"),
        "the docs page"
    );
    let asset = app.get("/docs/swagger-ui-bundle.js").await;
    assert_eq!(asset.status, 200, "assets are served from the binary");
}

/// The `key` of each item of the answer's `list` (`records`, `items`), in order.
fn keys(answer: &Answer, list: &str) -> Vec<String> {
    answer.body[list]
        .as_array()
        .unwrap_or_else(|| panic!("{}", answer.body))
        .iter()
        .map(|r| r["key"].as_str().unwrap().to_owned())
        .collect()
}
