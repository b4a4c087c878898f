//! Every error answer is a problem document, even those actix-web writes itself
//! without a body: a known route asked with another method (`405`, whose `Allow`
//! header actix-web fills from the route's methods), and any other bodiless `4xx` or
//! `5xx`. `HEAD` is served on every `GET` route: the request is routed as a `GET`,
//! and the HTTP layer, which remembers it was a `HEAD`, sends the headers alone.

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{HttpMessage as _, HttpResponse, ResponseError as _};

use crate::ApiError;
use crate::error::Problem;

/// The method a request arrived with, when it is routed as another (`HEAD`).
#[derive(Debug, Clone)]
struct Asked(Method);

/// Routes `HEAD` as `GET`; the response keeps no body on the wire.
pub(crate) fn head_as_get(req: &mut ServiceRequest) {
    if req.method() == Method::HEAD {
        req.extensions_mut().insert(Asked(Method::HEAD));
        req.head_mut().method = Method::GET;
    }
}

/// The middleware (see the module documentation).
pub(crate) async fn problems(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<BoxBody>>, actix_web::Error> {
    let asked = req.extensions().get::<Asked>().map(|a| a.0.clone());
    let method = asked.unwrap_or_else(|| req.method().clone());
    let path = req.path().to_owned();
    let res = next.call(req).await?;
    let status = res.status();
    let is_bodiless_refusal = (status.is_client_error() || status.is_server_error())
        && !res.headers().contains_key(CONTENT_TYPE);
    if !is_bodiless_refusal {
        return Ok(res.map_body(|_, b| b.boxed()).map_into_left_body());
    }
    let (req, res) = res.into_parts();
    let allow = res.headers().get(ALLOW).and_then(|v| v.to_str().ok());
    let mut answer = problem(status, &method, &path, allow);
    if let Some(allow) = allow {
        let allow = with_head(allow);
        if let Ok(value) = HeaderValue::from_str(&allow) {
            answer.headers_mut().insert(ALLOW, value);
        }
    }
    for (name, value) in res.headers() {
        if !answer.headers().contains_key(name) {
            answer.headers_mut().insert(name.clone(), value.clone());
        }
    }
    Ok(ServiceResponse::new(req, answer).map_into_right_body())
}

/// `allow` with `HEAD` beside `GET` (every `GET` route serves `HEAD`).
fn with_head(allow: &str) -> String {
    let methods: Vec<&str> = allow.split(',').map(str::trim).collect();
    if methods.contains(&"GET") && !methods.contains(&"HEAD") {
        let mut methods = methods;
        methods.push("HEAD");
        methods.sort_unstable();
        methods.join(", ")
    } else {
        allow.to_owned()
    }
}

fn problem(status: StatusCode, method: &Method, path: &str, allow: Option<&str>) -> HttpResponse {
    if status == StatusCode::METHOD_NOT_ALLOWED {
        let takes = allow.map(with_head).unwrap_or_default();
        return ApiError::MethodNotAllowed(format!(
            "{path} does not take {method}; it takes {takes}"
        ))
        .error_response();
    }
    let reason = status.canonical_reason().unwrap_or("Error");
    let code = code(status);
    let mut problem = Problem::new(status, code, format!("{reason}: the request was refused"));
    problem.instance = crate::context::current_request_id();
    HttpResponse::build(status)
        .insert_header((
            CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        ))
        .body(serde_json::to_vec(&problem).unwrap_or_default())
}

/// The code of the documented list (README) a status stands for.
fn code(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        406 => "not_acceptable",
        409 => "conflict",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        429 => "too_many_requests",
        503 => "unavailable",
        504 => "timeout",
        s if s >= 500 => "internal",
        _ => "bad_request",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_is_allowed_wherever_get_is() {
        assert_eq!(with_head("GET, POST"), "GET, HEAD, POST");
        assert_eq!(with_head("POST"), "POST");
        assert_eq!(with_head("GET, HEAD"), "GET, HEAD");
    }
}
