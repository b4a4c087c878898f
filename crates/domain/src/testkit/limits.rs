//! The rate limiter suite: what every [`RateLimiter`] adapter keeps, through the port
//! alone. Each case takes a fresh limiter (no bucket known) and uses keys of its own.
//! Waiting for tokens to come back blocks the thread for a fraction of a second, so
//! the suite runs on a multi-threaded runtime.

use std::sync::Arc;
use std::time::Duration;

use super::storage::futures_join_all;
use crate::ports::{RateLimit, RateLimiter};

fn limit(burst: u32, per_second: f64) -> RateLimit {
    RateLimit::new(burst, per_second).unwrap()
}

/// A full bucket allows `burst` requests, counting down `remaining`, then refuses
/// with how long until the next token.
pub async fn a_burst_is_allowed_then_refused(limiter: Arc<dyn RateLimiter>) {
    let l = limit(5, 1.0);
    for left in (0..5).rev() {
        let d = limiter.acquire("burst", l).await.unwrap();
        assert!(d.allowed, "request {} of the burst", 5 - left);
        assert_eq!((d.limit, d.remaining), (5, left));
        assert_eq!(d.retry_after, Duration::ZERO);
    }
    let d = limiter.acquire("burst", l).await.unwrap();
    assert!(!d.allowed, "the sixth request");
    assert_eq!((d.limit, d.remaining), (5, 0));
    assert!(
        d.retry_after > Duration::ZERO && d.retry_after <= Duration::from_secs(1),
        "{d:?}"
    );
    assert!(
        d.reset > Duration::from_secs(4) && d.reset <= Duration::from_secs(5),
        "{d:?}"
    );
}

/// Each key has its own bucket.
pub async fn keys_have_buckets_of_their_own(limiter: Arc<dyn RateLimiter>) {
    let l = limit(2, 0.01);
    for _ in 0..2 {
        assert!(limiter.acquire("token:a", l).await.unwrap().allowed);
    }
    assert!(!limiter.acquire("token:a", l).await.unwrap().allowed);
    let other = limiter.acquire("token:b", l).await.unwrap();
    assert!(other.allowed);
    assert_eq!(other.remaining, 1);
    assert!(!limiter.acquire("token:a", l).await.unwrap().allowed);
}

/// Tokens come back at the rate: an empty bucket allows one more request once
/// `1 / per_second` has passed, and a refused request takes nothing.
pub async fn tokens_come_back_with_time(limiter: Arc<dyn RateLimiter>) {
    let l = limit(2, 10.0);
    for _ in 0..2 {
        assert!(limiter.acquire("refill", l).await.unwrap().allowed);
    }
    let refused = limiter.acquire("refill", l).await.unwrap();
    assert!(!refused.allowed);
    std::thread::sleep(refused.retry_after + Duration::from_millis(30));
    let d = limiter.acquire("refill", l).await.unwrap();
    assert!(
        d.allowed,
        "a token came back after {:?}",
        refused.retry_after
    );
    assert_eq!(d.remaining, 0);
    assert!(!limiter.acquire("refill", l).await.unwrap().allowed);
    std::thread::sleep(Duration::from_millis(260));
    let d = limiter.acquire("refill", l).await.unwrap();
    assert!(d.allowed);
    assert_eq!(d.remaining, 1, "the bucket filled up, and no further");
}

/// However many requests race, no more than the bucket holds are allowed.
pub async fn racing_requests_never_overdraw(limiter: Arc<dyn RateLimiter>) {
    let l = limit(10, 0.001);
    let decisions = futures_join_all((0..40).map(|_| limiter.acquire("race", l))).await;
    let allowed = decisions
        .iter()
        .filter(|d| d.as_ref().unwrap().allowed)
        .count();
    assert_eq!(allowed, 10);
}

/// A different shape for the same key is applied from the next request (limits may
/// be changed by configuration while buckets exist).
pub async fn a_new_shape_applies_to_an_existing_bucket(limiter: Arc<dyn RateLimiter>) {
    let small = limit(2, 0.001);
    for _ in 0..2 {
        assert!(limiter.acquire("shape", small).await.unwrap().allowed);
    }
    assert!(!limiter.acquire("shape", small).await.unwrap().allowed);
    let larger = limit(50, 0.001);
    let d = limiter.acquire("shape", larger).await.unwrap();
    assert!(!d.allowed, "the bucket is still empty");
    assert_eq!(d.limit, 50);
}
