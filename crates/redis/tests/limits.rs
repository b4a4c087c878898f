//! The rate limiter conformance suite of `intake-domain` on the Redis of this machine
//! (required, never skipped), plus what only a shared limiter does: two limiters (two
//! instances) on one prefix share each bucket, buckets expire once full, and a closed
//! port fails fast so the service can fall back.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[path = "support/redis.rs"]
mod support;

use std::time::{Duration, Instant};

use intake_domain::ports::{Health as _, RateLimit, RateLimiter as _};
use intake_redis::{LimiterSettings, RedisRateLimiter};
use support::{DeletePrefix, connect, keys, limiter_on_test_redis, unique_prefix, url};

intake_domain::rate_limiter_conformance!(support::fresh_limiter());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_prefix_share_each_bucket() {
    let prefix = unique_prefix();
    let _cleanup = DeletePrefix(prefix.clone());
    let (a, b) = (
        limiter_on_test_redis(&prefix).await,
        limiter_on_test_redis(&prefix).await,
    );
    let limit = RateLimit::new(6, 0.001).unwrap();
    let mut allowed = 0;
    for i in 0..12 {
        let limiter = if i % 2 == 0 { &a } else { &b };
        allowed += usize::from(limiter.acquire("token:front", limit).await.unwrap().allowed);
    }
    assert_eq!(allowed, 6);
    let mut conn = connect(&url()).unwrap();
    let stored = keys(&mut conn, &prefix).unwrap();
    assert_eq!(stored, vec![format!("{prefix}ratelimit:token:front")]);
    let ttl: i64 = redis::cmd("PTTL").arg(&stored[0]).query(&mut conn).unwrap();
    assert!(ttl > 1000, "kept while not full: {ttl} ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_is_forgotten_once_it_would_be_full() {
    let prefix = unique_prefix();
    let _cleanup = DeletePrefix(prefix.clone());
    let limiter = limiter_on_test_redis(&prefix).await;
    let limit = RateLimit::new(2, 1000.0).unwrap();
    limiter.acquire("brief", limit).await.unwrap();
    let mut conn = connect(&url()).unwrap();
    let ttl: i64 = redis::cmd("PTTL")
        .arg(format!("{prefix}ratelimit:brief"))
        .query(&mut conn)
        .unwrap();
    assert!(
        (1..=1001).contains(&ttl),
        "full again after 1 ms, kept 1 s more: {ttl}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_port_fails_fast_and_is_not_required_for_readiness() {
    let limiter = RedisRateLimiter::new(LimiterSettings {
        url: "redis://127.0.0.1:1".into(),
        ..LimiterSettings::default()
    })
    .unwrap();
    let started = Instant::now();
    let limit = RateLimit::new(1, 1.0).unwrap();
    assert!(limiter.acquire("k", limit).await.is_err());
    assert!(limiter.acquire("k", limit).await.is_err(), "backing off");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(limiter.check().await.is_err());
    assert!(!limiter.required());
}
