//! `/healthz` (the process serves), `/readyz` (every dependency answers) and
//! `/metrics` (Prometheus, OpenMetrics text).

use std::time::Duration;

use actix_web::{HttpResponse, web};
use futures_lite::future;

use intake_domain::ports::Health;

use crate::dto::{DependencyResponse, HealthResponse, ReadyResponse};
use crate::policy::Policy;
use crate::{ApiState, Metrics};

/// How long `/readyz` waits for one dependency.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource("/healthz", Policy::Open).route(web::get().to(healthz)))
        .service(super::resource("/readyz", Policy::Open).route(web::get().to(readyz)))
        .service(super::resource("/metrics", Policy::Admin).route(web::get().to(metrics)));
}

/// Alive: answers while the process serves requests.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Alive", body = HealthResponse)))]
pub(crate) async fn healthz(state: web::Data<ApiState>) -> HttpResponse {
    HttpResponse::Ok().json(HealthResponse {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        uptime_seconds: state.started.elapsed().as_secs(),
    })
}

/// Checks one dependency, [`CHECK_TIMEOUT`] at most: why it is down, if it is, and how
/// long the check took.
pub(crate) async fn check(dependency: &dyn Health) -> (Option<String>, Duration) {
    let began = std::time::Instant::now();
    let check = async { Some(dependency.check().await) };
    let late = async {
        actix_web::rt::time::sleep(CHECK_TIMEOUT).await;
        None
    };
    let error = match future::or(check, late).await {
        Some(Ok(())) => None,
        Some(Err(e)) => Some(format!("{e:#}")),
        None => Some(format!("no answer within {CHECK_TIMEOUT:?}")),
    };
    (error, began.elapsed())
}

/// Ready: every required dependency answers (each is checked, 2 s at most). A down
/// dependency the service can do without (Redis: the cache and the shared rate
/// limiter fall back to the process) makes it `degraded`, still `200`.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "Every required dependency is up (`ready`, or `degraded` when an optional one is down)", body = ReadyResponse),
              (status = 503, description = "A dependency is down", body = ReadyResponse)))]
pub(crate) async fn readyz(state: web::Data<ApiState>) -> HttpResponse {
    let mut dependencies = Vec::new();
    let mut checks = std::collections::BTreeMap::new();
    let (mut required_down, mut optional_down) = (false, false);
    for dependency in &state.dependencies {
        let (error, _) = check(dependency.as_ref()).await;
        // The cause (which can name hosts) is logged, never answered.
        if let Some(error) = &error {
            tracing::warn!(dependency = dependency.name(), %error, "dependency down");
        }
        let up = error.is_none();
        let check = match (up, dependency.required()) {
            (true, _) => "up",
            (false, true) => "down",
            (false, false) => "degraded",
        };
        required_down |= !up && dependency.required();
        optional_down |= !up && !dependency.required();
        checks.insert(dependency.name().to_owned(), check.to_owned());
        dependencies.push(DependencyResponse {
            name: dependency.name().into(),
            status: if up { "up" } else { "down" }.into(),
            error: None,
        });
    }
    let (mut builder, status) = if required_down {
        (HttpResponse::ServiceUnavailable(), "unavailable")
    } else if optional_down {
        (HttpResponse::Ok(), "degraded")
    } else {
        (HttpResponse::Ok(), "ready")
    };
    builder.json(ReadyResponse {
        status: status.into(),
        checks,
        dependencies,
    })
}

/// Metrics: requests by route and status with latency histograms, imports by
/// outcome, records ingested, the import queue's depth, each connection pool and
/// pull sources by health.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "OpenMetrics text", body = String,
               content_type = "application/openmetrics-text")))]
pub(crate) async fn metrics(
    state: web::Data<ApiState>,
    metrics: web::Data<Metrics>,
) -> HttpResponse {
    let depth = match state.imports.depth().await {
        Ok(depth) => Some(depth),
        Err(e) => {
            tracing::warn!(error = %e, "reading the import queue's depth failed");
            None
        }
    };
    let pools: Vec<_> = state
        .dependencies
        .iter()
        .filter_map(|d| Some((d.name(), d.pool()?)))
        .collect();
    metrics.set_gauges(depth, &pools);
    match state.sources.counts().await {
        Ok(counts) => metrics.set_sources(&counts.map(|(h, n)| (h.as_str(), n))),
        Err(e) => tracing::warn!(error = %e, "counting sources by health failed"),
    }
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(metrics.encode())
}
