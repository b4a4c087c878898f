//! `intake-http-source`: Intake's outbound HTTP (DESIGN §3, §8, §13).
//!
//! [`HttpWebhookSender`] implements the `WebhookSender` port: it signs each webhook
//! with the official `standardwebhooks` crate (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature: v1,<base64 HMAC-SHA256 of id.timestamp.body>`), POSTs it over
//! keep-alive connections (reqwest with rustls and ring), follows no redirect, and reads
//! at most 64 KB of an answer for the log. Unless private addresses are allowed, a URL
//! must resolve to public addresses only, checked at creation and again at every send
//! after resolving (a name that later resolves to 127.0.0.1 is not sent to).
//!
//! [`JsonApiSource`] and [`HttpFileSource`] implement the `ExternalSource` port for
//! pull sources (DESIGN §9) behind the same guard: pages of a JSON API followed by
//! cursor, page number or `Link` header, and whole files fetched with conditional
//! requests.

mod pull;

pub use pull::{HttpFileSource, JsonApiSource};

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use intake_domain::delivery::{is_public, parse_retry_after};
use intake_domain::ports::{DeliveryResult, UrlRefused, Webhook, WebhookSender};
use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// At most this much of a receiver's answer is read (for the log and the listing).
const MAX_ANSWER: usize = 64 * 1024;

/// How outbound requests behave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Connecting may take this long.
    pub connect_timeout: Duration,
    /// A whole request (connect, send, answer) may take this long.
    pub timeout: Duration,
    /// Whether loopback, private, link-local and multicast addresses may be sent to
    /// (tests, single-host deployments).
    pub allow_private: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(15),
            allow_private: false,
        }
    }
}

/// Sends webhooks over HTTP; cheap to clone (one connection pool).
#[derive(Debug, Clone)]
pub struct HttpWebhookSender {
    client: reqwest::Client,
    allow_private: bool,
}

impl HttpWebhookSender {
    /// A sender with its own connection pool.
    ///
    /// # Errors
    /// When the TLS stack cannot be set up.
    pub fn new(settings: &Settings) -> anyhow::Result<Self> {
        Ok(Self {
            client: client(settings)?,
            allow_private: settings.allow_private,
        })
    }

    fn refuse_literal(&self, url: &Url) -> Result<(), UrlRefused> {
        refuse_literal(self.allow_private, url)
    }
}

/// A client for outbound requests: keep-alive, no redirect followed, and (unless
/// private addresses are allowed) a resolver that keeps public addresses only.
pub(crate) fn client(settings: &Settings) -> anyhow::Result<reqwest::Client> {
    let mut client = reqwest::Client::builder()
        .connect_timeout(settings.connect_timeout)
        .timeout(settings.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("intake/", env!("CARGO_PKG_VERSION")))
        .pool_idle_timeout(Duration::from_secs(90));
    if !settings.allow_private {
        client = client.dns_resolver(Arc::new(PublicOnly));
    }
    Ok(client.build()?)
}

/// Refuses a literal address the policy forbids (a resolver never sees those).
pub(crate) fn refuse_literal(allow_private: bool, url: &Url) -> Result<(), UrlRefused> {
    if allow_private {
        return Ok(());
    }
    let ip = match url.host() {
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
        _ => return Ok(()),
    };
    if is_public(ip) {
        Ok(())
    } else {
        Err(UrlRefused(format!(
            "{ip} is not a public address (set outbound_allow_private to allow it)"
        )))
    }
}

/// Whether `url` may be requested: `http` or `https` with a host, not a forbidden
/// literal address, and (unless private addresses are allowed) a name that resolves to
/// public addresses only.
pub(crate) async fn check_url(allow_private: bool, url: &str) -> Result<(), UrlRefused> {
    let parsed = parse(url)?;
    refuse_literal(allow_private, &parsed)?;
    if allow_private || !matches!(parsed.host(), Some(url::Host::Domain(_))) {
        return Ok(());
    }
    let host = parsed.host_str().unwrap_or_default();
    let port = parsed.port_or_known_default().unwrap_or(443);
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| UrlRefused(format!("{host} does not resolve: {e}")))?
        .collect();
    match addrs.iter().find(|a| !is_public(a.ip())) {
        Some(private) => Err(UrlRefused(format!(
            "{host} resolves to {}, which is not a public address \
             (set outbound_allow_private to allow it)",
            private.ip()
        ))),
        None if addrs.is_empty() => Err(UrlRefused(format!("{host} does not resolve"))),
        None => Ok(()),
    }
}

