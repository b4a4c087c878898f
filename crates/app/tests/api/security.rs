//! Bearer tokens and scopes (DESIGN §13) over HTTP: `401` without a valid token,
//! `403` without the scope, the public routes open, and the refusal to bind beyond
//! loopback when no token is configured.

use serde_json::Value;

use super::support::{Answer, Db, TestApp, example, spawn_app_with};
use intake_app::settings::{AuthTokens, Settings};

/// The hex SHA-256 of a token's text, as an operator configures it.
pub fn sha256_hex(text: &str) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Three tokens: `reader` (read), `writer` (read, write), `ops` (admin).
pub fn tokens() -> AuthTokens {
    AuthTokens::Text(format!(
        "reader:{}:read;writer:{}:read,write;ops:{}:admin",
        sha256_hex("reader-secret"),
        sha256_hex("writer-secret"),
        sha256_hex("ops-secret")
    ))
}

async fn call(app: &TestApp, method: &str, path: &str, token: Option<&str>) -> Answer {
    let mut req = app.client.request(method.parse().unwrap(), app.url(path));
    if let Some(token) = token {
        req = req.insert_header(("authorization", format!("Bearer {token}")));
    }
    let res = if method == "POST" && path == "/v1/datasets" {
        let contract: Value =
            serde_json::from_slice(&example("contracts", "accounts.json")).unwrap();
        req.send_json(&serde_json::json!({"name": "accounts", "contract": contract}))
            .await
    } else {
        req.send().await
    };
    TestApp::answer(res.expect("sent")).await
}

pub async fn tokens_and_scopes_guard_every_route(db: Db) {
    let app = spawn_app_with(db, |s: &mut Settings| s.auth_tokens = tokens()).await;
    super::run(&app, async {
        let none = call(&app, "GET", "/v1/datasets", None).await;
        let problem = none.problem(401, "unauthorized");
        assert!(problem["detail"].as_str().unwrap().contains("bearer token"));
        assert_eq!(
            none.header("www-authenticate"),
            Some("Bearer realm=\"intake\"")
        );
        let wrong = call(&app, "GET", "/v1/datasets", Some("reader-secreT")).await;
        wrong.problem(401, "unauthorized");
        let basic = app
            .client
            .get(app.url("/v1/datasets"))
            .insert_header(("authorization", "Basic cmVhZGVyOnNlY3JldA=="))
            .send()
            .await
            .unwrap();
        TestApp::answer(basic).await.problem(401, "unauthorized");

        let read = call(&app, "GET", "/v1/datasets", Some("reader-secret")).await;
        assert_eq!(read.status, 200, "{}", read.body);
        let refused = call(&app, "POST", "/v1/datasets", Some("reader-secret")).await;
        let problem = refused.problem(403, "forbidden");
        assert!(
            problem["detail"].as_str().unwrap().contains("write"),
            "{problem}"
        );
        let created = call(&app, "POST", "/v1/datasets", Some("writer-secret")).await;
        assert_eq!(created.status, 201, "{}", created.body);
        let markr = call(&app, "POST", "/import", None).await;
        markr.problem(401, "unauthorized");

        // Operations: metrics need admin; health, readiness and the documents are open.
        call(&app, "GET", "/metrics", Some("writer-secret"))
            .await
            .problem(403, "forbidden");
        let metrics = call(&app, "GET", "/metrics", Some("ops-secret")).await;
        assert_eq!(metrics.status, 200);
        let ops_reads = call(&app, "GET", "/v1/datasets/accounts", Some("ops-secret")).await;
        assert_eq!(ops_reads.status, 200, "admin includes read");
        for open in ["/healthz", "/readyz", "/openapi/v1.json"] {
            let answer = call(&app, "GET", open, None).await;
            assert_eq!(answer.status, 200, "{open}");
        }
        let spec = call(&app, "GET", "/openapi/v1.json", None).await;
        let security = &spec.body["paths"]["/v1/datasets"]["post"]["security"];
        assert_eq!(security, &serde_json::json!([{"bearer": ["write"]}]));
    })
    .await;
    app.stop().await;
}

