//! The webhook sender against real HTTP servers on 127.0.0.1 (wiremock): signatures a
//! Standard Webhooks verifier accepts, failures as retries with the receiver's reasons,
//! and the outbound guard.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::time::Duration;

use chrono::Utc;
use intake_domain::ports::{DeliveryResult, Webhook, WebhookSender};
use intake_http_source::{HttpWebhookSender, Settings};
use wiremock::matchers::{header_exists, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn local() -> HttpWebhookSender {
    HttpWebhookSender::new(&Settings {
        allow_private: true,
        timeout: Duration::from_millis(500),
        ..Settings::default()
    })
    .unwrap()
}

fn guarded() -> HttpWebhookSender {
    HttpWebhookSender::new(&Settings::default()).unwrap()
}

fn webhook(url: String) -> Webhook {
    Webhook {
        url,
        id: "evt_01".into(),
        timestamp: Utc::now(),
        body: br#"{"type":"record.created","timestamp":"2026-12-03T10:00:00.000Z","data":{"key":"c1"}}"#
            .to_vec(),
        secret: SECRET.into(),
    }
}

#[tokio::test]
async fn a_webhook_arrives_signed_so_that_a_standard_verifier_accepts_it() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .and(header_exists("webhook-signature"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    let sent = local()
        .send(&webhook(format!("{}/hook", server.uri())))
        .await;
    assert_eq!(sent, DeliveryResult::Delivered { status: 204 });
    let received = &server.received_requests().await.unwrap()[0];
    assert_eq!(received.headers["webhook-id"], "evt_01");
    assert_eq!(received.headers["content-type"], "application/json");
    let mut headers = http::HeaderMap::new();
    for (name, value) in &received.headers {
        headers.insert(name.clone(), value.clone());
    }
    let verifier = standardwebhooks::Webhook::new(SECRET).unwrap();
    verifier
        .verify(&received.body, &headers)
        .expect("the signature verifies");
    // Any change to the body breaks it.
    let mut tampered = received.body.clone();
    tampered[10] ^= 1;
    assert!(verifier.verify(&tampered, &headers).is_err());
}

#[tokio::test]
async fn a_failure_is_a_retry_with_the_status_the_answer_and_retry_after() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(503)
                .insert_header("retry-after", "7")
                .set_body_string("down for maintenance"),
        )
        .mount(&server)
        .await;
    let sent = local().send(&webhook(server.uri())).await;
    assert_eq!(
        sent,
        DeliveryResult::Retry {
            status: Some(503),
            retry_after: Some(Duration::from_secs(7)),
            reason: "HTTP 503 Service Unavailable: down for maintenance".into(),
        }
    );
}

#[tokio::test]
async fn redirects_are_not_followed_and_slow_receivers_time_out() {
    let server = MockServer::start().await;
    Mock::given(path("/moved"))
        .respond_with(ResponseTemplate::new(302).insert_header("location", "/elsewhere"))
        .mount(&server)
        .await;
    Mock::given(path("/slow"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
        .mount(&server)
        .await;
    let moved = local()
        .send(&webhook(format!("{}/moved", server.uri())))
        .await;
    assert!(
        matches!(
            moved,
            DeliveryResult::Retry {
                status: Some(302),
                ..
            }
        ),
        "{moved:?}"
    );
    let slow = local()
        .send(&webhook(format!("{}/slow", server.uri())))
        .await;
    assert!(
        matches!(&slow, DeliveryResult::Retry { status: None, reason, .. } if reason.contains("timed out")),
        "{slow:?}"
    );
    // Nothing listens here: a refused connection is a retry too.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let refused = local()
        .send(&webhook(format!("http://127.0.0.1:{port}/")))
        .await;
    assert!(
        matches!(&refused, DeliveryResult::Retry { status: None, reason, .. } if reason.contains("connect")),
        "{refused:?}"
    );
}

#[tokio::test]
async fn private_addresses_are_refused_at_creation_and_at_send_time() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let sender = guarded();
    let port = server.address().port();
    for url in [
        format!("http://127.0.0.1:{port}/hook"),
        format!("http://localhost:{port}/hook"),
        "http://[::1]/hook".to_owned(),
        "http://10.0.0.8/hook".to_owned(),
        "http://169.254.169.254/latest/meta-data".to_owned(),
    ] {
        let refused = sender.check_url(&url).await;
        assert!(refused.is_err(), "{url} was accepted");
        let sent = sender.send(&webhook(url.clone())).await;
        assert!(
            matches!(&sent, DeliveryResult::Retry { status: None, reason, .. } if reason.contains("public")),
            "{url}: {sent:?}"
        );
    }
    for url in ["ftp://example.com/x", "not a url", "https:///nohost"] {
        assert!(sender.check_url(url).await.is_err(), "{url} was accepted");
    }
    // Allowed explicitly, the same URL is fine.
    assert!(
        local()
            .check_url(&format!("http://localhost:{port}/hook"))
            .await
            .is_ok()
    );
}

#[test]
fn new_secrets_are_standard_and_different() {
    let sender = local();
    let (a, b) = (sender.new_secret(), sender.new_secret());
    assert_ne!(a, b);
    assert!(
        a.starts_with("whsec_") && a.len() == "whsec_".len() + 44,
        "{a}"
    );
    assert!(standardwebhooks::Webhook::new(&a).is_ok());
}
