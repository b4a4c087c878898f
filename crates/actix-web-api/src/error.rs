//! Every error the API answers, as an RFC 9457 problem document
//! (`application/problem+json`): `type`, `title`, `status`, `detail`, `instance` (the
//! request id), a stable snake_case `code`, and `errors` naming each bad field.

use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use intake_domain::ContractError;
use intake_domain::datasets::DatasetError;
use intake_domain::delivery::SubscribeError;
use intake_domain::ingest::{LookupError, ReceiveError, ReprocessError};
use intake_domain::ports::DeliveryError;
use serde::Serialize;
use utoipa::ToSchema;

use crate::context;

/// How long a client should wait before retrying a `503`.
const RETRY_AFTER_SECONDS: u32 = 2;

/// One field at fault in a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// Where the field is: a query parameter, a path segment, or a dotted path inside
    /// the body (`contract.key[1]`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem (`urn:intake:problem:<code>`).
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind of problem.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong with this request.
    pub detail: String,
    /// The request id (`X-Request-Id`) to quote when reporting it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// A stable snake_case code for programs.
    pub code: String,
    /// The fields at fault, for validation errors.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

impl Problem {
    /// A problem of `status` with a `code` of its own (for answers no [`ApiError`]
    /// variant names), without `instance` or field errors.
    pub(crate) fn new(status: StatusCode, code: &str, detail: String) -> Self {
        Self {
            kind: format!("urn:intake:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail,
            instance: None,
            code: code.to_owned(),
            errors: Vec::new(),
        }
    }
}

/// An answer other than success. Each variant has one status and one code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed (query, path, JSON body); `errors` names fields.
    #[error("{detail}")]
    BadRequest {
        /// What is wrong.
        detail: String,
        /// The fields at fault.
        errors: Vec<FieldError>,
    },
    /// 401: no valid bearer token.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: a valid token without the scope the route needs.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such dataset, contract, import, record or route.
    #[error("{0}")]
    NotFound(String),
    /// 405: the route exists, not with this method.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 406: the client accepts no format this route answers in.
    #[error("{0}")]
    NotAcceptable(String),
    /// 409: the state of the resource forbids it (a name taken, an import running).
    #[error("{0}")]
    Conflict(String),
    /// 413: the body is larger than the limit.
    #[error("{0}")]
    TooLarge(String),
    /// 429: the caller's rate limit is spent for now (`Retry-After` says how long).
    #[error("{0}")]
    TooManyRequests(String),
    /// 415: the body's media type cannot be read here.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 422: well-formed JSON that is not a valid contract.
    #[error("{detail}")]
    InvalidContract {
        /// What is wrong.
        detail: String,
        /// Every problem, naming its contract field.
        errors: Vec<FieldError>,
    },
    /// 504: the request's deadline passed; its work was cancelled.
    #[error("{0}")]
    Timeout(String),
    /// 503: a dependency is down.
    #[error("{0}")]
    Unavailable(String),
    /// 500: a failure of ours; the cause is logged, never sent.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    /// A 400 naming one field.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        let message = message.into();
        Self::BadRequest {
            detail: message.clone(),
            errors: vec![FieldError {
                field: field.into(),
                message,
            }],
        }
    }

    /// An unexpected failure: `503` when a dependency is unavailable (logged in one
    /// line, without a backtrace), `500` otherwise.
    pub fn unexpected(e: anyhow::Error) -> Self {
        if intake_domain::ports::Unavailable::is_cause_of(&e) {
            tracing::warn!(error = %format!("{e:#}"), "a dependency is unavailable; answered 503");
            return Self::Unavailable(
                "a dependency of the service (its database) is unavailable; retry shortly".into(),
            );
        }
        Self::Internal(e)
    }

    fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { .. } => "bad_request",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::MethodNotAllowed(_) => "method_not_allowed",
            Self::NotAcceptable(_) => "not_acceptable",
            Self::Conflict(_) => "conflict",
            Self::TooLarge(_) => "payload_too_large",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::TooManyRequests(_) => "too_many_requests",
            Self::InvalidContract { .. } => "invalid_contract",
            Self::Unavailable(_) => "unavailable",
            Self::Timeout(_) => "timeout",
            Self::Internal(_) => "internal",
        }
    }

    pub(crate) fn problem(&self) -> Problem {
        let status = self.status_code();
        let errors = match self {
            Self::BadRequest { errors, .. } | Self::InvalidContract { errors, .. } => {
                errors.clone()
            }
            _ => Vec::new(),
        };
        Problem {
            kind: format!("urn:intake:problem:{}", self.code()),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            // 5xx bodies are fixed text: causes go to the log, never to clients.
            detail: self.to_string(),
            instance: context::current_request_id(),
            code: self.code().to_owned(),
            errors,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::InvalidContract { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::Internal(e) = self {
            // The request's id as a field too: its span may be filtered out.
            let request_id = crate::context::current_request_id().unwrap_or_default();
            tracing::error!(request_id, error.message = %e, error.cause_chain = ?e, "request failed");
        }
        let body = serde_json::to_vec(&self.problem()).unwrap_or_default();
        let mut res = HttpResponse::build(self.status_code());
        res.insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        ));
        if let Self::Unavailable(_) = self {
            res.insert_header((header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS)));
        }
        if let Self::Unauthorized(_) = self {
            res.insert_header((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"intake\""),
            ));
        }
        res.body(body)
    }
}

