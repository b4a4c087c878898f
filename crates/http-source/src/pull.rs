//! Pull sources over HTTP (DESIGN §9): the `json_api` and `http_file` adapters of the
//! `ExternalSource` port. Both request through the outbound guard (no redirect
//! followed, public addresses only unless allowed), read at most the page limit, and
//! sort failures into retryable ones (5xx, 429 with its `Retry-After`, 408, timeouts,
//! broken connections) and refusals (other 4xx, a redirect, a page that cannot be
//! read). No message carries the secret.

use intake_domain::delivery::parse_retry_after;
use intake_domain::ports::{
    ExternalSource, FetchRequest, Fetched, FetchedPage, SourceError, UrlRefused, Validators,
};
use intake_domain::sources::{Pagination, SourceKind, higher};
use reqwest::header::{
    ACCEPT, ETAG, HeaderMap, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED, LINK, RETRY_AFTER,
};
use reqwest::{StatusCode, Url};

use crate::{Settings, check_url, client, describe, parse, refuse_literal};

/// The pages of a JSON API: records at a JSON path, the next page by cursor, page
/// number or `Link` header, and an incremental parameter from the last run's highest
/// value.
#[derive(Debug, Clone)]
pub struct JsonApiSource {
    client: reqwest::Client,
    allow_private: bool,
}

/// One whole document fetched on a schedule with conditional requests (`ETag`,
/// `Last-Modified`), so an unchanged file costs a `304`.
#[derive(Debug, Clone)]
pub struct HttpFileSource {
    client: reqwest::Client,
    allow_private: bool,
}

impl JsonApiSource {
    /// An adapter with its own connection pool.
    ///
    /// # Errors
    /// When the TLS stack cannot be set up.
    pub fn new(settings: &Settings) -> anyhow::Result<Self> {
        Ok(Self {
            client: client(settings)?,
            allow_private: settings.allow_private,
        })
    }
}

impl HttpFileSource {
    /// An adapter with its own connection pool.
    ///
    /// # Errors
    /// When the TLS stack cannot be set up.
    pub fn new(settings: &Settings) -> anyhow::Result<Self> {
        Ok(Self {
            client: client(settings)?,
            allow_private: settings.allow_private,
        })
    }
}

fn refused(reason: impl Into<String>) -> SourceError {
    SourceError::Refused(reason.into())
}

/// Sends a GET and reads its answer: the status sorted into outcomes, at most
/// `max_bytes` of body.
async fn get(
    client: &reqwest::Client,
    allow_private: bool,
    url: Url,
    headers: HeaderMap,
    max_bytes: u64,
) -> Result<Option<(Vec<u8>, HeaderMap)>, SourceError> {
    refuse_literal(allow_private, &url).map_err(|e| refused(e.0))?;
    let shown = intake_domain::redact::url(url.as_str());
    let sent = client.get(url).headers(headers).send().await;
    let mut answer = sent.map_err(|e| SourceError::Unavailable {
        reason: format!("GET {shown}: {}", describe(&e)),
        retry_after: None,
    })?;
    let status = answer.status();
    if status == StatusCode::NOT_MODIFIED {
        return Ok(None);
    }
    if !status.is_success() {
        let retry_after = answer
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, chrono::Utc::now()));
        let location = answer
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(intake_domain::redact::url);
        let mut text = Vec::new();
        while text.len() < 512 {
            match answer.chunk().await {
                Ok(Some(chunk)) => text.extend_from_slice(&chunk),
                _ => break,
            }
        }
        text.truncate(512);
        let text = String::from_utf8_lossy(&text);
        let reason = format!("GET {shown}: HTTP {status}: {}", text.trim());
        return Err(
            if status.is_server_error()
                || status == StatusCode::TOO_MANY_REQUESTS
                || status == StatusCode::REQUEST_TIMEOUT
            {
                SourceError::Unavailable {
                    reason,
                    retry_after,
                }
            } else if status.is_redirection() {
                refused(format!(
                    "GET {shown}: HTTP {status} to {}: redirects are not followed; give the source its new URL",
                    location.unwrap_or_else(|| "nowhere".into())
                ))
            } else {
                refused(reason)
            },
        );
    }
    if answer.content_length().is_some_and(|n| n > max_bytes) {
        return Err(refused(format!(
            "GET {shown}: the answer is larger than the page limit of {max_bytes} bytes"
        )));
    }
    let headers = answer.headers().clone();
    let mut body = Vec::new();
    loop {
        match answer.chunk().await {
            Ok(Some(chunk)) => {
                body.extend_from_slice(&chunk);
                if body.len() as u64 > max_bytes {
                    return Err(refused(format!(
                        "GET {shown}: the answer is larger than the page limit of {max_bytes} bytes"
                    )));
                }
            }
            Ok(None) => break,
            Err(e) => {
                return Err(SourceError::Unavailable {
                    reason: format!("GET {shown}: reading the answer {}", describe(&e)),
                    retry_after: None,
                });
            }
        }
    }
    Ok(Some((body, headers)))
}

