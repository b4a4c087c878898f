//! What probing the running service as an attacker or an unlucky operator found
//! (issue 13), each kept as a regression case: slow uploads that once held the
//! database pool, and a database outage that once answered `500` after 10 s.

use std::io::Write as _;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use intake_app::settings::Settings;

use super::support::{Db, TestApp, example, spawn_app_with};

/// A client that sends the headers of an import and a few bytes of its body, then
/// nothing: the body never finishes while the socket stays open.
fn stalled_upload(app: &TestApp) -> TcpStream {
    let address = app.base.trim_start_matches("http://");
    let mut socket = TcpStream::connect(address).expect("connected");
    let head = format!(
        "POST /v1/datasets/customers/imports HTTP/1.1\r\nHost: {address}\r\n\
         Content-Type: text/csv\r\nContent-Length: 900000\r\n\r\nid,first_name"
    );
    socket.write_all(head.as_bytes()).expect("sent");
    socket
}

async fn small_import(app: &TestApp) -> super::support::Answer {
    app.import("customers", "text/csv", example("data", "customers.csv"))
        .await
}

/// Three times as many stalled uploads as the pool has connections: listing datasets
/// still answers within a second and a small import completes. Beyond
/// `max_concurrent_uploads`, an upload is a `503` with `Retry-After`, and once the
/// stalled clients go away, uploads are taken again.
pub async fn stalled_uploads_never_starve_requests_or_workers(db: Db) {
    let app = spawn_app_with(db, |s: &mut Settings| {
        s.database_max_connections = 4;
        s.max_concurrent_uploads = 16;
    })
    .await;
    super::run(&app, async {
        assert_eq!(
            app.create_example("customers", "customers.json")
                .await
                .status,
            201
        );
        let mut stalled: Vec<TcpStream> = (0..12).map(|_| stalled_upload(&app)).collect();
        actix_web::rt::time::sleep(Duration::from_millis(500)).await;

        let asked = Instant::now();
        let list = app.get("/v1/datasets").await;
        assert_eq!(list.status, 200, "{}", list.body);
        assert!(
            asked.elapsed() < Duration::from_secs(1),
            "listing took {:?} beside 12 stalled uploads",
            asked.elapsed()
        );
        let imported = small_import(&app).await;
        assert_eq!(imported.status, 200, "{}", imported.body);
        assert_eq!(imported.body["status"], "completed", "{}", imported.body);

        // 12 stalled and 4 more: every upload slot is taken.
        stalled.extend((0..4).map(|_| stalled_upload(&app)));
        actix_web::rt::time::sleep(Duration::from_millis(500)).await;
        let refused = small_import(&app).await;
        let problem = refused.problem(503, "unavailable");
        assert!(
            problem["detail"].as_str().unwrap().contains("16 uploads"),
            "{problem}"
        );
        assert_eq!(refused.header("retry-after"), Some("2"));

        drop(stalled);
        let mut answer = small_import(&app).await;
        for _ in 0..50 {
            if answer.status != 503 {
                break;
            }
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
            answer = small_import(&app).await;
        }
        assert!(
            answer.status == 200,
            "the slots are free again: {} {}",
            answer.status,
            answer.body
        );
    })
    .await;
    app.stop().await;
}

