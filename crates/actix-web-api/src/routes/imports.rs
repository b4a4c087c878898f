//! Imports: documents streamed into the vault, their status and report, the stored
//! bytes, and reprocessing with another contract version.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use futures_lite::stream;
use intake_domain::ContractVersion;
use intake_domain::ports::{ImportSummary, VaultReader};

use super::{dataset_name, import_id, page};
use crate::dto::{ImportListResponse, ImportQuery, ImportResponse, PageQuery, ReprocessBody};
use crate::error::Problem;
use crate::policy::Policy;
use crate::{ApiError, ApiState};

/// The longest `Idempotency-Key` kept.
const MAX_IDEMPOTENCY_KEY: usize = 200;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        super::resource_in(super::V1_DATASET, "/imports", Policy::Api)
            .route(web::get().to(list_imports))
            .route(web::post().to(create_import)),
    )
    .service(
        super::resource_in(super::V1_DATASET, "/imports/{import}", Policy::Api)
            .route(web::get().to(get_import)),
    )
    .service(
        super::resource_in(
            super::V1_DATASET,
            "/imports/{import}/document",
            Policy::ApiDocument,
        )
        .route(web::get().to(get_document)),
    )
    .service(
        super::resource_in(
            super::V1_DATASET,
            "/imports/{import}/reprocess",
            Policy::Api,
        )
        .route(web::post().to(reprocess)),
    );
}

pub(super) fn location(import: &ImportSummary) -> String {
    format!(
        "/v1/datasets/{}/imports/{}",
        import.import.dataset, import.id
    )
}

pub(super) fn with_location(
    mut builder: actix_web::HttpResponseBuilder,
    import: &ImportSummary,
) -> HttpResponse {
    builder
        .insert_header((header::LOCATION, location(import)))
        .json(ImportResponse::from(import))
}

/// The `Idempotency-Key` header, when sent: 1–200 visible ASCII characters.
pub(super) fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(value) = req.headers().get("idempotency-key") else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .filter(|v| (1..=MAX_IDEMPOTENCY_KEY).contains(&v.len()))
        .filter(|v| v.bytes().all(|b| b.is_ascii_graphic()))
        .map(|v| Some(v.to_owned()))
        .ok_or_else(|| {
            ApiError::field(
                "Idempotency-Key",
                "an idempotency key is 1-200 visible ASCII characters",
            )
        })
}

/// Refuses a body whose declared length is over the limit before reading it.
pub(super) fn check_length(req: &HttpRequest, limit: u64) -> Result<(), ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(length) if length > limit => Err(ApiError::TooLarge(format!(
            "the document is larger than {limit} bytes"
        ))),
        _ => Ok(()),
    }
}

/// How long before the request's deadline `?wait=true` stops waiting, to answer.
const WAIT_MARGIN: std::time::Duration = std::time::Duration::from_millis(250);

