//! A webhook receiver on 127.0.0.1, on the test's actix system: it verifies each
//! signature with the `standardwebhooks` crate, records what it got, and fails on
//! demand (the first attempt at some events, a share of all requests, or everything
//! while it is "down").
#![allow(dead_code, reason = "each test file uses its part")]

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

/// One webhook as the receiver got it.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: BTreeMap<String, String>,
    pub body: String,
    pub verified: bool,
}

impl Received {
    pub fn id(&self) -> &str {
        self.headers
            .get("webhook-id")
            .map(String::as_str)
            .unwrap_or_default()
    }
}

/// What the receiver does and got.
#[derive(Default)]
pub struct Receiver {
    pub secret: Mutex<Option<String>>,
    pub got: Mutex<Vec<Received>>,
    /// While set, every request is answered 500 (an outage).
    pub down: AtomicBool,
    /// Answer 503 to the first attempt at every third event (by id).
    pub flaky_first: AtomicBool,
    /// Answer 503 to this share (in percent) of requests, spread by request number.
    pub fail_percent: AtomicU32,
    requests: AtomicU64,
}

impl Receiver {
    pub fn set_secret(&self, secret: &str) {
        *self.secret.lock().unwrap() = Some(secret.to_owned());
    }

    pub fn got(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}

async fn receive(req: HttpRequest, body: web::Bytes, state: web::Data<Receiver>) -> HttpResponse {
    let mut headers = http::HeaderMap::new();
    let mut seen = BTreeMap::new();
    for (name, value) in req.headers() {
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(name.as_str().as_bytes()),
            http::HeaderValue::from_bytes(value.as_bytes()),
        ) {
            headers.insert(n, v);
        }
        seen.insert(
            name.as_str().to_owned(),
            value.to_str().unwrap_or_default().to_owned(),
        );
    }
    let secret = state.secret.lock().unwrap().clone().unwrap_or_default();
    let verified = standardwebhooks::Webhook::new(&secret)
        .and_then(|w| w.verify(&body, &headers))
        .is_ok();
    let n = state.requests.fetch_add(1, Ordering::SeqCst);
    let id = seen.get("webhook-id").cloned().unwrap_or_default();
    let first_attempt = {
        let mut got = state.got.lock().unwrap();
        let first = !got.iter().any(|r| r.id() == id);
        got.push(Received {
            headers: seen,
            body: String::from_utf8_lossy(&body).into_owned(),
            verified,
        });
        first
    };
    if state.down.load(Ordering::SeqCst) {
        return HttpResponse::InternalServerError().body("down");
    }
    let flaky = state.flaky_first.load(Ordering::SeqCst)
        && first_attempt
        && id.bytes().map(u32::from).sum::<u32>() % 3 == 0;
    // A multiplicative hash spreads the failures over request numbers.
    let share = u64::from(state.fail_percent.load(Ordering::SeqCst));
    let unlucky = (n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) % 100 < share;
    if flaky || unlucky {
        return HttpResponse::ServiceUnavailable()
            .insert_header(("retry-after", "0"))
            .body("busy, try again");
    }
    HttpResponse::NoContent().finish()
}

/// Starts a receiver: its URL (`…/hook`) and its state.
pub fn start_receiver() -> (String, web::Data<Receiver>) {
    let state = web::Data::new(Receiver::default());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let data = state.clone();
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(data.clone())
            .route("/hook", web::post().to(receive))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    actix_web::rt::spawn(server);
    (format!("http://127.0.0.1:{port}/hook"), state)
}

/// Hands what was captured to the `standardwebhooks` package from PyPI. Without it
/// the check is skipped, unless the run requires it (CI installs it).
pub fn verify_independently(got: &[Received], secret: &str) {
    let has_verifier = std::process::Command::new("python3")
        .args(["-c", "import standardwebhooks"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_verifier {
        assert!(
            std::env::var_os("INTAKE_REQUIRE_SERVICES").is_none(),
            "the standardwebhooks package (pip install standardwebhooks) is required here"
        );
        eprintln!("skipping the independent check: pip install standardwebhooks to run it");
        return;
    }
    let capture: Vec<Value> = got
        .iter()
        .map(|r| json!({"headers": r.headers, "body": r.body}))
        .collect();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), serde_json::to_vec(&capture).unwrap()).unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/verify_webhooks.py"
    );
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(file.path())
        .arg(secret)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "standardwebhooks refused a signature: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
