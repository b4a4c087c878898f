//! The `intake` binary as an operator runs it: `--help`, `check`, `serve` with JSON
//! logs that carry the request id and a graceful stop on SIGTERM, and `import` of a
//! local file with its exit status.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[path = "support/process.rs"]
mod process;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use process::{free_port, intake, serve, sigterm, wait_until_up};

fn example(folder: &str, name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(folder)
        .join(name)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn run(command: &mut Command) -> Output {
    command.output().expect("intake runs")
}

#[test]
fn help_names_every_command_and_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(intake(dir.path()).arg("--help"));
    assert!(out.status.success());
    let help = text(&out.stdout);
    for word in [
        "serve",
        "migrate",
        "import",
        "replay",
        "check",
        "INTAKE_CONFIG",
        "INTAKE_DATABASE_URL",
    ] {
        assert!(help.contains(word), "{word} in\n{help}");
    }
}

#[test]
fn check_says_what_is_wrong_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let ok = run(intake(dir.path()).arg("check"));
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    let file = dir.path().join("intake.db");
    assert!(
        text(&ok.stdout).contains(&format!("no database yet at {}", file.display())),
        "{}",
        text(&ok.stdout)
    );
    assert!(!file.exists(), "a check creates nothing");
    run(intake(dir.path()).arg("migrate"));
    let ready = run(intake(dir.path()).arg("check"));
    assert!(ready.status.success(), "{}", text(&ready.stdout));
    assert!(
        text(&ready.stdout).contains(&format!("ok, {} (SQLite)", file.display())),
        "{}",
        text(&ready.stdout)
    );

    let bad = run(intake(dir.path())
        .arg("check")
        .env("INTAKE_DATABASE_URL", "mysql://u:hunter2@h/db"));
    assert_eq!(bad.status.code(), Some(2));
    let said = text(&bad.stderr);
    assert!(
        said.contains("database_url") && !said.contains("hunter2"),
        "{said}"
    );

    let open = run(intake(dir.path())
        .arg("check")
        .env("INTAKE_LISTEN", "0.0.0.0:8080"));
    assert_eq!(open.status.code(), Some(1), "{}", text(&open.stdout));
    assert!(
        text(&open.stdout).contains("listen: FAILED: refusing to listen on 0.0.0.0:8080"),
        "{}",
        text(&open.stdout)
    );

    let down = run(intake(dir.path()).arg("check").env(
        "INTAKE_DATABASE_URL",
        "postgres://postgres@127.0.0.1:9/nothing",
    ));
    assert_eq!(down.status.code(), Some(1), "{}", text(&down.stdout));
    assert!(
        text(&down.stdout).contains("FAILED"),
        "{}",
        text(&down.stdout)
    );
}