/// Send a document: its bytes are streamed into the vault and queued for processing
/// with the dataset's current contract. The same body (or `Idempotency-Key`) twice
/// gives back the first import, applied once, with `duplicate_of` and an
/// `Intake-Duplicate-Of` header naming it.
#[utoipa::path(post, path = "/v1/datasets/{dataset}/imports", tag = "imports",
    params(("dataset" = String, Path, pattern = r"^[a-z][a-z0-9_-]{0,62}$", description = "The dataset's name"),
           ("Idempotency-Key" = Option<String>, Header, description = "Same key, same import"),
           ImportQuery),
    request_body(description = "The document, in the contract's format",
        content(("text/csv"), ("application/xml"), ("application/json"), ("application/x-ndjson"),
                ("application/octet-stream"))),
    responses(
        (status = 200, description = "Finished while waiting, or already received: then the first import, with `duplicate_of` naming it", body = ImportResponse,
         headers(("Intake-Duplicate-Of" = String, description = "Only for a document already received (same bytes or `Idempotency-Key`): the import it repeats"))),
        (status = 202, description = "Stored and queued", body = ImportResponse,
         headers(("Location" = String, description = "Where to poll the import"))),
        (status = 400, description = "Malformed name, key or body", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such dataset", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Document too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The contract reads another format", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn create_import(
    state: web::Data<ApiState>,
    path: web::Path<String>,
    query: web::Query<ImportQuery>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let name = dataset_name(&path)?;
    let key = idempotency_key(&req)?;
    check_length(&req, state.imports.settings().max_document_bytes)?;
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::UnsupportedMediaType(
                "send the document with a Content-Type (text/csv, application/xml, \
                 application/json, application/x-ndjson)"
                    .into(),
            )
        })?;
    let received = state
        .imports
        .receive(&name, content_type, "api", key, body)
        .await?;
    let mut import = received.import;
    if query.wait == Some(true) {
        import = wait_for(&state, import).await;
    }
    let done = import.status.is_finished() || !received.is_new;
    let mut builder = if done {
        HttpResponse::Ok()
    } else {
        HttpResponse::Accepted()
    };
    if received.is_new {
        return Ok(with_location(builder, &import));
    }
    // A repeated document: the earlier import, saying so.
    let mut answer = ImportResponse::from(&import);
    answer.duplicate_of = Some(import.id.to_string());
    Ok(builder
        .insert_header((header::LOCATION, location(&import)))
        .insert_header((DUPLICATE_OF, import.id.to_string()))
        .json(answer))
}

/// The header naming the import a repeated document repeats.
const DUPLICATE_OF: &str = "Intake-Duplicate-Of";

/// The import once it has finished, or as it is when the wait runs out: the
/// settings' `max_wait`, ending before the request's deadline does (to answer `202`
/// with where to poll). The document is stored and queued: a failure to wait is no
/// failure to import.
pub(super) async fn wait_for(state: &ApiState, import: ImportSummary) -> ImportSummary {
    let wait = intake_domain::deadline::current().map_or(state.settings.max_wait, |at| {
        let left = at.saturating_duration_since(std::time::Instant::now());
        state
            .settings
            .max_wait
            .min(left.saturating_sub(WAIT_MARGIN))
    });
    let dataset = &import.import.dataset;
    match state.imports.wait(dataset, &import.id, wait).await {
        Ok(finished) => finished,
        Err(e) => {
            tracing::warn!(import = %import.id, error = %e, "waiting for the import failed");
            import
        }
    }
}

/// List a dataset's imports, newest first.
#[utoipa::path(get, path = "/v1/datasets/{dataset}/imports", tag = "imports",
    params(("dataset" = String, Path, pattern = r"^[a-z][a-z0-9_-]{0,62}$", description = "The dataset's name"), PageQuery),
    responses(
        (status = 200, description = "A page of imports", body = ImportListResponse),
        (status = 400, description = "Malformed name or page", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such dataset", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list_imports(
    state: web::Data<ApiState>,
    path: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let name = dataset_name(&path)?;
    let (limit, offset) = page(&query)?;
    let imports = state.imports.list(&name, limit, offset).await?;
    let imports = imports.iter().map(|i| answer(&state, i)).collect();
    Ok(HttpResponse::Ok().json(ImportListResponse {
        imports,
        limit,
        offset,
    }))
}

/// Read an import: its status, its progress while it is processed, and, once
/// processed, its report.
#[utoipa::path(get, path = "/v1/datasets/{dataset}/imports/{import}", tag = "imports",
    params(("dataset" = String, Path, pattern = r"^[a-z][a-z0-9_-]{0,62}$", description = "The dataset's name"),
           ("import" = String, Path, pattern = r"^[A-Za-z0-9_-]{1,64}$", description = "The import's id")),
    responses(
        (status = 200, description = "The import", body = ImportResponse),
        (status = 400, description = "Malformed name or id", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such dataset or import", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn get_import(
    state: web::Data<ApiState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let name = dataset_name(&path.0)?;
    let id = import_id("import", &path.1)?;
    let import = state.imports.get_in(&name, &id).await?;
    Ok(HttpResponse::Ok().json(answer(&state, &import)))
}

/// An import as answered: with its progress while this instance processes it.
pub(super) fn answer(state: &ApiState, import: &ImportSummary) -> ImportResponse {
    let mut answer = ImportResponse::from(import);
    if import.status == intake_domain::ImportStatus::Processing {
        answer.progress = state.imports.progress(&import.id).as_ref().map(Into::into);
    }
    answer
}

/// Download the document byte for byte, as it was received.
#[utoipa::path(get, path = "/v1/datasets/{dataset}/imports/{import}/document", tag = "imports",
    params(("dataset" = String, Path, pattern = r"^[a-z][a-z0-9_-]{0,62}$", description = "The dataset's name"),
           ("import" = String, Path, pattern = r"^[A-Za-z0-9_-]{1,64}$", description = "The import's id")),
    responses(
        (status = 200, description = "The stored bytes, with the media type they arrived with"),
        (status = 400, description = "Malformed name or id", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such dataset or import", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn get_document(
    state: web::Data<ApiState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let name = dataset_name(&path.0)?;
    let id = import_id("import", &path.1)?;
    let (import, reader) = state.imports.document(&name, &id).await?;
    let media_type = HeaderValue::from_str(&import.import.content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    // Stored bytes are the client's, served from the API's origin: never rendered.
    let disposition = format!("attachment; filename=\"{}\"", import.id);
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, media_type))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CONTENT_DISPOSITION, disposition))
        .no_chunking(import.size)
        .streaming(chunks(reader)))
}