impl From<ContractError> for ApiError {
    fn from(e: ContractError) -> Self {
        match &e {
            ContractError::Syntax { .. } => Self::BadRequest {
                detail: e.to_string(),
                errors: Vec::new(),
            },
            ContractError::Invalid(issues) => Self::InvalidContract {
                detail: "the contract is invalid".to_owned(),
                errors: issues
                    .iter()
                    .map(|i| FieldError {
                        field: format!("contract.{}", i.field),
                        message: i.message.clone(),
                    })
                    .collect(),
            },
        }
    }
}

impl From<DatasetError> for ApiError {
    fn from(e: DatasetError) -> Self {
        match e {
            DatasetError::UnknownDataset => Self::NotFound("no such dataset".into()),
            DatasetError::AlreadyExists => {
                Self::Conflict("a dataset with this name exists already".into())
            }
            e @ (DatasetError::Deleted | DatasetError::Busy(_)) => Self::Conflict(e.to_string()),
            DatasetError::UnknownContract => Self::NotFound("no such contract version".into()),
            DatasetError::UnknownRecord => Self::NotFound("no such record".into()),
            DatasetError::BadKey(e) => Self::field("key", e.to_string()),
            DatasetError::UnknownDimension { name, dimensions } => {
                let field = name.clone();
                let message = DatasetError::UnknownDimension { name, dimensions }.to_string();
                Self::field(field, message)
            }
            DatasetError::UnknownField { name, fields } => {
                let field = name.clone();
                let message = DatasetError::UnknownField { name, fields }.to_string();
                Self::field(field, message)
            }
            e @ DatasetError::UnknownMeasure { .. } => Self::field("measure", e.to_string()),
            DatasetError::InvalidQuery { field, message } => Self::field(field, message),
            DatasetError::ContractTooLarge(e) => too_large(&e),
            DatasetError::Unexpected(e) => Self::unexpected(e),
        }
    }
}

impl From<LookupError> for ApiError {
    fn from(e: LookupError) -> Self {
        match e {
            LookupError::UnknownDataset => Self::NotFound("no such dataset".into()),
            LookupError::UnknownImport => Self::NotFound("no such import in this dataset".into()),
            LookupError::Busy => {
                Self::Unavailable("as many dry runs as allowed are running; retry shortly".into())
            }
            e @ LookupError::NotADocument => Self::Conflict(e.to_string()),
            LookupError::ContractTooLarge(e) => too_large(&e),
            LookupError::Unexpected(e) => Self::unexpected(e),
        }
    }
}