/// With no token configured, an address beyond loopback is refused before anything
/// starts, with the reason.
pub async fn no_tokens_means_loopback_only() {
    let settings = Settings {
        listen: "0.0.0.0:0".into(),
        database_url: "sqlite://never-created.db".into(),
        ..Settings::default()
    };
    let e = intake_app::server::Application::build(&settings)
        .await
        .err()
        .expect("refused");
    let e = format!("{e:#}");
    assert!(
        e.contains("refusing to listen on 0.0.0.0:0: no auth tokens are configured"),
        "{e}"
    );
    assert!(!std::path::Path::new("never-created.db").exists());
}

fn header_number(answer: &Answer, name: &str) -> u64 {
    answer
        .header(name)
        .unwrap_or_else(|| panic!("{name} in {:?}", answer.headers))
        .parse()
        .unwrap()
}

/// Each token has its own bucket, and requests without a valid token share their
/// IP's: a spent bucket is a `429` problem with `Retry-After` and `RateLimit-*`.
pub async fn rate_limits_answer_429_per_caller(db: Db) {
    let app = spawn_app_with(db, |s: &mut Settings| {
        s.auth_tokens = tokens();
        s.rate_limit_burst = 3;
        s.rate_limit_per_second = 0.05;
    })
    .await;
    super::run(&app, async {
        for left in (0..3).rev() {
            let ok = call(&app, "GET", "/v1/datasets", Some("reader-secret")).await;
            assert_eq!(ok.status, 200, "{}", ok.body);
            assert_eq!(header_number(&ok, "ratelimit-limit"), 3);
            assert_eq!(header_number(&ok, "ratelimit-remaining"), left);
        }
        let refused = call(&app, "GET", "/v1/datasets", Some("reader-secret")).await;
        let problem = refused.problem(429, "too_many_requests");
        assert!(
            problem["detail"].as_str().unwrap().contains("retry in"),
            "{problem}"
        );
        let retry = header_number(&refused, "retry-after");
        assert!((1..=20).contains(&retry), "one token every 20 s: {retry}");
        assert_eq!(header_number(&refused, "ratelimit-remaining"), 0);
        assert!(header_number(&refused, "ratelimit-reset") > 40);

        let writer = call(&app, "GET", "/v1/datasets", Some("writer-secret")).await;
        assert_eq!(writer.status, 200, "another token, another bucket");
        // Guessing tokens is limited per IP.
        for _ in 0..3 {
            call(&app, "GET", "/v1/datasets", Some("guess"))
                .await
                .problem(401, "unauthorized");
        }
        call(&app, "GET", "/v1/datasets", Some("guess"))
            .await
            .problem(429, "too_many_requests");
        let health = call(&app, "GET", "/healthz", None).await;
        assert_eq!(health.status, 200, "health is never limited");
        assert!(health.header("ratelimit-limit").is_none());
    })
    .await;
    app.stop().await;
}

/// With Redis unreachable, limits still hold in the process, no request fails for
/// it, and `/readyz` says `degraded` (still `200`).
pub async fn without_redis_limits_hold_in_the_process_and_readiness_is_degraded() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let app = spawn_app_with(Db::Sqlite, |s: &mut Settings| {
        s.redis_url = Some(format!("redis://127.0.0.1:{closed}"));
        s.rate_limit_burst = 2;
        s.rate_limit_per_second = 0.05;
    })
    .await;
    super::run(&app, async {
        for _ in 0..2 {
            assert_eq!(app.get("/v1/datasets").await.status, 200);
        }
        app.get("/v1/datasets")
            .await
            .problem(429, "too_many_requests");
        let ready = app.get("/readyz").await;
        assert_eq!(ready.status, 200, "{}", ready.body);
        assert_eq!(ready.body["status"], "degraded", "{}", ready.body);
        let redis = ready.body["dependencies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"] == "redis")
            .expect("redis is listed");
        assert_eq!(redis["status"], "down");
    })
    .await;
    app.stop().await;
}