#[test]
fn a_misspelled_setting_is_named_not_silently_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(intake(dir.path())
        .arg("migrate")
        .env("INTAKE_LISTN", "127.0.0.1:9"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let logged = text(&out.stderr);
    assert!(
        logged
            .contains("INTAKE_LISTN is not a setting and is ignored: did you mean INTAKE_LISTEN?"),
        "{logged}"
    );
}

/// `check` pings the Redis that `redis_url` names: `ok` for this machine's, `FAILED`
/// (exit 1) for a closed port, the password never printed.
#[test]
fn check_pings_redis_when_one_is_configured() {
    let dir = tempfile::tempdir().unwrap();
    let url =
        std::env::var("INTAKE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let up = run(intake(dir.path())
        .arg("check")
        .env("INTAKE_REDIS_URL", &url));
    let said = text(&up.stdout);
    assert!(up.status.success(), "{said}");
    assert!(
        said.contains("redis (redis://") && said.contains("): ok"),
        "{said}"
    );

    let closed = format!("redis://:hunter2@127.0.0.1:{}", free_port());
    let down = run(intake(dir.path())
        .arg("check")
        .env("INTAKE_REDIS_URL", closed));
    let said = text(&down.stdout);
    assert_eq!(down.status.code(), Some(1), "{said}");
    assert!(
        said.contains("redis (") && said.contains("FAILED"),
        "{said}"
    );
    assert!(!said.contains("hunter2"), "{said}");
}

/// A port nothing listens on now.

#[actix_web::test]
async fn serve_logs_the_request_id_and_stops_gracefully_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (child, base) = serve(dir.path(), &[("INTAKE_LOG_FORMAT", "json")]);
    let client = awc::Client::default();
    wait_until_up(&client, &base).await;
    let res = client
        .get(format!("{base}/v1/datasets/nope"))
        .insert_header(("x-request-id", "cli-trace-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);

    sigterm(&child);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "a clean exit on SIGTERM");
    let logs = text(&out.stderr);
    let request_lines: Vec<&str> = logs.lines().filter(|l| l.contains("cli-trace-1")).collect();
    assert!(!request_lines.is_empty(), "{logs}");
    for line in &request_lines {
        let json: serde_json::Value = serde_json::from_str(line).expect("JSON lines");
        let spans = json["spans"].as_array().expect("the span list");
        let ids: Vec<_> = spans.iter().map(|s| &s["request_id"]).collect();
        assert!(ids.iter().any(|id| *id == "cli-trace-1"), "{line}");
    }
    assert!(
        request_lines.iter().any(|l| l.contains("\"status\":404")),
        "{logs}"
    );
    // The request line names the dataset asked for, with a latency rounded to 0.1 ms.
    let served = request_lines
        .iter()
        .find(|l| l.contains("request served"))
        .expect("a request line");
    let json: serde_json::Value = serde_json::from_str(served).unwrap();
    let request = json["spans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "request")
        .expect("the request span");
    assert_eq!(request["dataset"], "nope", "{served}");
    let latency = json["fields"]["latency_ms"].as_f64().expect("a latency");
    assert!(
        ((latency * 10.0).round() - latency * 10.0).abs() < 1e-9,
        "{served}"
    );
    // Where the data is, said once at start-up.
    let file = dir.path().join("intake.db");
    assert!(
        logs.contains(&format!("its data is in {} (SQLite)", file.display())),
        "{logs}"
    );
    assert!(logs.contains("intake stopped"), "{logs}");
}

#[test]
fn import_streams_a_file_processes_it_and_says_how_it_went() {
    let dir = tempfile::tempdir().unwrap();
    // A dataset to import into, created through the API of a short-lived server.
    let created = actix_web::rt::System::new().block_on(create_exam_dataset(dir.path()));
    assert!(created, "the dataset was created");

    let good = example("data", "exam-results.xml");
    let out = run(intake(dir.path())
        .args(["import", "--dataset", "exam-results"])
        .arg(&good));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(report["status"], "completed");
    assert!(report["report"]["inserted"].as_u64() > Some(0), "{report}");
    assert!(
        text(&out.stderr).contains("(100%)"),
        "plain progress lines when piped"
    );

    let bad = example("data", "exam-results-invalid.xml");
    let out = run(intake(dir.path())
        .args(["import", "--dataset", "exam-results"])
        .arg(&bad));
    assert_eq!(out.status.code(), Some(1), "a rejected document");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(report["status"], "failed");

    let out = run(intake(dir.path())
        .args(["import", "--dataset", "nope"])
        .arg(&good));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no such dataset"),
        "{}",
        text(&out.stderr)
    );
}

/// `intake import` while an operator has paused imports says so instead of waiting in
/// silence, and Ctrl-C leaves the import queued.
#[actix_web::test]
async fn import_says_when_imports_are_paused() {
    let dir = tempfile::tempdir().unwrap();
    assert!(
        create_exam_dataset(dir.path()).await,
        "the dataset was created"
    );
    let (server, base) = serve(dir.path(), &[("INTAKE_LOG", "off")]);
    let client = awc::Client::default();
    wait_until_up(&client, &base).await;
    let res = client
        .post(format!("{base}/admin/workers/imports/pause"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    sigterm(&server);
    let _ = server.wait_with_output();

    let mut import = intake(dir.path())
        .args(["import", "--dataset", "exam-results"])
        .arg(example("data", "exam-results.xml"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Should it wait in silence, the test fails within a minute instead of hanging.
    let pid = import.id().to_string();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(60));
        let _ = Command::new("kill").args(["-KILL", &pid]).status();
    });
    let mut stderr = std::io::BufReader::new(import.stderr.take().unwrap());
    let mut said = String::new();
    while !said.contains("paused") {
        let mut line = String::new();
        let n = std::io::BufRead::read_line(&mut stderr, &mut line).unwrap();
        assert!(n > 0, "it ended without saying imports are paused: {said}");
        said.push_str(&line);
    }
    assert!(said.contains("/admin/workers/imports/resume"), "{said}");
    sigint(&import);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let status = import.wait().unwrap();
    assert_eq!(status.code(), Some(2), "{rest}");
    assert!(rest.contains("stays queued"), "{rest}");
}

async fn create_exam_dataset(dir: &Path) -> bool {
    let (child, base) = serve(dir, &[("INTAKE_LOG", "off")]);
    let client = awc::Client::default();
    wait_until_up(&client, &base).await;
    let contract: serde_json::Value =
        serde_json::from_slice(&std::fs::read(example("contracts", "exam-results.json")).unwrap())
            .unwrap();
    let body = serde_json::json!({"name": "exam-results", "contract": contract});
    let res = client
        .post(format!("{base}/v1/datasets"))
        .send_json(&body)
        .await
        .unwrap();
    sigterm(&child);
    let _ = child.wait_with_output();
    res.status() == 201
}

/// Creates the `big` dataset (an id and a value per row) and gives a CSV of `rows`
/// rows for it.
async fn big_dataset(client: &awc::Client, base: &str, rows: u32) -> String {
    let contract = r#"{"format": "csv", "fields": {"id": {"type": "string", "required": true},
        "value": {"type": "number", "required": true}}, "key": ["id"],
        "measures": {"value": "value"}, "merge": "last_wins", "on_invalid": "skip_record"}"#;
    let created = client
        .post(format!("{base}/v1/datasets"))
        .insert_header(("content-type", "application/json"))
        .send_body(format!(r#"{{"name": "big", "contract": {contract}}}"#))
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let mut csv = String::from("id,value\n");
    for i in 0..rows {
        csv.push_str(&format!("k{i},{i}\n"));
    }
    csv
}

#[actix_web::test]
async fn a_request_in_flight_at_sigterm_is_answered_before_the_process_exits() {
    let dir = tempfile::tempdir().unwrap();
    let (child, base) = serve(dir.path(), &[("INTAKE_LOG", "off")]);
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(120))
        .finish();
    wait_until_up(&client, &base).await;
    let csv = big_dataset(&client, &base, 100_000).await;
    let import = client
        .post(format!("{base}/v1/datasets/big/imports?wait=true"))
        .insert_header(("content-type", "text/csv"))
        .send_body(csv);
    let in_flight = actix_web::rt::spawn(async move {
        let mut res = import.await.unwrap();
        (res.status(), res.body().await.unwrap())
    });
    actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !in_flight.is_finished(),
        "still in flight when the signal comes"
    );
    sigterm(&child);
    let (status, body) = in_flight.await.unwrap();
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["status"], "completed",
        "finished within the grace period"
    );
    assert_eq!(answer["report"]["inserted"], 100_000);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
}

