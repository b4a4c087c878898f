//! Backups of the embedded SQLite database end to end (issue 19, part 3): a backup made
//! through `POST /admin/backups` while imports keep arriving, restored with `intake
//! restore` into a fresh data directory, answers the aggregate it had at the moment of
//! the backup, with no import half applied; `intake restore` refuses a database a
//! server is using, and `intake backup --to` makes one from the command line.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[path = "support/process.rs"]
mod process;
#[path = "support/store.rs"]
mod store;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use process::{intake, serve, sigterm, wait_until_up};
use serde_json::{Value, json};
use store::{CONTRACT, Store, client, get, post, request};

/// Records each import adds (new keys): a count that is not a multiple of it would be
/// an import half applied.
const PER_IMPORT: usize = 200;

async fn count(base: &str) -> u64 {
    let answer = get(base, "/v1/datasets/items/aggregate?measure=value").await;
    match answer["groups"].as_array().map(Vec::as_slice) {
        Some([]) => 0,
        Some([group]) => group["count"].as_u64().unwrap(),
        _ => panic!("not one group: {answer}"),
    }
}

/// Sends an import of `PER_IMPORT` new keys; with `wait`, it must complete.
async fn import(base: &str, n: usize, wait: bool) {
    let mut doc = String::from("id,group,value\n");
    for i in 0..PER_IMPORT {
        doc.push_str(&format!("i{n}-{i},a,{i}\n"));
    }
    let mut res = client()
        .post(format!("{base}/v1/datasets/items/imports?wait={wait}"))
        .insert_header(("Content-Type", "text/csv"))
        .send_body(doc)
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    let body: Value = res.json().await.unwrap();
    assert!(!wait || body["status"] == "completed", "{body}");
}

fn run(dir: &std::path::Path, args: &[&str]) -> (bool, String) {
    run_with(dir, &[], args)
}

fn run_with(dir: &std::path::Path, env: &[(&str, &str)], args: &[&str]) -> (bool, String) {
    let out = intake(dir)
        .envs(env.iter().copied())
        .args(args)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[actix_web::test]
async fn a_backup_made_under_imports_restores_what_was_there() {
    let (live, fresh) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut server, base) = serve(
        live.path(),
        &[("INTAKE_LOG", "error"), ("INTAKE_WORKERS", "1")],
    );
    wait_until_up(&client(), &base).await;
    let body =
        json!({"name": "items", "contract": serde_json::from_str::<Value>(CONTRACT).unwrap()});
    post(&base, "/v1/datasets", &body).await;

    // Imports keep arriving while the backup is made.
    let stop = Arc::new(AtomicBool::new(false));
    let feeding = {
        let (stop, base) = (stop.clone(), base.clone());
        actix_web::rt::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                import(&base, n, false).await;
                n += 1;
            }
            n
        })
    };
    while count(&base).await < 10 * PER_IMPORT as u64 {
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    let mut res = client()
        .post(format!("{base}/admin/backups"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 201);
    let backup: Value = res.json().await.unwrap();
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    let sent = feeding.await.unwrap();
    let records = backup["contents"]["records"].as_u64().unwrap();
    assert!(records >= 10 * PER_IMPORT as u64, "{backup}");
    assert_eq!(
        records % PER_IMPORT as u64,
        0,
        "an import half applied: {backup}"
    );
    assert_eq!(backup["verified"], true);
    let listed = get(&base, "/admin/backups").await;
    assert_eq!(listed["items"][0]["name"], backup["name"], "{listed}");

    // The database is in use: a restore into it is refused, and `backup --to` works
    // beside the running server.
    let file = live
        .path()
        .join("backups")
        .join(backup["name"].as_str().unwrap());
    let (ok, said) = run(live.path(), &["restore", file.to_str().unwrap()]);
    assert!(!ok && said.contains("in use by another process"), "{said}");
    let copy = live.path().join("copy.db");
    let (ok, said) = run(live.path(), &["backup", "--to", copy.to_str().unwrap()]);
    assert!(ok && said.contains("backed up and verified"), "{said}");
    sigterm(&server);
    assert!(server.wait().unwrap().success());
    assert!(sent > 10, "only {sent} imports were sent");

    // Restored elsewhere, it answers what it had when the backup was made.
    let (ok, said) = run(fresh.path(), &["restore", file.to_str().unwrap()]);
    assert!(ok, "{said}");
    assert!(said.contains(&format!("{records} records")), "{said}");
    let (mut restored, base) = serve(
        fresh.path(),
        &[("INTAKE_LOG", "error"), ("INTAKE_WORKERS", "0")],
    );
    wait_until_up(&client(), &base).await;
    assert_eq!(count(&base).await, records);
    let dataset = get(&base, "/v1/datasets/items").await;
    assert_eq!(dataset["records"], records, "{dataset}");
    sigterm(&restored);
    assert!(restored.wait().unwrap().success());
}

#[actix_web::test]
async fn scheduled_backups_are_made_and_pruned_to_backup_keep() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("INTAKE_LOG", "error"),
        ("INTAKE_BACKUP_EVERY", "200ms"),
        ("INTAKE_BACKUP_KEEP", "2"),
    ];
    let (mut server, base) = serve(dir.path(), &env);
    wait_until_up(&client(), &base).await;
    let mut seen = std::collections::BTreeSet::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while seen.len() < 4 {
        assert!(std::time::Instant::now() < deadline, "only {seen:?}");
        let listed = get(&base, "/admin/backups").await;
        let items = listed["items"].as_array().unwrap();
        assert!(items.len() <= 2, "more kept than backup_keep: {listed}");
        seen.extend(items.iter().map(|b| b["name"].as_str().unwrap().to_owned()));
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    let files = std::fs::read_dir(dir.path().join("backups"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "db")
        })
        .count();
    assert!(files <= 3, "{files} backup files: pruning lags");
    sigterm(&server);
    assert!(server.wait().unwrap().success());

    let (ok, said) = run(dir.path(), &["backup"]);
    assert!(ok, "{said}");
    let bad = intake(dir.path())
        .args(["check"])
        .env("INTAKE_BACKUP_EVERY", "soon")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&bad.stderr);
    assert!(
        !bad.status.success() && said.contains("backup_every"),
        "{said}"
    );
}

