//! Rate limiting that needs no IO: the token bucket's arithmetic, which every
//! [`RateLimiter`] adapter applies (the in-process one in Rust, the Redis one in a Lua
//! script that mirrors [`take`]), and [`FallbackLimiter`], which keeps limiting in the
//! process while a shared limiter is unreachable.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::ports::{RateDecision, RateLimit, RateLimitError, RateLimiter};

/// A bucket's state: tokens left (fractional) at a time in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    /// Tokens in the bucket at `at_ms`.
    pub tokens: f64,
    /// When, in milliseconds of the limiter's clock.
    pub at_ms: u64,
}

impl RateLimit {
    /// Checks the shape.
    ///
    /// # Errors
    /// A message naming what is wrong.
    pub fn new(burst: u32, per_second: f64) -> Result<Self, String> {
        if burst == 0 {
            return Err("the burst must be at least 1".into());
        }
        if !(per_second.is_finite() && per_second > 0.0) {
            return Err(format!(
                "the rate must be more than 0 a second (got {per_second})"
            ));
        }
        Ok(Self { burst, per_second })
    }

    /// How long the bucket takes to gain `tokens`.
    fn time_for(self, tokens: f64) -> Duration {
        Duration::from_secs_f64((tokens.max(0.0) / self.per_second).min(1e9))
    }
}

/// The decision for a bucket holding `tokens` after the request (`allowed`: whether
/// the request took one).
pub fn decision(allowed: bool, tokens: f64, limit: RateLimit) -> RateDecision {
    let burst = f64::from(limit.burst);
    let tokens = tokens.clamp(0.0, burst);
    RateDecision {
        allowed,
        limit: limit.burst,
        // Whole tokens: at most `burst`, so the cast cannot truncate.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        remaining: tokens.floor() as u32,
        retry_after: if allowed {
            Duration::ZERO
        } else {
            limit.time_for(1.0 - tokens)
        },
        reset: limit.time_for(burst - tokens),
    }
}

/// Takes a token from `bucket` (full when `None`) at `now_ms`: the new state and the
/// decision. A clock that went backwards adds nothing.
pub fn take(bucket: Option<Bucket>, now_ms: u64, limit: RateLimit) -> (Bucket, RateDecision) {
    let burst = f64::from(limit.burst);
    let tokens = bucket.map_or(burst, |b| {
        #[allow(clippy::cast_precision_loss, reason = "milliseconds, far below 2^52")]
        let elapsed = now_ms.saturating_sub(b.at_ms) as f64 / 1000.0;
        (b.tokens + elapsed * limit.per_second).min(burst)
    });
    let allowed = tokens >= 1.0;
    let tokens = if allowed { tokens - 1.0 } else { tokens };
    let state = Bucket {
        tokens,
        at_ms: now_ms,
    };
    (state, decision(allowed, tokens, limit))
}

/// A shared limiter with an in-process one behind it: while the shared one fails,
/// each request is decided by the fallback (so limits still hold per instance) and
/// never refused for the failure. The switch each way is logged once.
pub struct FallbackLimiter {
    shared: Arc<dyn RateLimiter>,
    fallback: Arc<dyn RateLimiter>,
    degraded: AtomicBool,
}

impl FallbackLimiter {
    /// `shared` first, `fallback` while it fails.
    pub fn new(shared: Arc<dyn RateLimiter>, fallback: Arc<dyn RateLimiter>) -> Self {
        Self {
            shared,
            fallback,
            degraded: AtomicBool::new(false),
        }
    }

    /// Whether the last decision came from the fallback.
    pub fn is_degraded(&self) -> bool {
        self.degraded.load(Ordering::Relaxed)
    }
}

#[async_trait::async_trait]
impl RateLimiter for FallbackLimiter {
    async fn acquire(&self, key: &str, limit: RateLimit) -> Result<RateDecision, RateLimitError> {
        match self.shared.acquire(key, limit).await {
            Ok(decision) => {
                if self.degraded.swap(false, Ordering::Relaxed) {
                    tracing::info!("shared rate limiter back: limits are shared again");
                }
                Ok(decision)
            }
            Err(e) => {
                if !self.degraded.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error.message = %e,
                        "shared rate limiter unavailable: limiting in this process meanwhile");
                }
                self.fallback.acquire(key, limit).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::MockRateLimiter;

    fn limit(burst: u32, per_second: f64) -> RateLimit {
        RateLimit::new(burst, per_second).unwrap()
    }

    #[test]
    fn a_bucket_starts_full_empties_and_refills_with_time() {
        let l = limit(3, 2.0);
        let (b, d) = take(None, 1_000, l);
        assert!(d.allowed);
        assert_eq!((d.limit, d.remaining), (3, 2));
        assert_eq!(d.reset, Duration::from_millis(500));
        let (b, _) = take(Some(b), 1_000, l);
        let (b, d) = take(Some(b), 1_000, l);
        assert!(d.allowed && d.remaining == 0);
        let (b, d) = take(Some(b), 1_000, l);
        assert!(!d.allowed);
        assert_eq!(d.retry_after, Duration::from_millis(500));
        assert_eq!(d.reset, Duration::from_millis(1500));
        // 250 ms later half a token is there: still refused, 250 ms to go.
        let (b, d) = take(Some(b), 1_250, l);
        assert!(!d.allowed);
        assert_eq!(d.retry_after, Duration::from_millis(250));
        let (_, d) = take(Some(b), 1_500, l);
        assert!(d.allowed && d.remaining == 0);
        // Long idle fills the bucket, never beyond its size; a clock going back adds nothing.
        let (b, d) = take(
            Some(Bucket {
                tokens: 0.0,
                at_ms: 0,
            }),
            3_600_000,
            l,
        );
        assert_eq!(d.remaining, 2);
        let (_, d) = take(Some(b), 0, l);
        assert_eq!(d.remaining, 1);
    }

    #[test]
    fn shapes_are_checked() {
        assert!(RateLimit::new(0, 1.0).is_err());
        assert!(RateLimit::new(1, 0.0).is_err());
        assert!(RateLimit::new(1, f64::NAN).is_err());
    }

    #[test]
    fn the_fallback_decides_while_the_shared_limiter_fails() {
        let mut shared = MockRateLimiter::new();
        let mut calls = 0;
        shared.expect_acquire().returning(move |_, l| {
            calls += 1;
            if calls == 2 {
                Err(RateLimitError::Unavailable(anyhow::anyhow!("down")))
            } else {
                Ok(decision(true, 5.0, l))
            }
        });
        let mut fallback = MockRateLimiter::new();
        fallback
            .expect_acquire()
            .times(1)
            .returning(|_, l| Ok(decision(false, 0.0, l)));
        let limiter = FallbackLimiter::new(Arc::new(shared), Arc::new(fallback));
        let l = limit(10, 1.0);
        let run = |limiter: &FallbackLimiter| {
            futures_lite::future::block_on(limiter.acquire("k", l)).unwrap()
        };
        assert!(run(&limiter).allowed && !limiter.is_degraded());
        assert!(!run(&limiter).allowed, "the fallback's decision");
        assert!(limiter.is_degraded());
        assert!(run(&limiter).allowed);
        assert!(!limiter.is_degraded());
    }
}
