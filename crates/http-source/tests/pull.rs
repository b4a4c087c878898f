//! The pull adapters against real HTTP servers on 127.0.0.1 (wiremock): each
//! pagination followed to its end, the auth header sent, incremental parameters,
//! conditional requests, and failures sorted into retries and refusals.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::time::Duration;

use intake_domain::ports::{ExternalSource, FetchRequest, Fetched, SourceError, Validators};
use intake_domain::sources::{Every, Incremental, Pagination, SourceKind, SourceSpec};
use intake_http_source::{HttpFileSource, JsonApiSource, Settings};
use serde_json::json;
use wiremock::matchers::{header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn local() -> Settings {
    Settings {
        allow_private: true,
        timeout: Duration::from_millis(500),
        ..Settings::default()
    }
}

fn spec(url: String, pagination: Option<Pagination>) -> SourceSpec {
    SourceSpec {
        name: "vendor".into(),
        kind: SourceKind::JsonApi,
        url,
        schedule: Every::of(Duration::from_secs(60)),
        records: None,
        pagination,
        auth: None,
        incremental: None,
        paused: false,
    }
}

fn request(spec: SourceSpec, records: &str) -> FetchRequest {
    FetchRequest {
        spec,
        cursor: None,
        since: None,
        records: records
            .split('.')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        validators: Validators::default(),
        auth: Some(("Authorization".into(), "Bearer t0ken".into())),
        max_bytes: 1 << 20,
    }
}

/// Follows a run to its end, giving each page's record count.
async fn run(source: &dyn ExternalSource, mut request: FetchRequest) -> Vec<u64> {
    let mut counts = Vec::new();
    loop {
        let Fetched::Page(page) = source.fetch(&request).await.expect("fetched") else {
            panic!("a page")
        };
        counts.push(page.records);
        match page.next {
            None => return counts,
            Some(next) => request.cursor = Some(next),
        }
        assert!(counts.len() < 10, "the run ends");
    }
}

fn items(from: usize, n: usize) -> Vec<serde_json::Value> {
    (from..from + n)
        .map(|i| json!({"id": i, "updated_at": format!("2026-12-0{}T00:00:00Z", 1 + i % 5)}))
        .collect()
}

#[tokio::test]
async fn cursor_pages_are_followed_with_the_auth_header_until_the_cursor_is_null() {
    let server = MockServer::start().await;
    let page = |items: Vec<serde_json::Value>, next: serde_json::Value| {
        ResponseTemplate::new(200)
            .set_body_json(json!({"data": {"items": items}, "meta": {"next": next}}))
    };
    Mock::given(method("GET"))
        .and(path("/items"))
        .and(header("authorization", "Bearer t0ken"))
        .and(query_param_is_missing("cursor"))
        .respond_with(page(items(0, 3), json!("c2")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(query_param("cursor", "c2"))
        .and(header("authorization", "Bearer t0ken"))
        .respond_with(page(items(3, 2), json!(null)))
        .expect(1)
        .mount(&server)
        .await;
    let cursor = Pagination::Cursor {
        cursor_param: "cursor".into(),
        next_cursor: "meta.next".into(),
    };
    let source = JsonApiSource::new(&local()).unwrap();
    let req = request(
        spec(format!("{}/items", server.uri()), Some(cursor)),
        "data.items",
    );
    assert_eq!(run(&source, req).await, [3, 2]);
}

#[tokio::test]
async fn numbered_pages_end_at_a_short_page_and_send_the_incremental_parameter() {
    let server = MockServer::start().await;
    for (n, count) in [(1, 2), (2, 2), (3, 1)] {
        Mock::given(method("GET"))
            .and(query_param("page", n.to_string()))
            .and(query_param("per_page", "2"))
            .and(query_param("updated_since", "2026-11-30T00:00:00Z"))
            .respond_with(ResponseTemplate::new(200).set_body_json(items(n * 10, count)))
            .expect(if n == 1 { 2 } else { 1 })
            .mount(&server)
            .await;
    }
    let mut s = spec(
        format!("{}/items", server.uri()),
        Some(Pagination::Page {
            page_param: "page".into(),
            size_param: Some("per_page".into()),
            size: 2,
        }),
    );
    s.incremental = Some(Incremental {
        param: "updated_since".into(),
        field: "updated_at".into(),
    });
    let source = JsonApiSource::new(&local()).unwrap();
    let mut req = request(s, "");
    req.since = Some("2026-11-30T00:00:00Z".into());
    assert_eq!(run(&source, req.clone()).await, [2, 2, 1]);
    // The highest value of the incremental field in a page (ids 10 and 11).
    let Fetched::Page(first) = source.fetch(&req).await.unwrap() else {
        panic!()
    };
    assert_eq!(first.highest.as_deref(), Some("2026-12-02T00:00:00Z"));
}

#[tokio::test]
async fn link_headers_are_followed_on_the_same_host_only() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/items"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"items": items(0, 2)}))
                .insert_header("link", "</items/2>; rel=\"next\""),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/items/2"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"items": items(2, 1)}))
                .insert_header("link", "<https://elsewhere.example/items/3>; rel=\"next\""),
        )
        .mount(&server)
        .await;
    let source = JsonApiSource::new(&local()).unwrap();
    let mut req = request(
        spec(format!("{}/items", server.uri()), Some(Pagination::Link)),
        "items",
    );
    let Fetched::Page(first) = source.fetch(&req).await.unwrap() else {
        panic!()
    };
    assert_eq!(first.next, Some(format!("{}/items/2", server.uri())));
    req.cursor = first.next;
    let Fetched::Page(second) = source.fetch(&req).await.unwrap() else {
        panic!()
    };
    req.cursor = second.next;
    let err = source.fetch(&req).await.unwrap_err();
    assert!(
        matches!(&err, SourceError::Refused(r) if r.contains("only links on the source's own host")),
        "{err}"
    );
}

#[tokio::test]
async fn failures_are_sorted_into_retries_and_refusals_without_the_secret() {
    let server = MockServer::start().await;
    let reply = |status: u16| ResponseTemplate::new(status).set_body_string("vendor says no");
    Mock::given(path("/busy"))
        .respond_with(reply(429).insert_header("retry-after", "1"))
        .mount(&server)
        .await;
    Mock::given(path("/down"))
        .respond_with(reply(500))
        .mount(&server)
        .await;
    Mock::given(path("/slow"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(2)))
        .mount(&server)
        .await;
    Mock::given(path("/denied"))
        .respond_with(reply(401))
        .mount(&server)
        .await;
    Mock::given(path("/moved"))
        .respond_with(reply(301).insert_header("location", "https://elsewhere.example/x"))
        .mount(&server)
        .await;
    Mock::given(path("/html"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>"))
        .mount(&server)
        .await;
    Mock::given(path("/moved-records"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"results": []})))
        .mount(&server)
        .await;
    Mock::given(path("/huge"))
        .respond_with(ResponseTemplate::new(200).set_body_string("x".repeat(2 << 20)))
        .mount(&server)
        .await;
    let source = JsonApiSource::new(&local()).unwrap();
    let fetch = |p: &str| {
        let req = request(spec(format!("{}{p}", server.uri()), None), "items");
        let source = source.clone();
        async move { source.fetch(&req).await.unwrap_err() }
    };
    match fetch("/busy").await {
        SourceError::Unavailable {
            reason,
            retry_after,
        } => {
            assert_eq!(retry_after, Some(Duration::from_secs(1)));
            assert!(reason.contains("HTTP 429"), "{reason}");
            assert!(reason.contains("vendor says no"), "{reason}");
            assert!(!reason.contains("t0ken"), "{reason}");
        }
        e => panic!("{e}"),
    }
    assert!(matches!(
        fetch("/down").await,
        SourceError::Unavailable { .. }
    ));
    assert!(
        matches!(fetch("/slow").await, SourceError::Unavailable { reason, .. } if reason.contains("timed out"))
    );
    assert!(matches!(fetch("/denied").await, SourceError::Refused(r) if r.contains("HTTP 401")));
    assert!(
        matches!(fetch("/moved").await, SourceError::Refused(r) if r.contains("redirects are not followed"))
    );
    assert!(matches!(fetch("/html").await, SourceError::Refused(r) if r.contains("not JSON")));
    assert!(
        matches!(fetch("/moved-records").await, SourceError::Refused(r) if r.contains("no array of records at \"items\""))
    );
    assert!(matches!(fetch("/huge").await, SourceError::Refused(r) if r.contains("page limit")));
}

#[tokio::test]
async fn private_addresses_are_refused_unless_allowed() {
    let server = MockServer::start().await;
    let source = JsonApiSource::new(&Settings::default()).unwrap();
    let url = format!("{}/items", server.uri());
    assert!(source.check_url(&url).await.is_err());
    let err = source
        .fetch(&request(spec(url, None), ""))
        .await
        .unwrap_err();
    assert!(matches!(err, SourceError::Refused(r) if r.contains("not a public address")));
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn an_unchanged_file_costs_a_304() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(header("if-none-match", "\"v1\""))
        .respond_with(ResponseTemplate::new(304))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string("id,value\na,1\n")
                .insert_header("etag", "\"v1\"")
                .insert_header("last-modified", "Sat, 05 Dec 2026 10:00:00 GMT"),
        )
        .expect(1)
        .mount(&server)
        .await;
    let mut s = spec(format!("{}/export.csv", server.uri()), None);
    s.kind = SourceKind::HttpFile;
    let source = HttpFileSource::new(&local()).unwrap();
    let mut req = request(s, "");
    let Fetched::Page(file) = source.fetch(&req).await.unwrap() else {
        panic!("the file")
    };
    assert_eq!(file.body, b"id,value\na,1\n");
    assert_eq!(file.next, None);
    assert_eq!(file.validators.etag.as_deref(), Some("\"v1\""));
    assert_eq!(
        file.validators.last_modified.as_deref(),
        Some("Sat, 05 Dec 2026 10:00:00 GMT")
    );
    req.validators = file.validators;
    assert_eq!(source.fetch(&req).await.unwrap(), Fetched::NotModified);
}