/// Parses an outbound URL: `http` or `https` with a host.
pub(crate) fn parse(url: &str) -> Result<Url, UrlRefused> {
    let parsed = Url::parse(url).map_err(|e| UrlRefused(format!("not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(UrlRefused(format!(
            "only http and https URLs are requested, not {}",
            parsed.scheme()
        )));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(UrlRefused("the URL has no host".into()));
    }
    Ok(parsed)
}

#[async_trait::async_trait]
impl WebhookSender for HttpWebhookSender {
    async fn send(&self, webhook: &Webhook) -> DeliveryResult {
        let retry = |status: Option<u16>, reason: String| DeliveryResult::Retry {
            status,
            retry_after: None,
            reason,
        };
        let url = match parse(&webhook.url).and_then(|u| self.refuse_literal(&u).map(|()| u)) {
            Ok(url) => url,
            Err(e) => return retry(None, e.0),
        };
        let timestamp = webhook.timestamp.timestamp();
        let signature = standardwebhooks::Webhook::new(&webhook.secret)
            .and_then(|signer| signer.sign(&webhook.id, timestamp, &webhook.body));
        let signature = match signature {
            Ok(s) => s,
            Err(e) => return retry(None, format!("the secret cannot sign: {e}")),
        };
        let sent = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header(standardwebhooks::HEADER_WEBHOOK_ID, &webhook.id)
            .header(
                standardwebhooks::HEADER_WEBHOOK_TIMESTAMP,
                timestamp.to_string(),
            )
            .header(standardwebhooks::HEADER_WEBHOOK_SIGNATURE, signature)
            .body(webhook.body.clone())
            .send()
            .await;
        let mut answer = match sent {
            Ok(answer) => answer,
            Err(e) => return retry(None, describe(&e)),
        };
        let status = answer.status();
        if status.is_success() {
            return DeliveryResult::Delivered {
                status: status.as_u16(),
            };
        }
        let retry_after = answer
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, chrono::Utc::now()));
        let mut text = Vec::new();
        while text.len() < MAX_ANSWER {
            match answer.chunk().await {
                Ok(Some(chunk)) => text.extend_from_slice(&chunk),
                _ => break,
            }
        }
        text.truncate(MAX_ANSWER);
        let text = String::from_utf8_lossy(&text);
        DeliveryResult::Retry {
            status: Some(status.as_u16()),
            retry_after,
            reason: format!("HTTP {status}: {}", text.trim()),
        }
    }

    async fn check_url(&self, url: &str) -> Result<(), UrlRefused> {
        check_url(self.allow_private, url).await
    }

    fn new_secret(&self) -> String {
        let mut bytes = [0u8; 32];
        if let Err(e) = getrandom::getrandom(&mut bytes) {
            // The operating system's generator failing is not recoverable here.
            panic!("no randomness for a webhook secret: {e}");
        }
        format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode(bytes)
        )
    }
}

/// Why a request failed, without the URL's secrets (reqwest errors print the URL).
pub(crate) fn describe(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_request() {
        "could not send the request"
    } else {
        "failed"
    };
    let mut cause = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(c) = cause {
        detail = c.to_string();
        cause = c.source();
    }
    if detail.is_empty() {
        what.to_owned()
    } else {
        format!("{what}: {detail}")
    }
}

/// Resolves names, keeping public addresses only: a name that resolves to a private
/// address is not connected to, whenever it came to do so.
struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| is_public(a.ip()))
                .collect();
            if addrs.is_empty() {
                let refused = format!("{host} resolves to no public address");
                return Err(refused.into());
            }
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}
