//! The rate limiter conformance suite of `intake-domain` on the in-process limiter,
//! plus its bound on memory and its behaviour across threads.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use intake_domain::ports::{RateLimit, RateLimiter};
use intake_memory::MemoryRateLimiter;

intake_domain::rate_limiter_conformance!(async { Arc::new(MemoryRateLimiter::new(10_000)) });

#[test]
fn threads_racing_on_one_key_never_overdraw() {
    let limiter = MemoryRateLimiter::new(100);
    let limit = RateLimit::new(100, 0.001).unwrap();
    let allowed = AtomicU32::new(0);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..100 {
                    let d = futures_lite::future::block_on(limiter.acquire("k", limit)).unwrap();
                    if d.allowed {
                        allowed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    assert_eq!(allowed.load(Ordering::Relaxed), 100);
}

#[tokio::test]
async fn full_buckets_are_forgotten_to_stay_within_the_bound() {
    let limiter = MemoryRateLimiter::new(3);
    let fast = RateLimit::new(2, 1000.0).unwrap();
    for key in ["a", "b", "c"] {
        assert!(limiter.acquire(key, fast).await.unwrap().allowed);
    }
    assert_eq!(limiter.len(), 3);
    std::thread::sleep(std::time::Duration::from_millis(10));
    // The three have filled up again: a fourth key replaces them.
    assert!(limiter.acquire("d", fast).await.unwrap().allowed);
    assert_eq!(limiter.len(), 1);

    // When no bucket is full, a new key is decided but not kept.
    let slow = RateLimit::new(2, 0.001).unwrap();
    for key in ["e", "f"] {
        limiter.acquire(key, slow).await.unwrap();
    }
    let d = limiter.acquire("g", slow).await.unwrap();
    assert!(d.allowed);
    assert_eq!(limiter.len(), 3);
}
