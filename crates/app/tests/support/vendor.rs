//! A small vendor API on 127.0.0.1 for pull sources: records paged by cursor (its
//! "v1") or by page number with a renamed field (its "v2"), behind a bearer token,
//! with faults planned per page and a delay per page.
#![allow(dead_code, reason = "each test file uses its part")]

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

/// The token the vendor wants, as `Authorization: Bearer <TOKEN>`.
pub const TOKEN: &str = "vendor-s3cret-token";

/// Failures planned per page: a status and a `Retry-After` in seconds, each once.
type Faults = BTreeMap<u64, Vec<(u16, Option<u64>)>>;

/// The vendor's state.
#[derive(Default)]
pub struct Vendor {
    /// Records served.
    pub total: AtomicU64,
    /// Records per page.
    pub per_page: AtomicU64,
    /// Whether it speaks v2 (page numbers, `score` instead of `value`).
    pub v2: AtomicBool,
    /// Milliseconds before each page is answered.
    pub delay_ms: AtomicU64,
    /// Failures planned for a page (by its 0-based index), each answered once: a
    /// status and a `Retry-After` in seconds.
    pub faults: Mutex<Faults>,
    /// Pages answered with records, by index (a page fetched twice counts twice).
    pub served: Mutex<Vec<u64>>,
    /// Requests without the token.
    pub unauthorized: AtomicU64,
    /// Faults answered.
    pub faulted: AtomicU64,
    /// The export file answered whole.
    pub files: AtomicU64,
    /// The export file answered `304 Not Modified`.
    pub unchanged: AtomicU64,
}

impl Vendor {
    /// Plans `status` (with `Retry-After: retry_after` seconds) for the next request
    /// of page `index`.
    pub fn fail_once(&self, index: u64, status: u16, retry_after: Option<u64>) {
        let mut faults = self.faults.lock().unwrap();
        faults.entry(index).or_default().push((status, retry_after));
    }

    /// Pages answered with records so far.
    pub fn served(&self) -> Vec<u64> {
        self.served.lock().unwrap().clone()
    }
}

/// Record `i`: its id, group and value.
pub fn record(i: u64) -> (String, String, u64) {
    (format!("r{i:06}"), format!("g{}", i % 7), (i * 37) % 101)
}

async fn items(vendor: web::Data<Vendor>, req: HttpRequest) -> HttpResponse {
    let token = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    if token != Some(&format!("Bearer {TOKEN}")) {
        vendor.unauthorized.fetch_add(1, Ordering::SeqCst);
        return HttpResponse::Unauthorized().json(json!({"error": "bad token"}));
    }
    let query: BTreeMap<String, String> =
        web::Query::<BTreeMap<String, String>>::from_query(req.query_string())
            .map(web::Query::into_inner)
            .unwrap_or_default();
    let v2 = vendor.v2.load(Ordering::SeqCst);
    let per_page = vendor.per_page.load(Ordering::SeqCst).max(1);
    let index = if v2 {
        let page: u64 = query.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
        page.saturating_sub(1)
    } else {
        query
            .get("cursor")
            .and_then(|c| c.strip_prefix('p'))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let delay = vendor.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        actix_web::rt::time::sleep(Duration::from_millis(delay)).await;
    }
    let fault = vendor
        .faults
        .lock()
        .unwrap()
        .get_mut(&index)
        .and_then(Vec::pop);
    if let Some((status, retry_after)) = fault {
        vendor.faulted.fetch_add(1, Ordering::SeqCst);
        let status = actix_web::http::StatusCode::from_u16(status).unwrap();
        let mut answer = HttpResponse::build(status);
        if let Some(seconds) = retry_after {
            answer.insert_header(("retry-after", seconds.to_string()));
        }
        return answer.json(json!({"error": "planned fault"}));
    }
    let total = vendor.total.load(Ordering::SeqCst);
    let from = index * per_page;
    let to = (from + per_page).min(total);
    let records: Vec<Value> = (from..to.max(from))
        .map(|i| {
            let (id, group, value) = record(i);
            if v2 {
                json!({"id": id, "group": group, "score": value})
            } else {
                json!({"id": id, "group": group, "value": value})
            }
        })
        .collect();
    vendor.served.lock().unwrap().push(index);
    if v2 {
        HttpResponse::Ok().json(json!({"data": {"items": records}}))
    } else {
        let next = (to < total).then(|| format!("p{}", index + 1));
        HttpResponse::Ok().json(json!({"data": {"items": records}, "meta": {"next": next}}))
    }
}

/// The export: every record as CSV, with an `ETag` that changes with the record count;
/// `If-None-Match` with that tag is a `304`.
async fn export(vendor: web::Data<Vendor>, req: HttpRequest) -> HttpResponse {
    let total = vendor.total.load(Ordering::SeqCst);
    let tag = format!("\"export-{total}\"");
    let asked = req
        .headers()
        .get("if-none-match")
        .and_then(|v| v.to_str().ok());
    if asked == Some(tag.as_str()) {
        vendor.unchanged.fetch_add(1, Ordering::SeqCst);
        return HttpResponse::NotModified()
            .insert_header(("etag", tag))
            .finish();
    }
    vendor.files.fetch_add(1, Ordering::SeqCst);
    let mut csv = String::from("id,group,value\n");
    for i in 0..total {
        let (id, group, value) = record(i);
        csv.push_str(&format!("{id},{group},{value}\n"));
    }
    HttpResponse::Ok()
        .content_type("text/csv")
        .insert_header(("etag", tag))
        .body(csv)
}

/// Starts the vendor with `total` records in pages of `per_page`; gives the URL of
/// its items (its export is `/export.csv` beside them) and its state.
pub fn start_vendor(total: u64, per_page: u64) -> (String, web::Data<Vendor>) {
    let state = web::Data::new(Vendor::default());
    state.total.store(total, Ordering::SeqCst);
    state.per_page.store(per_page, Ordering::SeqCst);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let data = state.clone();
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(data.clone())
            .route("/items", web::get().to(items))
            .route("/export.csv", web::get().to(export))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    actix_web::rt::spawn(server);
    (format!("http://127.0.0.1:{port}/items"), state)
}