impl From<ReceiveError> for ApiError {
    fn from(e: ReceiveError) -> Self {
        match e {
            ReceiveError::UnknownDataset => Self::NotFound("no such dataset".into()),
            e @ ReceiveError::TooLarge { .. } => Self::TooLarge(e.to_string()),
            e @ ReceiveError::UnsupportedMediaType { .. } => {
                Self::UnsupportedMediaType(e.to_string())
            }
            e @ ReceiveError::Body(_) => Self::BadRequest {
                detail: e.to_string(),
                errors: Vec::new(),
            },
            e @ ReceiveError::Busy { .. } => Self::Unavailable(format!("{e}; retry shortly")),
            ReceiveError::Unexpected(e) => Self::unexpected(e),
        }
    }
}

impl From<ReprocessError> for ApiError {
    fn from(e: ReprocessError) -> Self {
        match e {
            ReprocessError::NotFound => Self::NotFound("no such import in this dataset".into()),
            ReprocessError::UnknownContract => Self::field(
                "contract_version",
                "the dataset has no such contract version",
            ),
            ReprocessError::Busy => Self::Conflict(
                "the import is still being processed; reprocess it once it has finished".into(),
            ),
            ReprocessError::Unexpected(e) => Self::unexpected(e),
        }
    }
}

impl From<SubscribeError> for ApiError {
    fn from(e: SubscribeError) -> Self {
        match e {
            SubscribeError::UnknownDataset => Self::NotFound("no such dataset".into()),
            SubscribeError::NotFound => {
                Self::NotFound("no such subscription in this dataset".into())
            }
            SubscribeError::UrlRefused(why) => Self::field("url", why),
            e @ SubscribeError::InvalidSecret => Self::field("secret", e.to_string()),
            SubscribeError::Unexpected(e) => Self::unexpected(e),
        }
    }
}

impl From<DeliveryError> for ApiError {
    fn from(e: DeliveryError) -> Self {
        match e {
            DeliveryError::NotFound => {
                Self::NotFound("no such subscription in this dataset".into())
            }
            DeliveryError::UnknownDataset => Self::NotFound("no such dataset".into()),
            e @ DeliveryError::ClaimLost => Self::unexpected(anyhow::Error::new(e)),
            DeliveryError::Unexpected(e) => Self::unexpected(e),
        }
    }
}

/// A contract over a limit: a `400` naming the part and the setting.
fn too_large(e: &intake_domain::contract::ContractTooLarge) -> ApiError {
    ApiError::field(format!("contract.{}", e.part), e.to_string())
}

/// Malformed or oversized JSON bodies, as problems.
pub(crate) fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(|e, _| {
            let api = match &e {
                JsonPayloadError::OverflowKnownLength { .. }
                | JsonPayloadError::Overflow { .. } => ApiError::TooLarge(e.to_string()),
                JsonPayloadError::ContentType => ApiError::UnsupportedMediaType(
                    "send this body as Content-Type: application/json".into(),
                ),
                JsonPayloadError::Deserialize(de) => ApiError::BadRequest {
                    detail: format!("the JSON body is invalid: {de}"),
                    errors: Vec::new(),
                },
                _ => ApiError::BadRequest {
                    detail: e.to_string(),
                    errors: Vec::new(),
                },
            };
            api.into()
        })
}

/// Malformed query strings, as problems.
pub(crate) fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|e: QueryPayloadError, _| {
        ApiError::BadRequest {
            detail: format!("the query string is invalid: {e}"),
            errors: Vec::new(),
        }
        .into()
    })
}

/// Malformed path segments, as problems.
pub(crate) fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|e: PathError, _| {
        ApiError::BadRequest {
            detail: format!("the path is invalid: {e}"),
            errors: Vec::new(),
        }
        .into()
    })
}

/// Routes that do not exist.
pub(crate) async fn no_route(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let (method, path) = (req.method(), req.path());
    Err(ApiError::NotFound(format!("no route for {method} {path}")))
}
