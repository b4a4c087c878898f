//! No spelling of a path reaches a protected handler without a token.
//!
//! The real application (`intake_actix_web_api::app`) runs with a bearer token
//! configured and ports that are mocks without expectations: a request that reached
//! any handler using a port would panic, which libFuzzer reports. Requests carry no
//! token, so every answer must be a refusal (`401`) or come from an open route
//! (health, readiness, the API documents) or a refusal before routing (`400`, `404`,
//! `405`, `406`); and a `200` must come from a path that, fully percent-decoded, is
//! an open route.
#![no_main]

use std::sync::Arc;
use std::time::Instant;

use actix_web::dev::Service as _;
use actix_web::http::StatusCode;
use actix_web::test::{TestRequest, init_service};
use intake_actix_web_api::auth::Token;
use intake_actix_web_api::{ApiState, Metrics, Settings, app};
use intake_domain::datasets::{DatasetPorts, DatasetService};
use intake_domain::ingest::{ImportService, IngestPorts, IngestSettings};
use intake_domain::ports::{
    MockAnalytics, MockClock, MockContractStore, MockDatasetStore, MockDocumentDecoder,
    MockImportQueue, MockImportVault, MockRecordStore, NoCache,
};
use libfuzzer_sys::fuzz_target;

/// The application, called on its own runtime: the status it answers, or `None` for
/// an answer that travelled as an error.
type App = Box<dyn Fn(actix_http::Request) -> Option<StatusCode>>;

fn state() -> Arc<ApiState> {
    let datasets = Arc::new(MockDatasetStore::new());
    let contracts = Arc::new(MockContractStore::new());
    let records = Arc::new(MockRecordStore::new());
    let ingest = IngestPorts {
        datasets: datasets.clone(),
        contracts: contracts.clone(),
        vault: Arc::new(MockImportVault::new()),
        queue: Arc::new(MockImportQueue::new()),
        records: records.clone(),
        decoder: Arc::new(MockDocumentDecoder::new()),
        clock: Arc::new(MockClock::new()),
    };
    let sha256 = "0".repeat(64);
    let token = Token::new("ops", &sha256, &["admin"]).expect("a token");
    Arc::new(ApiState {
        datasets: Arc::new(DatasetService::new(DatasetPorts {
            datasets,
            contracts,
            records,
            analytics: Arc::new(MockAnalytics::new()),
            cache: Arc::new(NoCache),
        })),
        imports: Arc::new(ImportService::new(ingest, IngestSettings::default())),
        dependencies: Vec::new(),
        rate_limiter: None,
        metrics: Arc::new(Metrics::new()),
        settings: Settings {
            tokens: vec![token],
            ..Settings::default()
        },
        started: Instant::now(),
    })
}

thread_local! {
    static APP: App = {
        let runtime = actix_web::rt::Runtime::new().expect("a runtime");
        let service = runtime.block_on(init_service(app(state())));
        Box::new(move |req| runtime.block_on(service.call(req)).ok().map(|r| r.status()))
    };
}

/// The path with every `%XX` decoded, when that is UTF-8.
fn decoded(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn is_open(path: &str) -> bool {
    ["/healthz", "/readyz", "/docs"].contains(&path)
        || path.starts_with("/docs/")
        || path.starts_with("/openapi/")
}

fuzz_target!(|data: &[u8]| {
    let Some((&choice, rest)) = data.split_first() else {
        return;
    };
    let Ok(path) = std::str::from_utf8(rest) else {
        return;
    };
    if !path.starts_with('/') || path.parse::<actix_web::http::Uri>().is_err() {
        return;
    }
    let method = ["GET", "HEAD", "POST", "PUT", "DELETE"][usize::from(choice % 5)];
    let req = TestRequest::default()
        .method(method.parse().expect("a method"))
        .uri(path)
        .to_request();
    let Some(status) = APP.with(|app| app(req)) else {
        return; // an answer travelling as an error: a refusal
    };
    if status.is_success() {
        // The path alone (no query, no fragment), decoded when it decodes.
        let bare = path.split(['?', '#']).next().unwrap_or_default();
        let plain = decoded(bare).unwrap_or_else(|| bare.to_owned());
        assert!(
            is_open(&plain),
            "{method} {path} ({plain}) answered {status} without a token"
        );
    }
    assert_ne!(status.as_u16(), 500, "{method} {path} failed");
});