/// Two `intake serve` processes sharing one Redis enforce one limit: a caller's
/// bucket of 6 is spent whichever process answers. Needs this machine's Redis
/// (`INTAKE_TEST_REDIS_URL` overrides it); without it each process would limit alone
/// and allow 12, so the test fails rather than skips.
#[actix_web::test]
async fn two_processes_sharing_redis_enforce_one_limit() {
    let redis =
        std::env::var("INTAKE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let prefix = format!(
        "intake-test:cli-{}-{}:",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let env = [
        ("INTAKE_LOG", "off"),
        ("INTAKE_REDIS_URL", redis.as_str()),
        ("INTAKE_REDIS_PREFIX", prefix.as_str()),
        ("INTAKE_RATE_LIMIT_BURST", "6"),
        ("INTAKE_RATE_LIMIT_PER_SECOND", "0.05"),
    ];
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (first, first_base) = serve(one.path(), &env);
    let (second, second_base) = serve(two.path(), &env);
    let client = awc::Client::default();
    wait_until_up(&client, &first_base).await;
    wait_until_up(&client, &second_base).await;
    for base in [&first_base, &second_base] {
        let mut ready = client.get(format!("{base}/readyz")).send().await.unwrap();
        let body: serde_json::Value = ready.json().await.unwrap();
        assert_eq!(body["status"], "ready", "Redis is up for {base}: {body}");
    }
    let mut statuses = Vec::new();
    for i in 0..12 {
        let base = if i % 2 == 0 {
            &first_base
        } else {
            &second_base
        };
        let res = client
            .get(format!("{base}/v1/datasets"))
            .send()
            .await
            .unwrap();
        statuses.push(res.status().as_u16());
    }
    sigterm(&first);
    sigterm(&second);
    let _ = (first.wait_with_output(), second.wait_with_output());
    let allowed = statuses.iter().filter(|s| **s == 200).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((allowed, limited), (6, 6), "{statuses:?}");
    assert_eq!(
        &statuses[..6],
        &[200; 6],
        "the first six, across both processes"
    );
}

/// A token's text never reaches the logs, not even when it is wrong; the name of a
/// valid one is the `caller` of its request's log lines.
#[actix_web::test]
async fn tokens_never_reach_the_logs_but_the_caller_does() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("sh")
        .args([
            "-c",
            "printf %s cli-secret-token | sha256sum | cut -d' ' -f1",
        ])
        .output()
        .unwrap();
    let hash = text(&out.stdout).trim().to_owned();
    assert_eq!(hash.len(), 64, "sha256sum: {hash}");
    let tokens = format!("loader:{hash}:read,write");
    let (child, base) = serve(
        dir.path(),
        &[
            ("INTAKE_LOG_FORMAT", "json"),
            ("INTAKE_LOG", "debug"),
            ("INTAKE_AUTH_TOKENS", tokens.as_str()),
        ],
    );
    let client = awc::Client::default();
    wait_until_up(&client, &base).await;
    for token in ["cli-secret-token", "cli-wrong-guess"] {
        let res = client
            .get(format!("{base}/v1/datasets"))
            .insert_header(("authorization", format!("Bearer {token}")))
            .send()
            .await
            .unwrap();
        let expected = if token == "cli-secret-token" {
            200
        } else {
            401
        };
        assert_eq!(res.status().as_u16(), expected);
    }
    sigterm(&child);
    let out = child.wait_with_output().unwrap();
    let logs = text(&out.stderr);
    assert!(!logs.contains("cli-secret-token"), "{logs}");
    assert!(!logs.contains("cli-wrong-guess"), "{logs}");
    assert!(!logs.contains(&hash), "not even the hash: {logs}");
    assert!(logs.contains("\"caller\":\"loader\""), "{logs}");
}