#[actix_web::test]
async fn a_postgres_schema_is_dumped_and_restored_with_its_own_tools() {
    let store = Store::postgres("backup");
    let dir = tempfile::tempdir().unwrap();
    let env = store.env(&[("INTAKE_WORKERS", "1")]);
    let (mut server, base) = serve(dir.path(), &env);
    wait_until_up(&client(), &base).await;
    let body =
        json!({"name": "items", "contract": serde_json::from_str::<Value>(CONTRACT).unwrap()});
    post(&base, "/v1/datasets", &body).await;
    for n in 0..3 {
        import(&base, n, true).await;
    }
    let dump = dir.path().join("items.dump");
    let (ok, said) = run_with(
        dir.path(),
        &env,
        &["backup", "--to", dump.to_str().unwrap()],
    );
    let before = 3 * PER_IMPORT;
    assert!(ok && said.contains(&format!("{before} records")), "{said}");
    let (code, refused) = request(&base, "POST", "/admin/backups", None).await;
    assert_eq!(code, 409, "{refused}");
    for n in 3..5 {
        import(&base, n, true).await;
    }
    assert_eq!(count(&base).await, 5 * PER_IMPORT as u64);
    let (ok, said) = run_with(dir.path(), &env, &["restore", dump.to_str().unwrap()]);
    assert!(
        !ok && said.contains("stop the servers"),
        "refused while served: {said}"
    );
    assert_eq!(
        count(&base).await,
        5 * PER_IMPORT as u64,
        "nothing restored"
    );
    sigterm(&server);
    assert!(server.wait().unwrap().success());

    let (ok, said) = run_with(dir.path(), &env, &["restore", dump.to_str().unwrap()]);
    assert!(ok && said.contains(&format!("{before} records")), "{said}");
    let (mut server, base) = serve(dir.path(), &env);
    wait_until_up(&client(), &base).await;
    assert_eq!(count(&base).await, before as u64, "what the dump held");
    sigterm(&server);
    assert!(server.wait().unwrap().success());
    store.drop().await;
}
