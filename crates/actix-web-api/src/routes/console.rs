//! The operator console (ADR 41): a page and its script and style, embedded in the
//! binary and served at `/console/` without a token (they hold no data; the page asks
//! the API with the token its user types), and `GET /v1/session`, which tells the page
//! what the token may do.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::auth::{Caller, Scope, identify};
use crate::dto::SessionResponse;
use crate::gate::rate_key;
use crate::policy::Policy;
use crate::{ApiError, ApiState};

const INDEX: &str = include_str!("../../console/index.html");
const SCRIPT: &str = include_str!("../../console/console.js");
const STYLE: &str = include_str!("../../console/console.css");

/// Scripts and styles from this origin only, no inline code, no frames: what the
/// page loads is what the binary holds.
const POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
    form-action 'self'";

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource("/console", Policy::OpenDocument).route(web::get().to(to_console)))
        .service(super::resource("/console/", Policy::OpenDocument).route(web::get().to(index)))
        .service(
            super::resource("/console/{file}", Policy::OpenDocument).route(web::get().to(asset)),
        )
        .service(super::resource("/v1/session", Policy::Open).route(web::get().to(session)));
}

async fn to_console() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "/console/"))
        .finish()
}

async fn index() -> HttpResponse {
    file(INDEX, "text/html; charset=utf-8")
}

async fn asset(path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let (body, media_type) = match path.as_str() {
        "index.html" => (INDEX, "text/html; charset=utf-8"),
        "console.js" => (SCRIPT, "text/javascript; charset=utf-8"),
        "console.css" => (STYLE, "text/css; charset=utf-8"),
        _ => return Err(ApiError::NotFound("no such file of the console".into())),
    };
    Ok(file(body, media_type))
}

fn file(body: &'static str, media_type: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, media_type))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::CONTENT_SECURITY_POLICY, POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .body(body)
}

/// Who the bearer token belongs to and the scopes it holds (`read`, `write`, `admin`),
/// so that a client shows only what it may do: no scope for no token or an unknown one
/// (this route itself needs none), every scope with authentication off. It counts
/// against the caller's rate limit like any authenticated route (by token, or by
/// address for an unknown one), so that guessing tokens here is limited too.
#[utoipa::path(get, path = "/v1/session", tag = "operations",
    responses(
        (status = 200, description = "The caller and its scopes", body = SessionResponse),
        (status = 429, description = "The caller's rate limit is spent", body = crate::error::Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn session(
    state: web::Data<ApiState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let all = [Scope::Read, Scope::Write, Scope::Admin];
    let identified = identify(&state.settings.tokens, &req);
    if let (Some(limiter), Some(limit)) = (&state.rate_limiter, state.settings.rate_limit) {
        match limiter.acquire(&rate_key(&identified, &req), limit).await {
            Ok(d) if !d.allowed => {
                return Err(ApiError::TooManyRequests(format!(
                    "the rate limit of {} requests is spent; retry in {} s",
                    d.limit,
                    d.retry_after.as_secs().max(1)
                )));
            }
            Ok(_) => {}
            // Never refuse a request because the limiter failed.
            Err(e) => tracing::warn!(error.message = %e, "rate limiter failed; request allowed"),
        }
    }
    let (caller, scopes): (Option<String>, Vec<Scope>) = match identified {
        Caller::Anyone => (None, all.to_vec()),
        Caller::Token(token) => {
            let scopes = if token.scopes().contains(&Scope::Admin) {
                all.to_vec()
            } else {
                token.scopes().to_vec()
            };
            (Some(token.name.clone()), scopes)
        }
        Caller::Unknown => (None, Vec::new()),
    };
    Ok(HttpResponse::Ok().json(SessionResponse {
        caller,
        scopes: scopes.iter().map(|s| s.as_str().to_owned()).collect(),
        authentication: !state.settings.tokens.is_empty(),
    }))
}
