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
/// Adapters make it the cause of the `Unexpected` error of any port when the driver
/// says the connection failed (refused, reset, timed out waiting for the pool), with
/// the driver's error as its source. [`Unavailable::is_cause_of`] finds it anywhere in
/// an error's chain (through context and through the `Unexpected` variants of the
/// port and use-case errors), and the API answers `503` with `Retry-After`, not `500`.
#[derive(Debug, thiserror::Error)]
#[error("{dependency} is unavailable")]
pub struct Unavailable {
    /// What is unavailable (`PostgreSQL`, `SQLite`).
    pub dependency: &'static str,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl Unavailable {
    /// `dependency` is unavailable, as the driver's `source` says.
    pub fn new(
        dependency: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            dependency,
            source: Box::new(source),
        }
    }

    /// Whether `error` was caused by an unavailable dependency.
    pub fn is_cause_of(error: &anyhow::Error) -> bool {
        error.downcast_ref::<Self>().is_some() || error.chain().any(|e| e.is::<Self>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    enum PortError {
        #[error(transparent)]
        Unexpected(#[from] anyhow::Error),
    }

    #[test]
    fn an_unavailable_cause_is_found_through_context_and_port_errors() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let cause = anyhow::Error::new(Unavailable::new("PostgreSQL", refused)).context("reading");
        let wrapped = anyhow::Error::new(PortError::Unexpected(cause)).context("listing imports");
        assert!(Unavailable::is_cause_of(&wrapped));
        assert!(format!("{wrapped:#}").contains("PostgreSQL is unavailable"));
        let bug = anyhow::Error::new(PortError::Unexpected(anyhow::anyhow!("a bug")));
        assert!(!Unavailable::is_cause_of(&bug));
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
