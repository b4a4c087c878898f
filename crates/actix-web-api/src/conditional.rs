//! HTTP caching for clients (issue 17): the answers of a route wrapped here are a
//! function of their dataset's revision and current contract, so they carry an
//! `ETag` made of those (and of when the dataset was created) and
//! `Cache-Control: no-cache` (a client may keep an answer but asks again before using
//! it). A request whose `If-None-Match` names the current tag is answered `304 Not
//! Modified` with no body, before any work: the dataset's row comes from memory
//! (ADR 25).
//!
//! The tag is weak (`W/"…"`): the JSON and XML forms of an answer (negotiated by
//! `Accept`, answered with `Vary: Accept`) are the same answer, and `If-None-Match`
//! compares tags weakly anyway (RFC 9110 §13.1.2).

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{CACHE_CONTROL, ETAG, HeaderValue, IF_NONE_MATCH};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};
use intake_domain::DatasetName;
use intake_domain::ports::Dataset;

use crate::ApiState;

/// What a client is told to do with a tagged answer.
const NO_CACHE: &str = "no-cache";

/// The middleware (see the module documentation), for routes with a `{dataset}`.
pub(crate) async fn conditional(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    // Only reads are answered from a tag; other methods meet their route's `405`.
    let reads = req.method() == Method::GET || req.method() == Method::HEAD;
    let tag = match (
        reads
            .then(|| req.app_data::<web::Data<ApiState>>())
            .flatten(),
        req.match_info()
            .get("dataset")
            .and_then(|d| DatasetName::parse(d).ok()),
    ) {
        (Some(state), Some(name)) => state.datasets.dataset(&name).await.ok().map(|d| tag(&d)),
        // An unknown dataset: the route answers its 404.
        _ => None,
    };
    let Some(tag) = tag else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    if matches(req.headers().get(IF_NONE_MATCH), &tag) {
        let res = HttpResponse::NotModified()
            .insert_header((ETAG, tag))
            .insert_header((CACHE_CONTROL, NO_CACHE))
            .finish();
        return Ok(req.into_response(res).map_into_right_body());
    }
    let mut res = next.call(req).await?;
    if res.status().is_success() {
        let headers = res.headers_mut();
        if let Ok(value) = HeaderValue::from_str(&tag) {
            headers.insert(ETAG, value);
        }
        headers.insert(CACHE_CONTROL, HeaderValue::from_static(NO_CACHE));
    }
    Ok(res.map_into_left_body())
}

/// `W/"<created µs>-<contract>-<revision>"`.
fn tag(dataset: &Dataset) -> String {
    format!(
        "W/\"{}-{}-{}\"",
        dataset.created_at.timestamp_micros(),
        dataset.current_contract.get(),
        dataset.revision.get()
    )
}

/// Whether `If-None-Match` names `tag` (compared weakly). `*` is not answered `304`:
/// it would be for a key that has no record (RFC 9110: `*` holds only when a current
/// representation exists, which only the handler knows).
fn matches(header: Option<&HeaderValue>, tag: &str) -> bool {
    let Some(text) = header.and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let opaque = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    let ours = opaque(tag);
    text.split(',').any(|candidate| opaque(candidate) == ours)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_is_compared_weakly_and_may_list_several_tags() {
        let tag = r#"W/"1-2-3""#;
        let check = |text: &'static str| matches(Some(&HeaderValue::from_static(text)), tag);
        assert!(check(r#"W/"1-2-3""#));
        assert!(check(r#""1-2-3""#), "a strong form of the tag");
        assert!(check(r#""x", W/"1-2-3""#));
        assert!(!check("*"));
        assert!(!check(r#"W/"1-2-4""#));
        assert!(!matches(None, tag));
    }
}