/// What Ctrl-C in a terminal sends.
fn sigint(child: &Child) {
    let pid = child.id().to_string();
    let killed = Command::new("kill").args(["-INT", &pid]).status();
    assert!(killed.unwrap().success());
}

/// A server with no import worker, so `?wait=true` imports wait `wait` seconds, and
/// the customers dataset created.
async fn server_with_slow_requests(dir: &Path, wait: &str) -> (Child, String, awc::Client) {
    let env = [
        ("INTAKE_WORKERS", "0"),
        ("INTAKE_IMPORT_WAIT_SECONDS", wait),
        ("INTAKE_SHUTDOWN_GRACE_SECONDS", "60"),
    ];
    let (child, base) = serve(dir, &env);
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(120))
        .finish();
    wait_until_up(&client, &base).await;
    let contract: serde_json::Value =
        serde_json::from_slice(&std::fs::read(example("contracts", "customers.json")).unwrap())
            .unwrap();
    let created = client
        .post(format!("{base}/v1/datasets"))
        .send_json(&serde_json::json!({"name": "customers", "contract": contract}))
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    (child, base, client)
}

/// Waits until the server has received an import of `customers` (and so the slow
/// request is in flight, waiting for it).
async fn until_received(client: &awc::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut res = client
            .get(format!("{base}/v1/datasets/customers/imports"))
            .send()
            .await
            .unwrap();
        let body: serde_json::Value = res.json().await.unwrap();
        if body["imports"].as_array().is_some_and(|i| !i.is_empty()) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the import never arrived: {body}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A `?wait=true` import: in flight for as long as the server lets it wait.
fn slow_request(client: &awc::Client, base: &str) -> impl Future<Output = Option<u16>> + use<> {
    let req = client
        .post(format!("{base}/v1/datasets/customers/imports?wait=true"))
        .insert_header(("content-type", "text/csv"));
    let body = std::fs::read(example("data", "customers.csv")).unwrap();
    async move { req.send_body(body).await.ok().map(|r| r.status().as_u16()) }
}

#[actix_web::test]
async fn sigint_lets_requests_in_flight_finish() {
    let dir = tempfile::tempdir().unwrap();
    let (child, base, client) = server_with_slow_requests(dir.path(), "3").await;
    let in_flight = actix_web::rt::spawn(slow_request(&client, &base));
    until_received(&client, &base).await;
    sigint(&child);
    // The request finishes: `202` once its wait is over, not an empty reply.
    assert_eq!(in_flight.await.unwrap(), Some(202));
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "a clean exit on SIGINT");
    let logs = text(&out.stderr);
    assert!(logs.contains("stopping gracefully"), "{logs}");
    assert!(logs.contains("intake stopped"), "{logs}");
}

