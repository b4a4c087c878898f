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
        // Reading a dataset needs `read`; deleting it, `admin`.
        let read = call(&app, "GET", "/v1/datasets/accounts", Some("reader-secret")).await;
        assert_eq!(read.status, 200, "{}", read.body);
        let refused = call(
            &app,
            "DELETE",
            "/v1/datasets/accounts",
            Some("writer-secret"),
        )
        .await;
        let problem = refused.problem(403, "forbidden");
        assert!(
            problem["detail"].as_str().unwrap().contains("admin"),
            "{problem}"
        );
        let spec = call(&app, "GET", "/openapi/v1.json", None).await;
        let security = &spec.body["paths"]["/v1/datasets/{dataset}"]["delete"]["security"];
        assert_eq!(security, &serde_json::json!([{"bearer": ["admin"]}]));
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
        // Nor is asking the console's session route whether a guess is a token.
        call(&app, "GET", "/v1/session", Some("another-guess"))
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
        s.redis_url = Some(format!("redis://127.0.0.1:{closed}").into());
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
        // The public body says what is down, never why (causes can name hosts).
        assert_eq!(ready.body["checks"]["redis"], "degraded", "{}", ready.body);
        assert!(redis.get("error").is_none(), "{}", ready.body);
        assert!(
            !ready.body.to_string().contains("127.0.0.1"),
            "{}",
            ready.body
        );
    })
    .await;
    app.stop().await;
}

/// `path` with the first letter of each literal segment percent-encoded, in upper
/// and lower case hex (`/%6detrics`, `/%6Detrics`), and with its last letter encoded
/// (`/metric%73`): spellings the router takes for the same route.
fn encoded_variants(path: &str) -> Vec<String> {
    let encode = |path: &str, last: bool, upper: bool| {
        let segments: Vec<String> = path
            .split('/')
            .map(|segment| {
                let letters: Vec<(usize, char)> = segment
                    .char_indices()
                    .filter(|(_, c)| c.is_ascii_alphabetic())
                    .collect();
                let chosen = if last {
                    letters.last()
                } else {
                    letters.first()
                };
                match chosen {
                    Some(&(i, c)) => {
                        let hex = if upper {
                            format!("%{:02X}", c as u32)
                        } else {
                            format!("%{:02x}", c as u32)
                        };
                        format!("{}{hex}{}", &segment[..i], &segment[i + 1..])
                    }
                    None => segment.to_owned(),
                }
            })
            .collect();
        segments.join("/")
    };
    vec![
        encode(path, false, false),
        encode(path, false, true),
        encode(path, true, false),
    ]
}

/// Every protected route of both API documents, spelled with percent-encoded
/// letters, needs the scope of the route it reaches: the scope is decided from the
/// matched route, never from the raw path (`/%6detrics` once let a read token read
/// the admin-only metrics). Answers keep the route's media type too.
pub async fn encoded_paths_need_the_scope_of_the_route_they_reach(db: Db) {
    let app = spawn_app_with(db, |s: &mut Settings| s.auth_tokens = tokens()).await;
    super::run(&app, async {
        let mut checked = 0;
        for document in ["/openapi/v1.json", "/openapi/v2.json"] {
            let spec = call(&app, "GET", document, None).await.body;
            for (path, item) in spec["paths"].as_object().unwrap() {
                let concrete = path
                    .replace("{dataset}", "accounts")
                    .replace("{import}", "0190f0a0-0000-7000-8000-000000000000")
                    .replace("{version}", "1")
                    .replace("{key}", "k")
                    .replace("{test_id}", "9863");
                for (method, operation) in item.as_object().unwrap() {
                    let Some(scopes) = operation["security"][0]["bearer"].as_array() else {
                        continue;
                    };
                    let scope = scopes[0].as_str().unwrap();
                    let method = method.to_ascii_uppercase();
                    for spelled in encoded_variants(&concrete) {
                        let none = call(&app, &method, &spelled, None).await;
                        assert_eq!(none.status, 401, "{method} {spelled}: {}", none.body);
                        let reader = call(&app, &method, &spelled, Some("reader-secret")).await;
                        if scope == "read" {
                            assert_ne!(reader.status, 401, "{method} {spelled}");
                            assert_ne!(reader.status, 403, "{method} {spelled}");
                        } else {
                            assert_eq!(reader.status, 403, "{method} {spelled}: {}", reader.body);
                        }
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 60, "every protected route was tried: {checked}");
        // The spellings reach the route: admin reads the metrics as OpenMetrics text,
        // whatever the Accept header (they are not negotiated).
        for spelled in ["/%6detrics", "/metric%73", "/%6D%65%74rics"] {
            let res = app
                .client
                .get(app.url(spelled))
                .insert_header(("authorization", "Bearer ops-secret"))
                .insert_header(("accept", "image/png"))
                .send()
                .await
                .unwrap();
            let answer = TestApp::answer(res).await;
            assert_eq!(answer.status, 200, "{spelled}");
            assert!(
                answer
                    .header("content-type")
                    .unwrap()
                    .contains("openmetrics")
            );
        }
    })
    .await;
    app.stop().await;
}
