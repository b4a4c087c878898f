//! Deadlines over HTTP (DESIGN §11): `Request-Timeout` bounds the whole request. Past
//! it the answer is a `504` problem and the work is cancelled (a document still
//! arriving is not stored); `?wait=true` answers `202` with where to poll before the
//! deadline does; a malformed header is a `400`.

use std::time::{Duration, Instant};

use super::support::{Db, TestApp, spawn_app_with};

/// Sends the head of a CSV import of `Content-Length: 1000` with its first line, then
/// nothing more, and reads what the server answers meanwhile (raw HTTP/1.1: a client
/// library gives up on a connection whose body it has not finished sending).
fn stalled_import(base: &str, path: &str, timeout_ms: u32) -> String {
    use std::io::{Read as _, Write as _};
    let addr = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let first = "id,first_name,last_name,email,phone\n";
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: text/csv\r\n\
         Content-Length: 1000\r\nRequest-Timeout: {timeout_ms}\r\n\r\n{first}"
    );
    stream.write_all(head.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let mut buf = [0_u8; 4096];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&answer);
        if let Some((head, body)) = text.split_once("\r\n\r\n")
            && body.len() >= content_length(head)
        {
            break;
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

fn content_length(head: &str) -> usize {
    head.lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(usize::MAX)
}

pub async fn a_request_past_its_deadline_is_cancelled_with_a_504(db: Db) {
    let app = spawn_app_with(db, |s| s.workers = 0).await;
    super::run(&app, async {
        assert_eq!(
            app.create_example("customers", "customers.json")
                .await
                .status,
            201
        );
        let started = Instant::now();
        let base = app.base.clone();
        let raw = actix_web::rt::task::spawn_blocking(move || {
            stalled_import(&base, "/v1/datasets/customers/imports", 400)
        })
        .await
        .unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        let (head, body) = raw.split_once("\r\n\r\n").expect(&raw);
        assert!(head.starts_with("HTTP/1.1 504"), "{raw}");
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: application/problem+json"),
            "{head}"
        );
        assert!(
            head.to_ascii_lowercase().contains("x-request-id: "),
            "{head}"
        );
        let problem: serde_json::Value = serde_json::from_str(body).expect(body);
        assert_eq!(problem["code"], "timeout");
        assert!(
            problem["detail"].as_str().unwrap().contains("400 ms"),
            "{problem}"
        );
        assert!(problem["instance"].is_string(), "{problem}");
        let imports = app.get("/v1/datasets/customers/imports").await;
        assert_eq!(
            imports.body["imports"],
            serde_json::json!([]),
            "nothing stored"
        );

        // The deadline is capped and checked.
        let bad = app
            .get_with("/v1/datasets", ("request-timeout", "soon"))
            .await;
        let problem = bad.problem(400, "bad_request");
        assert_eq!(problem["errors"][0]["field"], "Request-Timeout");
        let fine = app
            .get_with("/v1/datasets", ("request-timeout", "5000"))
            .await;
        assert_eq!(fine.status, 200);

        // ?wait=true answers 202 with where to poll before the deadline; the import
        // stays received and queued (no worker runs here).
        let started = Instant::now();
        let res = app
            .client
            .post(app.url("/v1/datasets/customers/imports?wait=true"))
            .insert_header(("content-type", "text/csv"))
            .insert_header(("request-timeout", "1500"))
            .send_body(super::support::example("data", "customers.csv"))
            .await
            .unwrap();
        let queued = TestApp::answer(res).await;
        assert_eq!(queued.status, 202, "{}", queued.body);
        assert!(started.elapsed() < Duration::from_millis(1500));
        let location = queued.header("location").expect("where to poll").to_owned();
        assert_eq!(app.get(&location).await.body["status"], "received");
    })
    .await;
    app.stop().await;
}
