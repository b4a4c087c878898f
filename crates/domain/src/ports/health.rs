/// A connection pool's use, for the metrics of a running service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolUsage {
    /// Connections open.
    pub size: u32,
    /// Of which idle.
    pub idle: u32,
    /// The most the pool opens.
    pub max: u32,
}

/// A dependency (a database, a cache) that cannot be reached now, or gave no
/// connection in time: a passing outage, not a fault of the request nor a bug.
///
/// Adapters put it in the context of the `Unexpected` error of any port when the
/// driver says the connection failed (refused, reset, timed out waiting for the
/// pool); [`Unavailable::is_cause_of`] finds it however much context is added above,
/// and the API answers `503` with `Retry-After` instead of `500`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0} is unavailable")]
pub struct Unavailable(pub &'static str);

impl Unavailable {
    /// Whether `error` was caused by an unavailable dependency.
    pub fn is_cause_of(error: &anyhow::Error) -> bool {
        error.downcast_ref::<Self>().is_some()
    }
}

/// Errors of a health check.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    /// The dependency did not answer, or answered wrongly.
    #[error(transparent)]
    Unreachable(#[from] anyhow::Error),
}

/// A dependency the service needs (a database, a cache), as readiness sees it.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait::async_trait]
pub trait Health: Send + Sync {
    /// What it is (`sqlite`, `postgres`, `redis`), for `/readyz` and the metrics.
    fn name(&self) -> &'static str;

    /// Whether it answers now. Bounded in time by the adapter (a pool's acquire
    /// timeout, a connection timeout).
    ///
    /// # Errors
    /// - `Unreachable` with the reason when it does not answer.
    async fn check(&self) -> Result<(), HealthError>;

    /// Its connection pool's use, when it has one.
    fn pool(&self) -> Option<PoolUsage>;

    /// Whether the service cannot serve without it (`/readyz` answers `503` while it
    /// is down), rather than serve degraded (a cache, or a shared rate limiter with an
    /// in-process fallback: `200` with status `degraded`).
    fn required(&self) -> bool {
        true
    }
}