#[actix_web::test]
async fn a_second_sigint_stops_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, base, client) = server_with_slow_requests(dir.path(), "60").await;
    let in_flight = actix_web::rt::spawn(slow_request(&client, &base));
    until_received(&client, &base).await;
    sigint(&child);
    actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "still waiting for the request"
    );
    let second = Instant::now();
    sigint(&child);
    let deadline = Instant::now() + Duration::from_secs(15);
    while child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "a second SIGINT stops intake at once"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(second.elapsed() < Duration::from_secs(15));
    assert_eq!(in_flight.await.unwrap(), None, "the request was dropped");
}

/// Runs `intake serve` until it exits by itself or for 3 s, then stops it.
fn serve_briefly(command: &mut Command) -> Output {
    let child = command
        .arg("serve")
        .env("INTAKE_LISTEN", format!("127.0.0.1:{}", free_port()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut child = child;
    while Instant::now() < deadline && child.try_wait().unwrap().is_none() {
        std::thread::sleep(Duration::from_millis(50));
    }
    if child.try_wait().unwrap().is_none() {
        sigterm(&child);
    }
    child.wait_with_output().unwrap()
}

/// A password in a database or Redis URL never reaches the output or the logs of
/// `check`, `migrate` or `serve`: in the credentials, in the query string, or
/// unencoded so that the URL does not even parse.
#[test]
fn no_command_prints_a_password_whatever_the_url_form() {
    let dir = tempfile::tempdir().unwrap();
    let databases = [
        "postgres://postgres:s3cret@127.0.0.1:5432/intake_no_such_database",
        "postgres://postgres@127.0.0.1:5432/intake_no_such_database?password=s3cret&sslmode=bogus",
        "postgres://postgres@127.0.0.1:5432/intake_no_such_database?password=s3cret",
        "postgres://postgres:s3c?ret@127.0.0.1:5432/intake_no_such_database",
    ];
    let redis = [
        "redis://:s3cret@127.0.0.1:9",
        "redis://u:s3c?ret@127.0.0.1:9/0",
    ];
    let mut runs = Vec::new();
    for url in databases {
        for command in ["check", "migrate"] {
            let mut run = intake(dir.path());
            run.arg(command).env("INTAKE_DATABASE_URL", url);
            runs.push((format!("{command} {url}"), run));
        }
        let mut run = intake(dir.path());
        run.env("INTAKE_DATABASE_URL", url);
        runs.push((format!("serve {url}"), run));
    }
    for url in redis {
        let mut run = intake(dir.path());
        run.arg("check").env("INTAKE_REDIS_URL", url);
        runs.push((format!("check {url}"), run));
        let mut run = intake(dir.path());
        run.env("INTAKE_REDIS_URL", url);
        runs.push((format!("serve {url}"), run));
    }
    for (what, mut command) in runs {
        command
            .env("INTAKE_LOG", "debug")
            .env("INTAKE_LOG_FORMAT", "json");
        let out = if what.starts_with("serve") {
            serve_briefly(&mut command)
        } else {
            run(&mut command)
        };
        let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(
            !said.contains("s3c"),
            "{what} printed the password:\n{said}"
        );
        if what.starts_with("check") {
            assert!(
                said.contains("***"),
                "{what} says where the password was:\n{said}"
            );
        }
    }
}

/// An import's status, read over HTTP.
async fn import_status(client: &awc::Client, base: &str, id: &str) -> String {
    let mut res = client
        .get(format!("{base}/v1/datasets/big/imports/{id}"))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = res.json().await.unwrap();
    body["status"].as_str().unwrap_or_default().to_owned()
}

/// A server killed with SIGKILL in the middle of an import, started again on the same
/// SQLite file, takes the import back at once (its dead predecessor's lease would
/// otherwise hold it for a minute) and completes it.
#[actix_web::test]
async fn a_restart_after_sigkill_resumes_the_import_at_once() {
    let dir = tempfile::tempdir().unwrap();
    // Domain lines only: nothing reads the pipe until the end, so it must not fill.
    let env = [
        ("INTAKE_WORKERS", "1"),
        ("INTAKE_LOG", "warn,intake_domain=info"),
    ];
    let (mut first, base) = serve(dir.path(), &env);
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(60))
        .finish();
    wait_until_up(&client, &base).await;
    let csv = big_dataset(&client, &base, 200_000).await;
    let mut accepted = client
        .post(format!("{base}/v1/datasets/big/imports"))
        .insert_header(("content-type", "text/csv"))
        .send_body(csv)
        .await
        .unwrap();
    assert_eq!(accepted.status(), 202);
    let body: serde_json::Value = accepted.json().await.unwrap();
    let id = body["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    while import_status(&client, &base, &id).await != "processing" {
        assert!(Instant::now() < deadline, "the import never started");
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    first.kill().unwrap(); // SIGKILL: the lease stays behind, held by a dead process
    first.wait().unwrap();

    let (mut second, base) = serve(dir.path(), &env);
    // The log is read as it is written: the take-back is asserted when it happens, so
    // a slow import (a debug build on a busy CI machine) cannot pass for a late one.
    let (lines, logged) = std::sync::mpsc::channel();
    let stderr = second.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut all = String::new();
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = lines.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    // The dead process's lease lasts 60 s: taken back well before it lapses.
    let started = Instant::now();
    let took_back = loop {
        let left = Duration::from_secs(30).saturating_sub(started.elapsed());
        match logged.recv_timeout(left) {
            Ok(line)
                if line.contains("took back the imports of a worker whose process is gone") =>
            {
                break true;
            }
            Ok(_) => continue,
            Err(_) => break false,
        }
    };
    assert!(took_back, "the import was not taken back at once");
    wait_until_up(&client, &base).await;
    let deadline = Instant::now() + Duration::from_secs(600);
    while import_status(&client, &base, &id).await != "completed" {
        assert!(
            Instant::now() < deadline,
            "the resumed import never completed"
        );
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    sigterm(&second);
    assert!(second.wait().unwrap().success());
    reader.join().unwrap();
}

#[test]
fn replay_says_why_it_cannot_start() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/data/account-updates.json"
    );
    let nobody = format!("http://127.0.0.1:{}", free_port());
    let out = run(intake(dir.path()).args([
        "replay",
        fixture,
        "--dataset",
        "accounts",
        "--server",
        &nobody,
    ]));
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("cannot reach") && err.contains("intake serve"),
        "{err}"
    );

    let out = run(intake(dir.path())
        .args(["replay", fixture, "--dataset", "accounts"])
        .args(["--delay", "9..1ms"]));
    assert_eq!(out.status.code(), Some(2), "clap refuses it");
    assert!(
        text(&out.stderr).contains("--delay"),
        "{}",
        text(&out.stderr)
    );

    let not_json = dir.path().join("updates.csv");
    std::fs::write(&not_json, "id,version\na,1\n").unwrap();
    let out = run(intake(dir.path()).args(["replay"]).arg(&not_json).args([
        "--dataset",
        "accounts",
        "--server",
        &nobody,
    ]));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("expected a JSON array"),
        "{}",
        text(&out.stderr)
    );
}

