//! The gate every request passes after it has its request id: who is calling (a
//! configured bearer token, or anyone when authentication is off), whether that
//! caller is within its rate limit, and whether it may use this route. A refused
//! request never reaches a handler; its answer is a problem document like any other.
//!
//! Before anything else, a URL (path and query) or headers larger than the settings
//! allow are a `400`: bodies have their limits where they are read (`413`).
//!
//! The rate limit is counted per token name, or per client IP for requests without a
//! valid token (so guessing tokens is limited too). The public routes (health,
//! readiness, documents) are neither authenticated nor limited.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use actix_web::middleware::Next;
use actix_web::{ResponseError as _, web};
use intake_domain::ports::RateDecision;

use crate::auth::{self, Caller, Verdict};
use crate::policy::Route;
use crate::{ApiError, ApiState};

const LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
const REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
const RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

/// Whole seconds, rounded up (a client waiting that long finds a token).
fn seconds(d: std::time::Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// The `RateLimit-*` headers (and `Retry-After` when refused).
fn rate_headers(headers: &mut HeaderMap, d: &RateDecision) {
    headers.insert(LIMIT, HeaderValue::from(d.limit));
    headers.insert(REMAINING, HeaderValue::from(d.remaining));
    headers.insert(RESET, HeaderValue::from(seconds(d.reset)));
    if !d.allowed {
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from(seconds(d.retry_after).max(1)),
        );
    }
}

/// The key a caller's bucket is kept under.
pub(crate) fn rate_key(caller: &Caller, req: &actix_web::HttpRequest) -> String {
    match caller {
        Caller::Token(token) => format!("token:{}", token.name),
        Caller::Anyone | Caller::Unknown => {
            let ip = req.peer_addr().map(|a| a.ip().to_string());
            format!("ip:{}", ip.as_deref().unwrap_or("unknown"))
        }
    }
}

/// A `400` when the URL (path and query) or the headers are larger than allowed.
fn oversized(req: &ServiceRequest, settings: &crate::Settings) -> Option<ApiError> {
    let url = req.path().len() + req.query_string().len();
    if url > settings.max_url_bytes {
        let message = format!(
            "the path and query are {url} bytes; at most {} are read",
            settings.max_url_bytes
        );
        return Some(ApiError::field("url", message));
    }
    let headers: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    (headers > settings.max_header_bytes).then(|| {
        let message = format!(
            "the headers are {headers} bytes; at most {} are read",
            settings.max_header_bytes
        );
        ApiError::field("headers", message)
    })
}

/// The middleware (see the module documentation).
pub(crate) async fn gate(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<ApiState>>().cloned() else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    if let Some(error) = oversized(&req, &state.settings) {
        return Ok(req
            .into_response(error.error_response())
            .map_into_right_body());
    }
    let scope = Route::of(&req).policy.scope(req.method());
    if scope.is_none() {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    }
    let caller = auth::identify(&state.settings.tokens, req.request());
    if let Caller::Token(token) = &caller {
        tracing::Span::current().record("caller", token.name.as_str());
    }
    let mut rate = None;
    if let (Some(limiter), Some(limit)) = (&state.rate_limiter, state.settings.rate_limit) {
        match limiter
            .acquire(&rate_key(&caller, req.request()), limit)
            .await
        {
            Ok(decision) => rate = Some(decision),
            // Never refuse a request because the limiter failed.
            Err(e) => tracing::warn!(error.message = %e, "rate limiter failed; request allowed"),
        }
    }
    let has_header = req.headers().contains_key(AUTHORIZATION);
    let refused = if let Some(d) = rate.filter(|d| !d.allowed) {
        Some(ApiError::TooManyRequests(format!(
            "the rate limit of {} requests (refilled at {}/s) is spent; retry in {} s",
            d.limit,
            state.settings.rate_limit.map_or(0.0, |l| l.per_second),
            seconds(d.retry_after).max(1)
        )))
    } else {
        match auth::decide(&caller, scope, has_header) {
            Verdict::Allowed => None,
            Verdict::Unauthenticated(why) => Some(ApiError::Unauthorized(why.to_owned())),
            Verdict::Forbidden(scope) => Some(ApiError::Forbidden(format!(
                "this token does not have the {} scope this route needs",
                scope.as_str()
            ))),
        }
    };
    let mut res = match refused {
        None => next.call(req).await?.map_into_left_body(),
        Some(error) => {
            tracing::info!(code = %error, "request refused");
            let res = error.error_response();
            req.into_response(res).map_into_right_body()
        }
    };
    if let Some(d) = &rate {
        rate_headers(res.headers_mut(), d);
    }
    Ok(res)
}
