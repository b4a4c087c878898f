use std::time::Duration;

use chrono::{DateTime, Utc};

/// The current time, and waiting. A port so that timers, leases, callbacks and idle
/// workers can be tested without real time, and so `domain` needs no async runtime.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait::async_trait]
pub trait Clock: Send + Sync {
    /// Now, in UTC. Successive calls MUST NOT go backwards.
    fn now(&self) -> DateTime<Utc>;

    /// Completes after `duration` (a worker idling between polls). Dropping the future
    /// cancels the wait.
    async fn sleep(&self, duration: Duration);
}
