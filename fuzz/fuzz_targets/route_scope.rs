//! No spelling of a path reaches a handler its caller may not use.
//!
//! The real application (`intake_actix_web_api::app`) runs with two tokens configured
//! (`reader`: read; `ops`: admin) over mock ports that answer every read ("not found",
//! or an empty list) and have no expectation for anything else: a request that
//! reached a handler writing anything, or `/metrics` (which reads the queue's depth),
//! would panic, which libFuzzer reports. Each input is sent without a token or with
//! the read token (the first byte chooses, with the method). A `2xx` without a token
//! must come from a path that, fully percent-decoded, is an open route; with the read
//! token, only from a `GET` or `HEAD`, never from the metrics.
#![no_main]

use std::sync::Arc;
use std::time::Instant;

use actix_web::dev::Service as _;
use actix_web::http::StatusCode;
use actix_web::test::{TestRequest, init_service};
use intake_actix_web_api::auth::Token;
use intake_actix_web_api::{ApiState, Metrics, Settings, app};
use intake_domain::callbacks::CallbackListings;
use intake_domain::datasets::{DatasetPorts, DatasetService};
use intake_domain::delivery::{DeliveryPorts, DeliveryService, DeliverySettings};
use intake_domain::ingest::{ImportService, IngestPorts, IngestSettings};
use intake_domain::ports::{
    AnalyticsError, CatalogError, DeliveryError, JobError, MockAnalytics, MockCallbackTimers,
    MockClock, MockContractStore, MockDatasetStore, MockDeliveryQueue, MockDocumentDecoder,
    MockImportQueue, MockImportVault, MockRecordStore, MockSourceStore, MockSubscriptionStore,
    MockWebhookSender, NoCache, SourceStoreError, StoreError, VaultError,
};
use intake_domain::sources::{SourcePorts, SourceService, SourceSettings};
use sha2::Digest as _;

/// The read token's text.
const READER: &str = "reader-secret";

