//! Deadlines (DESIGN §11): a request may say how long it is worth waiting for with
//! `Request-Timeout: <milliseconds>`, capped by the server's maximum; without it the
//! default applies. The deadline bounds the whole request: the handler runs inside
//! [`intake_domain::deadline::within`] (so the layers below bound what they start;
//! PostgreSQL gets a `statement_timeout`), and when it passes the handler's future is
//! dropped, which cancels its work (a transaction not committed is rolled back), and
//! the answer is a `504` problem.

use std::time::{Duration, Instant};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::error::InternalError;
use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{ResponseError as _, web};

use crate::policy::Route;
use crate::{ApiError, ApiState};

/// The header a client bounds its request with.
pub(crate) const REQUEST_TIMEOUT: HeaderName = HeaderName::from_static("request-timeout");

/// The deadline `req` asks for (or the default), capped by the maximum.
fn timeout(req: &ServiceRequest, default: Duration, max: Duration) -> Result<Duration, ApiError> {
    let Some(value) = req.headers().get(&REQUEST_TIMEOUT) else {
        return Ok(default.min(max));
    };
    let millis = value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|m| *m > 0)
        .ok_or_else(|| {
            ApiError::field(
                "Request-Timeout",
                "Request-Timeout is a whole number of milliseconds, at least 1",
            )
        })?;
    Ok(Duration::from_millis(millis).min(max))
}

/// The middleware (see the module documentation).
pub(crate) async fn deadline(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<ApiState>>().cloned() else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    let settings = &state.settings;
    let limit = match timeout(&req, settings.default_timeout, settings.max_timeout) {
        Ok(limit) => limit,
        // The Markr routes behave as the original service did, which knew no such
        // header: a malformed one is ignored there.
        Err(_) if Route::of(&req).policy.is_compatibility() => {
            settings.default_timeout.min(settings.max_timeout)
        }
        Err(e) => {
            let res = e.error_response();
            return Ok(req.into_response(res).map_into_right_body());
        }
    };
    let at = Instant::now() + limit;
    let work = intake_domain::deadline::within(at, next.call(req));
    let expired = |limit: Duration| {
        ApiError::Timeout(format!(
            "the request did not finish within its deadline of {} ms; its work was cancelled",
            limit.as_millis()
        ))
    };
    match actix_web::rt::time::timeout(limit, work).await {
        Ok(Ok(res)) => {
            // A statement the database stopped at the deadline surfaces as a failure
            // of ours; it is the deadline's answer.
            if res.status() == StatusCode::INTERNAL_SERVER_ERROR
                && Instant::now() + Duration::from_millis(50) >= at
            {
                let answer = expired(limit).error_response();
                return Ok(res.into_response(answer).map_into_right_body());
            }
            Ok(res.map_into_left_body())
        }
        Ok(Err(e)) => Err(e),
        Err(_) => {
            tracing::warn!(
                deadline_ms = limit.as_millis(),
                "deadline passed; request cancelled"
            );
            // The request went down with the cancelled work: the answer travels as an
            // error carrying its finished response (the request id middleware counts
            // and logs it; it has no request to attach a header to, so it is here).
            let error = expired(limit);
            let mut answer = error.error_response();
            if let Some(id) =
                crate::context::current_request_id().and_then(|id| HeaderValue::from_str(&id).ok())
            {
                answer.headers_mut().insert(crate::context::REQUEST_ID, id);
            }
            Err(InternalError::from_response(error, answer).into())
        }
    }
}
