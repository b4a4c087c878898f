//! The request context: an `X-Request-Id` for every request (the client's when it is
//! sensible, a new UUID otherwise), echoed in the response, carried by the tracing span
//! every log line of the request is written in, and quoted as `instance` in problem
//! documents. The same middleware counts and times each request for the metrics.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web;
use tracing::Instrument as _;

use crate::Metrics;
use crate::policy::Route;

/// The header that carries the request id.
pub(crate) const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

tokio::task_local! {
    static CURRENT: String;
}

/// The id of the request being served on this task, if any.
pub(crate) fn current_request_id() -> Option<String> {
    CURRENT.try_with(Clone::clone).ok()
}

/// A client's id is kept when it is 1–200 visible ASCII characters; anything else
/// (or nothing) gets a fresh UUID, so ids are safe to log and echo.
fn request_id(req: &ServiceRequest) -> String {
    req.headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| (1..=200).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned)
}

/// Methods as metrics label them: the standard ones, and `OTHER` for any token a
/// client makes up, so that labels stay bounded.
fn method_label(method: &actix_web::http::Method) -> String {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];
    let name = method.as_str();
    if KNOWN.contains(&name) { name } else { "OTHER" }.to_owned()
}

/// The middleware (see the module documentation).
pub(crate) async fn request_context(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = request_id(&req);
    let route = Route::of(&req)
        .pattern
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = method_label(req.method());
    crate::refusals::head_as_get(&mut req);
    let metrics = req.app_data::<web::Data<Metrics>>().cloned();
    let span = tracing::info_span!("request", request_id = %id, %method, %route,
        dataset = tracing::field::Empty, key = tracing::field::Empty,
        caller = tracing::field::Empty);

    let started = Instant::now();
    let served = CURRENT.scope(id.clone(), next.call(req).instrument(span.clone()));
    let outcome = served.await;
    let status = match &outcome {
        Ok(res) => res.status().as_u16(),
        // An answer that travels as an error (a cancelled request): counted too.
        Err(e) => e.as_response_error().status_code().as_u16(),
    };
    let elapsed = started.elapsed();
    // What the request was about, not only the route's pattern: the path's values as
    // routing matched them.
    if let Ok(res) = &outcome {
        for name in ["dataset", "key"] {
            if let Some(value) = res.request().match_info().get(name) {
                span.record(name, value);
            }
        }
    }
    span.in_scope(|| {
        // To a tenth of a millisecond: more digits are noise to a reader.
        let latency_ms = (elapsed.as_secs_f64() * 10_000.0).round() / 10.0;
        tracing::info!(status, latency_ms, "request served");
    });
    if let Some(metrics) = metrics {
        metrics.observe_request(&method, &route, status, elapsed);
    }
    let mut res = outcome?;
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID, value);
    }
    Ok(res)
}
