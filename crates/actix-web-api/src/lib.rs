//! `intake-actix-web-api`: the driving adapter that serves Intake over HTTP (DESIGN §11,
//! §12).
//!
//! Handlers parse the request into domain types, call one use case of
//! [`intake_domain::datasets::DatasetService`] or
//! [`intake_domain::ingest::ImportService`] and map the result into a DTO; every error
//! becomes an RFC 9457 problem document ([`ApiError`]). A middleware gives each request
//! an `X-Request-Id` (the client's when it sent a valid one), runs it inside a tracing
//! span carrying that id, and counts it in the Prometheus metrics. The OpenAPI 3.1
//! document is generated from the handlers and DTOs ([`openapi::ApiDoc`]).

pub mod auth;
mod conditional;
mod context;
mod deadline;
mod dto;
mod error;
mod export;
mod gate;
mod metrics;
mod negotiate;
pub mod openapi;
mod policy;
mod refusals;
mod routes;

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{App, web};
use intake_domain::callbacks::CallbackListings;
use intake_domain::datasets::DatasetService;
use intake_domain::delivery::DeliveryService;
use intake_domain::ingest::ImportService;
use intake_domain::ports::{Health, RateLimit, RateLimiter};
use intake_domain::sources::SourceService;
use intake_domain::work::WorkerControl;

pub use error::{ApiError, FieldError};
pub use metrics::Metrics;
pub use routes::admin::{LoggedError, Logging};

/// How the API behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The largest JSON request body (datasets, contracts), in bytes.
    pub max_json_bytes: usize,
    /// The longest an import request with `?wait=true` waits for its report.
    pub max_wait: Duration,
    /// Records and conflicts a dry run shows.
    pub dry_run_sample: usize,
    /// Bearer tokens (none: authentication is off).
    pub tokens: Vec<auth::Token>,
    /// The token bucket each caller (token, or IP without one) gets; `None`: no limit.
    pub rate_limit: Option<RateLimit>,
    /// The deadline of a request without `Request-Timeout`.
    pub default_timeout: Duration,
    /// The longest deadline a `Request-Timeout` may ask for.
    pub max_timeout: Duration,
    /// The longest path and query string read, in bytes.
    pub max_url_bytes: usize,
    /// The most header bytes (names and values) read.
    pub max_header_bytes: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            max_json_bytes: 1 << 20,
            max_wait: Duration::from_secs(30),
            dry_run_sample: 100,
            tokens: Vec::new(),
            rate_limit: None,
            default_timeout: Duration::from_secs(60),
            max_timeout: Duration::from_secs(600),
            max_url_bytes: 8 * 1024,
            max_header_bytes: 16 * 1024,
        }
    }
}

/// What the handlers share: the use cases, the dependencies readiness checks, the
/// metrics and the settings.
pub struct ApiState {
    /// Datasets, contracts, records and conflicts.
    pub datasets: Arc<DatasetService>,
    /// Imports.
    pub imports: Arc<ImportService>,
    /// Subscriptions and their deliveries.
    pub deliveries: Arc<DeliveryService>,
    /// Callback timers and their outcome.
    pub callbacks: Arc<CallbackListings>,
    /// Pull sources.
    pub sources: Arc<SourceService>,
    /// Long-running jobs and the rollup series they keep.
    pub jobs: Arc<intake_domain::jobs::JobService>,
    /// The dependencies `/readyz` checks (each database, cache, …).
    pub dependencies: Vec<Arc<dyn Health>>,
    /// Decides whether a caller is within `settings.rate_limit`.
    pub rate_limiter: Option<Arc<dyn RateLimiter>>,
    /// The Prometheus registry behind `/metrics`.
    pub metrics: Arc<Metrics>,
    /// How the API behaves.
    pub settings: Settings,
    /// When the service started.
    pub started: Instant,
    /// What the management API shows and changes.
    pub admin: AdminState,
}

/// What the management API (`/admin/…`) shows and changes.
pub struct AdminState {
    /// This instance's name (`{host}-{pid}`), the prefix of its workers' names.
    pub instance: String,
    /// The configuration in force, every secret and token already redacted.
    pub config: serde_json::Value,
    /// Pauses of each kind of work (for every instance) and this process's workers.
    pub workers: Arc<WorkerControl>,
    /// The log filter, changed at run time.
    pub log: Arc<dyn Logging>,
    /// Backups of the database, where the service makes them (SQLite).
    pub backups: Option<Arc<dyn intake_domain::ports::Backups>>,
}

/// The whole application: every route, the request-id and metrics middleware, and
/// problem documents for unknown routes and malformed requests. The binary and the
/// tests build the server from this one function.
pub fn app(
    state: Arc<ApiState>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let metrics = state.metrics.clone();
    let max_json = state.settings.max_json_bytes;
    App::new()
        .app_data(web::Data::from(state))
        .app_data(web::Data::from(metrics))
        .app_data(error::json_config(max_json))
        .app_data(web::PayloadConfig::new(max_json))
        .app_data(error::query_config())
        .app_data(error::path_config())
        .configure(routes::configure)
        .configure(openapi::configure)
        .default_service(web::to(error::no_route))
        .wrap(actix_web::middleware::from_fn(refusals::problems))
        .wrap(actix_web::middleware::from_fn(gate::gate))
        .wrap(actix_web::middleware::from_fn(deadline::deadline))
        .wrap(actix_web::middleware::from_fn(negotiate::negotiate))
        .wrap(actix_web::middleware::from_fn(context::request_context))
}