/// The reader's chunks as a body stream; a read error ends the body early.
fn chunks(
    reader: Box<dyn VaultReader>,
) -> impl futures_lite::Stream<Item = Result<web::Bytes, ApiError>> {
    stream::unfold(Some(reader), |reader| async move {
        let mut reader = reader?;
        match reader.next_chunk().await {
            Ok(Some(chunk)) => Some((Ok(web::Bytes::from(chunk)), Some(reader))),
            Ok(None) => None,
            Err(e) => Some((Err(ApiError::Internal(anyhow::Error::new(e))), None)),
        }
    })
}

/// Queue a finished import again, to be processed with another contract version
/// (the current one when the body names none).
#[utoipa::path(post, path = "/v1/datasets/{dataset}/imports/{import}/reprocess", tag = "imports",
    params(("dataset" = String, Path, pattern = r"^[a-z][a-z0-9_-]{0,62}$", description = "The dataset's name"),
           ("import" = String, Path, pattern = r"^[A-Za-z0-9_-]{1,64}$", description = "The import's id")),
    request_body(content = Option<ReprocessBody>, description = "Optional: the contract version"),
    responses(
        (status = 202, description = "Queued again", body = ImportResponse,
         headers(("Location" = String, description = "Where to poll the import"))),
        (status = 400, description = "Malformed name, id, body or version", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such dataset or import", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Still being processed", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn reprocess(
    state: web::Data<ApiState>,
    path: web::Path<(String, String)>,
    body: Result<web::Bytes, actix_web::Error>,
) -> Result<HttpResponse, ApiError> {
    let name = dataset_name(&path.0)?;
    let id = import_id("import", &path.1)?;
    let body = body.map_err(|e| match e.as_response_error().status_code().as_u16() {
        413 => ApiError::TooLarge("the body is larger than the limit".into()),
        _ => ApiError::BadRequest {
            detail: format!("reading the body failed: {e}"),
            errors: Vec::new(),
        },
    })?;
    let body: ReprocessBody = if body.iter().all(u8::is_ascii_whitespace) {
        ReprocessBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest {
            detail: format!("the JSON body is invalid: {e}"),
            errors: Vec::new(),
        })?
    };
    let version = body
        .contract_version
        .map(|v| {
            ContractVersion::try_new(v)
                .map_err(|_| ApiError::field("contract_version", "versions start at 1"))
        })
        .transpose()?;
    state.imports.get_in(&name, &id).await?;
    let import = state.imports.reprocess(&id, version).await?;
    Ok(with_location(HttpResponse::Accepted(), &import))
}
