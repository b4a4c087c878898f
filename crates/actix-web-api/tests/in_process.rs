//! The API in process over mocked ports: each kind of error becomes the problem
//! document clients are promised, internal causes never leave the server, and the
//! request id is echoed and quoted.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::sync::Arc;
use std::time::Instant;

use actix_web::test::{TestRequest, call_service, init_service, read_body};
use intake_actix_web_api::{ApiState, Metrics, Settings, app};
use intake_domain::datasets::{DatasetPorts, DatasetService};
use intake_domain::delivery::{DeliveryPorts, DeliveryService, DeliverySettings};
use intake_domain::ingest::{ImportService, IngestPorts, IngestSettings};
use intake_domain::ports::{
    CatalogError, MockClock, MockContractStore, MockDatasetStore, MockDeliveryQueue,
    MockDocumentDecoder, MockImportQueue, MockImportVault, MockRecordStore, MockSubscriptionStore,
    MockWebhookSender,
};
use serde_json::{Value, json};

/// The API over a dataset store that answers every look-up with `answer`.
fn state(answer: fn() -> CatalogError) -> Arc<ApiState> {
    let mut datasets = MockDatasetStore::new();
    datasets.expect_get().returning(move |_| Err(answer()));
    let datasets: Arc<MockDatasetStore> = Arc::new(datasets);
    let contracts = Arc::new(MockContractStore::new());
    let records = Arc::new(MockRecordStore::new());
    let datasets_for_callbacks = datasets.clone();
    let ingest = IngestPorts {
        datasets: datasets.clone(),
        contracts: contracts.clone(),
        vault: Arc::new(MockImportVault::new()),
        queue: Arc::new(MockImportQueue::new()),
        records: records.clone(),
        decoder: Arc::new(MockDocumentDecoder::new()),
        clock: Arc::new(MockClock::new()),
    };
    let datasets_service = Arc::new(DatasetService::new(DatasetPorts {
        datasets,
        contracts,
        records,
        analytics: Arc::new(intake_domain::ports::MockAnalytics::new()),
        cache: Arc::new(intake_domain::ports::NoCache),
    }));
    let sources = Arc::new(intake_domain::sources::SourceService::new(
        intake_domain::sources::SourcePorts {
            store: Arc::new(intake_domain::ports::MockSourceStore::new()),
            datasets: datasets_for_callbacks.clone(),
            contracts: Arc::new(MockContractStore::new()),
            adapters: Vec::new(),
            clock: Arc::new(MockClock::new()),
        },
        intake_domain::sources::SourceSettings::default(),
    ));
    let imports = Arc::new(ImportService::new(ingest, IngestSettings::default()));
    let jobs = Arc::new(intake_domain::jobs::JobService::new(
        intake_domain::jobs::JobPorts {
            store: Arc::new(intake_domain::ports::MockJobStore::new()),
            rollups: Arc::new(intake_domain::ports::MockRollupStore::new()),
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
        deliveries: Arc::new(DeliveryService::new(
            DeliveryPorts {
                subscriptions: Arc::new(MockSubscriptionStore::new()),
                queue: Arc::new(MockDeliveryQueue::new()),
                sender: Arc::new(MockWebhookSender::new()),
                clock: Arc::new(MockClock::new()),
            },
            DeliverySettings::default(),
        )),
        callbacks: Arc::new(intake_domain::callbacks::CallbackListings::new(
            Arc::new(intake_domain::ports::MockCallbackTimers::new()),
            datasets_for_callbacks.clone(),
        )),
        sources,
        dependencies: Vec::new(),
        rate_limiter: None,
        metrics: Arc::new(Metrics::new()),
        settings: Settings::default(),
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

async fn call(state: Arc<ApiState>, req: TestRequest) -> (u16, Option<String>, Value) {
    let service = init_service(app(state)).await;
    let res = call_service(&service, req.to_request()).await;
    let status = res.status().as_u16();
    let id = res
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = read_body(res).await;
    (
        status,
        id,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

#[actix_web::test]
async fn an_unknown_dataset_is_a_404_problem_quoting_the_request_id() {
    let req = TestRequest::get()
        .uri("/v1/datasets/missing")
        .insert_header(("x-request-id", "abc-123"));
    let (status, id, body) = call(state(|| CatalogError::NotFound), req).await;
    assert_eq!((status, id.as_deref()), (404, Some("abc-123")));
    assert_eq!(
        body,
        json!({"type": "urn:intake:problem:not_found", "title": "Not Found", "status": 404,
               "detail": "no such dataset", "instance": "abc-123", "code": "not_found"})
    );
}

#[actix_web::test]
async fn an_internal_failure_is_a_500_that_leaks_nothing() {
    let failing = || CatalogError::Unexpected(anyhow::anyhow!("password=hunter2 refused"));
    let req = TestRequest::get().uri("/v1/datasets/any");
    let (status, id, body) = call(state(failing), req).await;
    assert_eq!(status, 500);
    assert_eq!(body["detail"], "internal error");
    assert_eq!(body["code"], "internal");
    assert!(!body.to_string().contains("hunter2"));
    assert_eq!(
        body["instance"].as_str(),
        id.as_deref(),
        "a generated id is quoted too"
    );
}

#[actix_web::test]
async fn malformed_requests_are_400s_naming_the_field() {
    let cases = [
        (TestRequest::get().uri("/v1/datasets/Bad_Name"), "dataset"),
        (
            TestRequest::post()
                .uri("/v1/datasets")
                .insert_header(("content-type", "application/json"))
                .set_payload(r#"{"name": "ok", "contract": {}, "extra": 1}"#),
            "",
        ),
        (
            TestRequest::get().uri("/v1/datasets/ok/imports?limit=5000"),
            "limit",
        ),
        (
            TestRequest::get().uri("/v1/datasets/ok/contracts/zero"),
            "version",
        ),
    ];
    for (req, field) in cases {
        let (status, _, body) = call(state(|| CatalogError::NotFound), req).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["code"], "bad_request");
        if !field.is_empty() {
            assert_eq!(body["errors"][0]["field"], field, "{body}");
        }
    }
}

#[actix_web::test]
async fn an_unknown_route_is_a_404_problem() {
    let req = TestRequest::delete().uri("/v1/nothing");
    let (status, _, body) = call(state(|| CatalogError::NotFound), req).await;
    assert_eq!(status, 404);
    assert_eq!(body["detail"], "no route for DELETE /v1/nothing");
}

#[test]
fn the_openapi_document_describes_every_route() {
    use utoipa::OpenApi as _;
    let doc = serde_json::to_value(intake_actix_web_api::openapi::ApiDoc::openapi()).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    let operations: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(operations, 58, "{:?}", paths.keys().collect::<Vec<_>>());
    let problem = &doc["components"]["schemas"]["Problem"]["properties"];
    for field in [
        "type", "title", "status", "detail", "instance", "code", "errors",
    ] {
        assert!(problem[field].is_object(), "Problem.{field}");
    }
}

#[actix_web::test]
async fn a_known_route_with_another_method_is_a_405_problem() {
    let req = TestRequest::delete().uri("/v1/datasets");
    let (status, _, body) = call(state(|| CatalogError::NotFound), req).await;
    assert_eq!(status, 405);
    assert_eq!(body["code"], "method_not_allowed");
    assert_eq!(
        body["detail"],
        "/v1/datasets does not take DELETE; it takes GET, HEAD, POST"
    );
}

/// A limiter that has spent the bucket answers `429` with when to retry, and the
/// public routes are not counted.
#[actix_web::test]
async fn a_spent_rate_limit_is_a_429_with_when_to_retry() {
    use intake_domain::ports::{MockRateLimiter, RateDecision, RateLimit};
    let mut limiter = MockRateLimiter::new();
    limiter.expect_acquire().times(1).returning(|key, l| {
        assert!(key.starts_with("ip:"), "{key}");
        Ok(RateDecision {
            allowed: false,
            limit: l.burst,
            remaining: 0,
            retry_after: std::time::Duration::from_millis(1500),
            reset: std::time::Duration::from_secs(20),
        })
    });
    let mut state = Arc::into_inner(state(|| CatalogError::NotFound)).unwrap();
    state.rate_limiter = Some(Arc::new(limiter));
    state.settings.rate_limit = Some(RateLimit::new(10, 0.5).unwrap());
    let service = init_service(app(Arc::new(state))).await;
    let req = TestRequest::get()
        .uri("/v1/datasets")
        .peer_addr("127.0.0.1:4000".parse().unwrap());
    let res = call_service(&service, req.to_request()).await;
    assert_eq!(res.status().as_u16(), 429);
    let header = |name: &str| {
        res.headers()
            .get(name)
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(header("retry-after"), "2");
    assert_eq!(header("ratelimit-limit"), "10");
    assert_eq!(header("ratelimit-remaining"), "0");
    assert_eq!(header("ratelimit-reset"), "20");
    assert_eq!(header("content-type"), "application/problem+json");
    let body: Value = serde_json::from_slice(&read_body(res).await).unwrap();
    assert_eq!(body["code"], "too_many_requests");
    // Health is never limited (the mock allows one call only).
    let health = call_service(&service, TestRequest::get().uri("/healthz").to_request()).await;
    assert_eq!(health.status().as_u16(), 200);
}
