use chrono::{DateTime, Utc};

/// The current time. A port so that timers, leases and callbacks can be tested
/// without sleeping.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait Clock: Send + Sync {
    /// Now, in UTC. Successive calls MUST NOT go backwards.
    fn now(&self) -> DateTime<Utc>;
}
