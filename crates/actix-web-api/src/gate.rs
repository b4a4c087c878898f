//! The gate every request passes after it has its request id: who is calling (a
//! configured bearer token, or anyone when authentication is off), and whether that
//! caller may use this route. A refused request never reaches a handler; its answer is
//! a problem document like any other.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::AUTHORIZATION;
use actix_web::middleware::Next;
use actix_web::{ResponseError as _, web};

use crate::auth::{self, Caller, Verdict};
use crate::{ApiError, ApiState};

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
    let caller = auth::identify(&state.settings.tokens, req.request());
    if let Caller::Token(token) = &caller {
        tracing::Span::current().record("caller", token.name.as_str());
    }
    let scope = auth::required_scope(req.method(), req.path());
    let has_header = req.headers().contains_key(AUTHORIZATION);
    let refused = match auth::decide(&caller, scope, has_header) {
        Verdict::Allowed => None,
        Verdict::Unauthenticated(why) => Some(ApiError::Unauthorized(why.to_owned())),
        Verdict::Forbidden(scope) => Some(ApiError::Forbidden(format!(
            "this token does not have the {} scope this route needs",
            scope.as_str()
        ))),
    };
    match refused {
        None => next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body),
        Some(error) => {
            tracing::info!(code = %error, "request refused");
            let res = error.error_response();
            Ok(req.into_response(res).map_into_right_body())
        }
    }
}