/// A TCP proxy in front of PostgreSQL that the test can cut, as an outage would:
/// [`Outage::cut`] breaks every connection through it and refuses new ones.
struct Outage {
    address: std::net::SocketAddr,
    open: std::sync::Arc<std::sync::Mutex<Vec<TcpStream>>>,
    accepting: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Outage {
    fn in_front_of(upstream: &str) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bound");
        let address = listener.local_addr().expect("address");
        let open = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let accepting = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (upstream, sockets, running) = (upstream.to_owned(), open.clone(), accepting.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if !running.load(std::sync::atomic::Ordering::SeqCst) {
                    break; // the listener is dropped: connections are refused
                }
                let (Ok(client), Ok(server)) = (client, TcpStream::connect(&upstream)) else {
                    continue;
                };
                let pairs = [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server.try_clone().unwrap(), client.try_clone().unwrap()),
                ];
                sockets.lock().unwrap().extend([client, server]);
                for (mut from, mut to) in pairs {
                    std::thread::spawn(move || std::io::copy(&mut from, &mut to));
                }
            }
        });
        Self {
            address,
            open,
            accepting,
        }
    }

    fn cut(&self) {
        self.accepting
            .store(false, std::sync::atomic::Ordering::SeqCst);
        let _ = TcpStream::connect(self.address); // wakes the accepting thread
        for socket in self.open.lock().unwrap().drain(..) {
            let _ = socket.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// The PostgreSQL URL with its host and port replaced by `address`.
fn authority(url: &str) -> std::ops::Range<usize> {
    let start = url
        .find('@')
        .map_or_else(|| url.find("://").unwrap() + 3, |at| at + 1);
    start..start + url[start..].find('/').unwrap_or(url.len() - start)
}

fn through(url: &str, address: std::net::SocketAddr) -> String {
    let at = authority(url);
    format!("{}{address}{}", &url[..at.start], &url[at.end..])
}

/// With PostgreSQL gone, a request answers `503` (code `unavailable`, with
/// `Retry-After`) within the acquire timeout, not `500` after 10 s.
pub async fn a_database_outage_is_a_quick_503() {
    let url = super::support::postgres_url();
    let upstream = url[authority(&url)].to_owned();
    let outage = Outage::in_front_of(&upstream);
    let app = spawn_app_with(Db::Postgres, |s: &mut Settings| {
        s.database_url = through(&url, outage.address).into();
        s.database_acquire_timeout_ms = 1_500;
    })
    .await;
    super::run(&app, async {
        assert_eq!(
            app.create_example("customers", "customers.json")
                .await
                .status,
            201
        );
        outage.cut();
        let imports = "/v1/datasets/customers/imports";
        let requests = [
            ("GET", "/v1/datasets"),
            ("GET", "/v1/datasets/customers"),
            ("GET", "/v2/datasets"),
            ("GET", imports),
            ("GET", "/v2/datasets/customers/imports"),
            ("POST", imports),
        ];
        for (method, path) in requests {
            let asked = Instant::now();
            let answer = if method == "POST" {
                app.import("customers", "text/csv", example("data", "customers.csv"))
                    .await
            } else {
                app.get(path).await
            };
            let problem = answer.problem(503, "unavailable");
            assert!(
                !problem["detail"].as_str().unwrap().contains("127.0.0.1"),
                "{problem}"
            );
            assert_eq!(answer.header("retry-after"), Some("2"));
            assert!(
                asked.elapsed() < Duration::from_secs(5),
                "{method} {path} took {:?}",
                asked.elapsed()
            );
        }
    })
    .await;
    app.stop().await;
}

/// A contract with more fields (or key parts, dimensions, measures) than the settings
/// allow is a `400` naming the limit and its setting, whether it creates a dataset,
/// is published or is tried in a dry run; nothing is stored.
pub async fn contracts_over_the_limits_are_refused_naming_the_limit(db: Db) {
    let app = spawn_app_with(db, |s: &mut Settings| s.max_contract_dimensions = 2).await;
    super::run(&app, async {
        let fields: serde_json::Map<String, serde_json::Value> = (0..300)
            .map(|i| {
                let spec = serde_json::json!({"path": format!("f{i}"), "type": "string", "required": true});
                (format!("f{i}"), spec)
            })
            .collect();
        let wide = serde_json::json!({"format": "ndjson", "fields": fields, "key": ["f0"],
            "merge": "last_wins", "on_invalid": "skip_record"});
        let refused = app
            .post_json("/v1/datasets", &serde_json::json!({"name": "wide", "contract": wide}))
            .await;
        let problem = refused.problem(400, "bad_request");
        assert_eq!(problem["errors"][0]["field"], "contract.fields", "{problem}");
        let message = problem["errors"][0]["message"].as_str().unwrap();
        assert!(
            message.contains("300 fields; at most 256") && message.contains("max_contract_fields"),
            "{message}"
        );
        app.get("/v1/datasets/wide").await.problem(404, "not_found");

        assert_eq!(app.create_example("customers", "customers.json").await.status, 201);
        let mut contract: serde_json::Value =
            serde_json::from_slice(&example("contracts", "customers.json")).unwrap();
        contract["dimensions"] = serde_json::json!(["first_name", "last_name", "email"]);
        let published = app
            .post_json("/v1/datasets/customers/contracts", &contract)
            .await;
        let problem = published.problem(400, "bad_request");
        assert_eq!(problem["errors"][0]["field"], "contract.dimensions", "{problem}");
    })
    .await;
    app.stop().await;
}

/// Sends raw bytes and reads the answer until the server closes the connection:
/// its status, headers (lower-case names) and body.
fn raw(app: &TestApp, request: &[u8]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    use std::io::Read as _;
    let address = app.base.trim_start_matches("http://");
    let mut socket = TcpStream::connect(address).expect("connected");
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // The server may answer and close before it has read everything.
    let _ = socket.write_all(request);
    let mut answer = Vec::new();
    let read = socket.read_to_end(&mut answer);
    let end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| {
            panic!(
                "a response head to {:?} in {:?} ({read:?})",
                String::from_utf8_lossy(&request[..request.len().min(60)]),
                String::from_utf8_lossy(&answer)
            )
        });
    let head = String::from_utf8_lossy(&answer[..end]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, answer[end + 4..].to_vec())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Requests the HTTP layer refuses before any route sees them (bad header bytes, too
/// many headers, a 100 KB URL, `Content-Length: -1`), and a known route asked with
/// another method, are problem documents like every other error; `405` says `Allow`,
/// and `HEAD` works wherever `GET` does.
pub async fn http_layer_refusals_are_problems(db: Db) {
    // The raw requests below block this test's runtime, where the workers run: a
    // worker caught mid-statement would hold its connection (and on SQLite the write
    // lock) until they finish. This case is about the HTTP layer, so it runs none.
    let app = spawn_app_with(db, |s| {
        s.workers = 0;
        s.delivery_workers = 0;
        s.callback_workers = 0;
        s.source_workers = 0;
    })
    .await;
    super::run(&app, async {
        // The server runs on threads of its own once started; the blocking sockets
        // below then cannot hold it up.
        assert_eq!(app.get("/healthz").await.status, 200);
        let many: String = (0..120).map(|i| format!("X-H{i}: v\r\n")).collect();
        let long = "a".repeat(100 * 1024);
        let cases: [(&str, Vec<u8>, u16, &str); 4] = [
            (
                "bad header bytes",
                b"GET /v1/datasets HTTP/1.1\r\nHost: x\r\nX-Bad: a\x01b\r\n\r\n".to_vec(),
                400,
                "bad_request",
            ),
            (
                "120 headers",
                format!("GET /v1/datasets HTTP/1.1\r\nHost: x\r\n{many}\r\n").into_bytes(),
                431,
                "request_header_fields_too_large",
            ),
            (
                "a 100 KB URL",
                format!("GET /v1/datasets?q={long} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes(),
                400,
                "bad_request",
            ),
            (
                "Content-Length: -1",
                b"POST /v1/datasets HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n".to_vec(),
                400,
                "bad_request",
            ),
        ];
        for (what, request, status, code) in cases {
            let (got, headers, body) = raw(&app, &request);
            assert_eq!(got, status, "{what}");
            assert_eq!(
                header(&headers, "content-type"),
                Some("application/problem+json"),
                "{what}"
            );
            let problem: serde_json::Value = serde_json::from_slice(&body)
                .unwrap_or_else(|e| panic!("{what}: {e}: {}", String::from_utf8_lossy(&body)));
            assert_eq!(problem["status"], status, "{what}");
            assert_eq!(problem["code"], code, "{what}");
        }

        let put = b"PUT /v1/datasets HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        let (status, headers, body) = raw(&app, put);
        assert_eq!(status, 405);
        assert_eq!(header(&headers, "allow"), Some("GET, HEAD, POST"));
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(problem["code"], "method_not_allowed", "{problem}");

        for path in ["/v1/datasets", "/healthz", "/openapi/v1.json", "/v2/datasets"] {
            let get = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let (status, _, body) = raw(&app, get.as_bytes());
            assert_eq!(status, 200, "GET {path}");
            let head = format!("HEAD {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let (status, headers, empty) = raw(&app, head.as_bytes());
            assert_eq!(status, 200, "HEAD {path}");
            assert!(empty.is_empty(), "HEAD {path} sends no body");
            assert_eq!(
                header(&headers, "content-length"),
                Some(body.len().to_string().as_str()),
                "HEAD {path} says the length GET sends"
            );
        }
    })
    .await;
    app.stop().await;
}
