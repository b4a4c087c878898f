//! Rate limiting (DESIGN §11): a token bucket per caller, kept in the process or
//! shared by every instance.

use std::time::Duration;

/// A token bucket's shape: it holds at most `burst` tokens, starts full, and gains
/// `per_second` tokens a second; a request takes one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// The bucket's size: the most requests in a burst. At least 1.
    pub burst: u32,
    /// Tokens added per second. More than 0.
    pub per_second: f64,
}

/// What a limiter decided about one request, with what the `RateLimit-*` and
/// `Retry-After` headers tell the client.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateDecision {
    /// Whether the request may go on (a token was taken).
    pub allowed: bool,
    /// The bucket's size.
    pub limit: u32,
    /// Whole tokens left after this request.
    pub remaining: u32,
    /// Zero when allowed; otherwise how long until a token is there.
    pub retry_after: Duration,
    /// How long until the bucket is full again.
    pub reset: Duration,
}

/// Errors of a limiter.
#[derive(Debug, thiserror::Error)]
pub enum RateLimitError {
    /// The shared store did not answer; the caller falls back to another limiter.
    #[error(transparent)]
    Unavailable(#[from] anyhow::Error),
}

/// Decides, one request at a time, whether a caller is within its rate.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait::async_trait]
pub trait RateLimiter: Send + Sync {
    /// Takes a token from `key`'s bucket when it has one. A key never seen (or whose
    /// bucket has filled up and been forgotten) starts full. Atomic per key: however
    /// many requests race, no more than the bucket holds are allowed.
    ///
    /// # Errors
    /// - `Unavailable` when the store cannot be reached; nothing was decided.
    async fn acquire(&self, key: &str, limit: RateLimit) -> Result<RateDecision, RateLimitError>;
}