fn sha256_hex(text: &str) -> String {
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
use libfuzzer_sys::fuzz_target;

/// The application, called on its own runtime: the status it answers, or `None` for
/// an answer that travelled as an error.
type App = Box<dyn Fn(actix_http::Request) -> Option<StatusCode>>;

fn state() -> Arc<ApiState> {
    let mut datasets = MockDatasetStore::new();
    datasets
        .expect_get()
        .returning(|_| Err(CatalogError::NotFound));
    datasets.expect_list().returning(|| Ok(Vec::new()));
    let mut contracts = MockContractStore::new();
    contracts
        .expect_get()
        .returning(|_, _| Err(CatalogError::NotFound));
    contracts
        .expect_list()
        .returning(|_| Err(CatalogError::NotFound));
    let mut records = MockRecordStore::new();
    records
        .expect_get()
        .returning(|_, _| Err(StoreError::NotFound));
    records
        .expect_list()
        .returning(|_, _| Err(StoreError::NotFound));
    records.expect_scan().returning(|_, _| Ok(Vec::new()));
    records
        .expect_history()
        .returning(|_, _, _| Err(StoreError::NotFound));
    records
        .expect_conflicts()
        .returning(|_, _, _| Ok(Vec::new()));
    let mut vault = MockImportVault::new();
    vault.expect_get().returning(|_| Err(VaultError::NotFound));
    vault.expect_open().returning(|_| Err(VaultError::NotFound));
    vault.expect_list().returning(|_, _, _| Ok(Vec::new()));
    vault
        .expect_list_before()
        .returning(|_, _, _| Ok(Vec::new()));
    let mut analytics = MockAnalytics::new();
    analytics
        .expect_aggregate()
        .returning(|_| Err(AnalyticsError::NotFound));
    analytics
        .expect_top()
        .returning(|_| Err(AnalyticsError::NotFound));
    let (datasets, contracts, records) =
        (Arc::new(datasets), Arc::new(contracts), Arc::new(records));
    let ingest = IngestPorts {
        datasets: datasets.clone(),
        contracts: contracts.clone(),
        vault: Arc::new(vault),
        queue: Arc::new(MockImportQueue::new()),
        records: records.clone(),
        decoder: Arc::new(MockDocumentDecoder::new()),
        clock: Arc::new(MockClock::new()),
    };
    // Subscriptions answer reads: none, or "not found".
    let mut subscriptions = MockSubscriptionStore::new();
    subscriptions.expect_list().returning(|_| Ok(Vec::new()));
    subscriptions
        .expect_get()
        .returning(|_, _| Err(DeliveryError::NotFound));
    let deliveries = DeliveryService::new(
        DeliveryPorts {
            subscriptions: Arc::new(subscriptions),
            queue: Arc::new(MockDeliveryQueue::new()),
            sender: Arc::new(MockWebhookSender::new()),
            clock: Arc::new(MockClock::new()),
        },
        DeliverySettings::default(),
    );
    // Sources answer: none, or "not found".
    let mut sources = MockSourceStore::new();
    sources.expect_list().returning(|_| Ok(Vec::new()));
    sources
        .expect_get()
        .returning(|_, _| Err(SourceStoreError::NotFound));
    sources
        .expect_delete()
        .returning(|_, _| Err(SourceStoreError::NotFound));
    sources
        .expect_schedule()
        .returning(|_, _, _, _| Err(SourceStoreError::NotFound));
    let sources = Arc::new(SourceService::new(
        SourcePorts {
            store: Arc::new(sources),
            datasets: datasets.clone(),
            contracts: Arc::new(MockContractStore::new()),
            adapters: Vec::new(),
            clock: Arc::new(MockClock::new()),
        },
        SourceSettings::default(),
    ));
    let tokens = vec![
        Token::new("reader", &sha256_hex(READER), &["read"]).expect("a token"),
        Token::new("ops", &"0".repeat(64), &["admin"]).expect("a token"),
    ];
    let datasets_service = Arc::new(DatasetService::new(DatasetPorts {
        datasets: datasets.clone(),
        contracts,
        records,
        analytics: Arc::new(analytics),
        cache: Arc::new(NoCache),
    }));
    // Every job route reaches a store that knows no job.
    let mut job_store = intake_domain::ports::MockJobStore::new();
    job_store
        .expect_create()
        .returning(|_| Err(JobError::NotFound));
    job_store
        .expect_get()
        .returning(|_, _| Err(JobError::NotFound));
    job_store.expect_list().returning(|_| Ok(Vec::new()));
    job_store
        .expect_act()
        .returning(|_, _, _| Err(JobError::NotFound));
    job_store
        .expect_restart()
        .returning(|_, _, _| Err(JobError::NotFound));
    let mut rollups = intake_domain::ports::MockRollupStore::new();
    rollups
        .expect_points()
        .returning(|_, _, _, _, _| Ok(Vec::new()));
    let imports = Arc::new(ImportService::new(ingest, IngestSettings::default()));
    let jobs = Arc::new(intake_domain::jobs::JobService::new(
        intake_domain::jobs::JobPorts {
            store: Arc::new(job_store),
            rollups: Arc::new(rollups),
            rebuilds: Arc::new(intake_domain::ports::MockRebuildStore::new()),
            imports: imports.clone(),
            sources: sources.clone(),
            datasets: datasets_service.clone(),
            clock: Arc::new(MockClock::new()),
        },
        intake_domain::jobs::JobSettings::default(),
    ));
    Arc::new(ApiState {
        datasets: datasets_service,
        jobs,
        imports,
        deliveries: Arc::new(deliveries),
        callbacks: Arc::new(CallbackListings::new(
            Arc::new(MockCallbackTimers::new()),
            datasets.clone(),
        )),
        sources,
        dependencies: Vec::new(),
        rate_limiter: None,
        metrics: Arc::new(Metrics::new()),
        settings: Settings {
            tokens,
            ..Settings::default()
        },
        started: Instant::now(),
        admin: admin_state(),
    })
}

/// The management API's state over mocks: no pause is ever read or written here.
fn admin_state() -> intake_actix_web_api::AdminState {
    struct Unchanging;
    impl intake_actix_web_api::Logging for Unchanging {
        fn recent_errors(&self) -> Vec<intake_actix_web_api::LoggedError> {
            Vec::new()
        }
        fn current(&self) -> String {
            "info".into()
        }
        fn set(&self, _: &str) -> Result<(), String> {
            Err("unchanging".into())
        }
    }
    intake_actix_web_api::AdminState {
        instance: "test".into(),
        config: serde_json::Value::Null,
        workers: Arc::new(intake_domain::work::WorkerControl::new(
            Arc::new(intake_domain::ports::MockPauseStore::new()),
            intake_domain::work::Wakeups::default(),
            Arc::new(MockClock::new()),
        )),
        log: Arc::new(Unchanging),
        backups: None,
    }
}

thread_local! {
    // Leaked: never dropped at exit, where actix's own thread-locals are gone already.
    static APP: &'static App = {
        let runtime = actix_web::rt::Runtime::new().expect("a runtime");
        let service = runtime.block_on(init_service(app(state())));
        let call: App = Box::new(move |req| runtime.block_on(service.call(req)).ok().map(|r| r.status()));
        Box::leak(Box::new(call))
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
    ["/healthz", "/readyz", "/docs", "/console", "/v1/session"].contains(&path)
        || path.starts_with("/docs/")
        || path.starts_with("/console/")
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
    let method = ["GET", "HEAD", "POST", "PUT", "DELETE"][usize::from((choice & 0x7f) % 5)];
    let reads = method == "GET" || method == "HEAD";
    let as_reader = choice & 0x80 != 0;
    let mut req = TestRequest::default()
        .method(method.parse().expect("a method"))
        .uri(path);
    if as_reader {
        req = req.insert_header(("authorization", format!("Bearer {READER}")));
    }
    let Some(status) = APP.with(|app| app(req.to_request())) else {
        return; // an answer travelling as an error: a refusal
    };
    if status.is_success() {
        // The path alone (no query, no fragment), decoded when it decodes.
        let bare = path.split(['?', '#']).next().unwrap_or_default();
        let plain = decoded(bare).unwrap_or_else(|| bare.to_owned());
        if as_reader {
            assert!(
                reads && !plain.starts_with("/metrics") && !plain.starts_with("/admin"),
                "{method} {path} ({plain}) answered {status} to the read token"
            );
        } else {
            assert!(
                reads && is_open(&plain),
                "{method} {path} ({plain}) answered {status} without a token"
            );
        }
    }
    assert_ne!(status.as_u16(), 500, "{method} {path} failed");
});