/// `intake datasets`, `intake aggregate` and `intake records` talk to a running
/// server: tables for people, the server's JSON with `--json`, and the server's
/// problem (exit 2) when it refuses.
#[actix_web::test]
async fn the_command_line_reads_and_creates_through_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let (child, base) = serve(dir.path(), &[("INTAKE_LOG", "off")]);
    wait_until_up(&awc::Client::default(), &base).await;
    let remote = |args: &[&str]| {
        let mut command = intake(dir.path());
        command.args(args).env("INTAKE_SERVER", &base);
        run(&mut command)
    };
    let contract = example("contracts", "exam-results.json");
    let created = remote(&[
        "datasets",
        "create",
        "exam-results",
        "--contract",
        contract.to_str().unwrap(),
    ]);
    assert!(created.status.success(), "{}", text(&created.stderr));
    assert_eq!(
        text(&created.stdout).trim(),
        "created exam-results with contract version 1"
    );
    let again = remote(&[
        "datasets",
        "create",
        "exam-results",
        "--contract",
        contract.to_str().unwrap(),
    ]);
    assert_eq!(again.status.code(), Some(2));
    assert!(
        text(&again.stderr).contains("409"),
        "{}",
        text(&again.stderr)
    );

    let sample = example("data", "markr-sample-results.xml");
    let imported = run(intake(dir.path()).args([
        "import",
        sample.to_str().unwrap(),
        "--dataset",
        "exam-results",
    ]));
    assert!(imported.status.success(), "{}", text(&imported.stderr));

    let listed = text(&remote(&["datasets", "list"]).stdout);
    let lines: Vec<&str> = listed.lines().collect();
    assert!(lines[0].starts_with("NAME"), "{listed}");
    assert!(lines[1].starts_with("exam-results  1"), "{listed}");
    let shown = text(&remote(&["datasets", "show", "exam-results"]).stdout);
    assert!(shown.contains("records   81"), "{shown}");
    assert!(shown.contains("completed"), "{shown}");

    let aggregate = remote(&[
        "aggregate",
        "exam-results",
        "--measure",
        "percent",
        "--group-by",
        "test_id",
    ]);
    let table = text(&aggregate.stdout);
    assert!(aggregate.status.success(), "{}", text(&aggregate.stderr));
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        row,
        ["9863", "81", "50.80", "9.92", "30", "45", "50", "55", "75"],
        "{table}"
    );
    let json = remote(&[
        "aggregate",
        "exam-results",
        "-m",
        "percent",
        "-g",
        "test_id",
        "--json",
    ]);
    let answer: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(answer["groups"][0]["count"], 81);

    let records =
        text(&remote(&["records", "exam-results", "test_id=9863", "--limit", "2"]).stdout);
    let lines: Vec<&str> = records.lines().collect();
    assert_eq!(lines.len(), 4, "a header, two records, a count: {records}");
    assert!(lines[0].starts_with("KEY"), "{records}");
    assert!(lines[1].starts_with("9863/"), "{records}");
    assert_eq!(lines[3], "2 of 81 records", "{records}");

    let unknown = remote(&["aggregate", "nope", "--measure", "percent"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        text(&unknown.stderr).contains("404"),
        "{}",
        text(&unknown.stderr)
    );

    // A dataset without dimensions or measures shows its other fields.
    let customers = example("contracts", "customers.json");
    let created = remote(&[
        "datasets",
        "create",
        "customers",
        "--contract",
        customers.to_str().unwrap(),
    ]);
    assert!(created.status.success(), "{}", text(&created.stderr));
    let rows = example("data", "customers.csv");
    let imported =
        run(intake(dir.path()).args(["import", rows.to_str().unwrap(), "--dataset", "customers"]));
    assert!(imported.status.success(), "{}", text(&imported.stderr));
    let listed = remote(&[
        "records",
        "customers",
        "last_name=Hopper",
        "last_name=Dijkstra",
    ]);
    let table = text(&listed.stdout);
    let lines: Vec<&str> = table.lines().collect();
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        ["KEY", "email", "first_name", "id", "last_name", "phone"],
        "{table}"
    );
    assert!(lines[1].starts_with("c-003  grace@example.com"), "{table}");
    assert!(lines[2].contains("Dijkstra"), "{table}");
    assert_eq!(lines[3], "2 of 2 records", "{table}");
    let purged = remote(&["datasets", "delete", "customers", "--purge"]);
    assert!(purged.status.success(), "{}", text(&purged.stderr));

    let deleted = remote(&["datasets", "delete", "exam-results"]);
    assert!(deleted.status.success(), "{}", text(&deleted.stderr));
    assert_eq!(
        text(&deleted.stdout).trim(),
        "deleted exam-results: 81 records; its 1 documents kept in the vault (--purge removes them)"
    );
    let purged = remote(&["datasets", "delete", "exam-results", "--purge", "--json"]);
    let answer: serde_json::Value = serde_json::from_slice(&purged.stdout).unwrap();
    assert_eq!(answer["purged"], true, "{answer}");
    assert_eq!(
        text(&remote(&["datasets", "list"]).stdout).trim(),
        "no datasets"
    );

    sigterm(&child);
    let _ = child.wait_with_output();
}