fn auth_headers(request: &FetchRequest, accept: &'static str) -> Result<HeaderMap, SourceError> {
    let mut headers = HeaderMap::new();
    headers.insert(ACCEPT, reqwest::header::HeaderValue::from_static(accept));
    if let Some((name, value)) = &request.auth {
        let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| refused(format!("{name:?} is not a header name")))?;
        let mut value = reqwest::header::HeaderValue::from_str(value)
            .map_err(|_| refused("the secret cannot be sent in a header"))?;
        value.set_sensitive(true);
        headers.insert(name, value);
    }
    Ok(headers)
}

/// The value at a dotted path (`meta.next`); an empty path is the value itself.
fn at<'v>(value: &'v serde_json::Value, path: &[String]) -> Option<&'v serde_json::Value> {
    path.iter().try_fold(value, |v, key| v.get(key))
}

/// A cursor, page or incremental value as text: strings as they are, numbers written
/// out; `null`, empty text and anything else is none.
fn text(value: Option<&serde_json::Value>) -> Option<String> {
    match value? {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The `rel="next"` target of a `Link` header, resolved against `base`.
fn next_link(headers: &HeaderMap, base: &Url) -> Option<Url> {
    for value in headers.get_all(LINK) {
        let Ok(value) = value.to_str() else { continue };
        for link in value.split(',') {
            let mut parts = link.split(';');
            let target = parts.next()?.trim();
            let Some(target) = target.strip_prefix('<').and_then(|t| t.strip_suffix('>')) else {
                continue;
            };
            let is_next = parts.any(|p| {
                let p = p.trim();
                p.split_once('=').is_some_and(|(k, v)| {
                    k.trim().eq_ignore_ascii_case("rel")
                        && v.trim()
                            .trim_matches('"')
                            .split_whitespace()
                            .any(|r| r.eq_ignore_ascii_case("next"))
                })
            });
            if is_next {
                return base.join(target).ok();
            }
        }
    }
    None
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

#[async_trait::async_trait]
impl ExternalSource for JsonApiSource {
    fn kind(&self) -> SourceKind {
        SourceKind::JsonApi
    }

    async fn fetch(&self, request: &FetchRequest) -> Result<Fetched, SourceError> {
        let spec = &request.spec;
        let first = parse(&spec.url).map_err(|e| refused(e.0))?;
        let mut url = first.clone();
        let mut page_number = 1u64;
        match (&spec.pagination, &request.cursor) {
            (Some(Pagination::Link), Some(next)) => {
                url = Url::parse(next).map_err(|e| refused(format!("a bad next link: {e}")))?;
                if !same_origin(&url, &first) {
                    return Err(refused(format!(
                        "the next link leaves {}: only links on the source's own host are followed",
                        first.host_str().unwrap_or_default()
                    )));
                }
            }
            (Some(Pagination::Cursor { cursor_param, .. }), Some(cursor)) => {
                url.query_pairs_mut().append_pair(cursor_param, cursor);
            }
            (Some(Pagination::Page { .. }), Some(n)) => {
                page_number = n
                    .parse()
                    .map_err(|_| refused(format!("{n:?} is not a page number")))?;
            }
            _ => {}
        }
        if let Some(Pagination::Page {
            page_param,
            size_param,
            size,
        }) = &spec.pagination
        {
            let mut q = url.query_pairs_mut();
            q.append_pair(page_param, &page_number.to_string());
            if let Some(p) = size_param {
                q.append_pair(p, &size.to_string());
            }
        }
        if let (Some(inc), Some(since)) = (&spec.incremental, &request.since) {
            // A `Link` target carries the query the API built; the parameter rides
            // on the first page.
            if request.cursor.is_none() || !matches!(spec.pagination, Some(Pagination::Link)) {
                url.query_pairs_mut().append_pair(&inc.param, since);
            }
        }
        let headers = auth_headers(request, "application/json")?;
        let shown = intake_domain::redact::url(url.as_str());
        let answer = get(
            &self.client,
            self.allow_private,
            url.clone(),
            headers,
            request.max_bytes,
        )
        .await?;
        let Some((body, headers)) = answer else {
            return Err(refused(format!(
                "GET {shown}: HTTP 304 to an unconditional request"
            )));
        };
        let value: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| refused(format!("GET {shown}: the answer is not JSON: {e}")))?;
        let records = match at(&value, &request.records) {
            Some(serde_json::Value::Array(items)) => items,
            _ => {
                return Err(refused(format!(
                    "GET {shown}: the answer has no array of records at {:?}",
                    request.records.join(".")
                )));
            }
        };
        let count = records.len() as u64;
        let highest = spec.incremental.as_ref().and_then(|inc| {
            let path: Vec<String> = inc.field.split('.').map(str::to_owned).collect();
            records
                .iter()
                .filter_map(|r| text(at(r, &path)))
                .fold(None, |best, v| higher(best, Some(v)))
        });
        let next = match &spec.pagination {
            None => None,
            Some(Pagination::Cursor { next_cursor, .. }) => {
                let path: Vec<String> = next_cursor.split('.').map(str::to_owned).collect();
                text(at(&value, &path))
            }
            Some(Pagination::Page { size, .. }) => {
                (count >= u64::from(*size)).then(|| (page_number + 1).to_string())
            }
            Some(Pagination::Link) => next_link(&headers, &url).map(String::from),
        };
        // A next page that is this page again would never end the run.
        let next = next.filter(|n| Some(n) != request.cursor.as_ref());
        Ok(Fetched::Page(FetchedPage {
            body,
            next,
            records: count,
            highest,
            validators: Validators::default(),
        }))
    }

    async fn check_url(&self, url: &str) -> Result<(), UrlRefused> {
        check_url(self.allow_private, url).await
    }
}

#[async_trait::async_trait]
impl ExternalSource for HttpFileSource {
    fn kind(&self) -> SourceKind {
        SourceKind::HttpFile
    }

    async fn fetch(&self, request: &FetchRequest) -> Result<Fetched, SourceError> {
        let url = parse(&request.spec.url).map_err(|e| refused(e.0))?;
        let mut headers = auth_headers(request, "*/*")?;
        let value = |v: &str| reqwest::header::HeaderValue::from_str(v).ok();
        if let Some(etag) = request.validators.etag.as_deref().and_then(value) {
            headers.insert(IF_NONE_MATCH, etag);
        }
        if let Some(at) = request.validators.last_modified.as_deref().and_then(value) {
            headers.insert(IF_MODIFIED_SINCE, at);
        }
        let answer = get(
            &self.client,
            self.allow_private,
            url,
            headers,
            request.max_bytes,
        )
        .await?;
        let Some((body, headers)) = answer else {
            return Ok(Fetched::NotModified);
        };
        let header = |name| {
            headers
                .get(name)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        Ok(Fetched::Page(FetchedPage {
            body,
            next: None,
            records: 0,
            highest: None,
            validators: Validators {
                etag: header(ETAG),
                last_modified: header(LAST_MODIFIED),
            },
        }))
    }

    async fn check_url(&self, url: &str) -> Result<(), UrlRefused> {
        check_url(self.allow_private, url).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_link_is_found_among_others_and_resolved() {
        let mut headers = HeaderMap::new();
        headers.insert(
            LINK,
            r#"<https://api.example/items?page=1>; rel="first", </items?page=3>; rel="next last""#
                .parse()
                .unwrap(),
        );
        let base = Url::parse("https://api.example/items?page=2").unwrap();
        assert_eq!(
            next_link(&headers, &base).unwrap().as_str(),
            "https://api.example/items?page=3"
        );
        headers.insert(
            LINK,
            r#"<https://api.example/x>; rel=prev"#.parse().unwrap(),
        );
        assert_eq!(next_link(&headers, &base), None);
    }

    #[test]
    fn values_become_text_and_the_higher_is_numeric_for_numbers() {
        assert_eq!(text(Some(&serde_json::json!("c2"))), Some("c2".into()));
        assert_eq!(text(Some(&serde_json::json!(17))), Some("17".into()));
        assert_eq!(text(Some(&serde_json::json!(null))), None);
        assert_eq!(text(Some(&serde_json::json!(""))), None);
        assert_eq!(
            higher(Some("9".into()), Some("10".into())),
            Some("10".into())
        );
        assert_eq!(higher(Some("b".into()), Some("a".into())), Some("b".into()));
    }
}
