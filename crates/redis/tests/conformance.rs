//! The cache conformance suite of `intake-domain` on the Redis of this machine, each
//! case under its own key prefix, deleted afterwards; plus how entries are stored. The
//! server is required: an unreachable one fails every case (`INTAKE_TEST_REDIS_URL`
//! overrides the default `redis://127.0.0.1:6379`).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[path = "support/redis.rs"]
mod support;

use std::time::Duration;

use intake_domain::ports::{Cache, CacheKey};
use intake_domain::{DatasetName, Revision};
use intake_redis::{RedisCache, Settings};
use support::{DeletePrefix, connect, keys, unique_prefix, url};

intake_domain::cache_conformance!(support::fresh());

fn key(query: &str) -> CacheKey {
    CacheKey {
        dataset: DatasetName::parse("sales").unwrap(),
        revision: Revision::new(3),
        query: query.to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_is_stored_under_the_prefix_with_the_ttl() {
    let prefix = unique_prefix();
    let _cleanup = DeletePrefix(prefix.clone());
    let cache = RedisCache::new(Settings {
        url: url(),
        prefix: prefix.clone(),
        ttl: Duration::from_secs(90),
        timeout: Duration::from_secs(5),
    })
    .unwrap();
    cache.put(&key("sum by region"), b"answer".to_vec()).await;

    let mut conn = connect(&url()).unwrap();
    let name = format!("{prefix}sales:3:sum by region");
    assert_eq!(
        keys(&mut conn, &prefix).unwrap(),
        std::slice::from_ref(&name)
    );
    let stored: Vec<u8> = redis::cmd("GET").arg(&name).query(&mut conn).unwrap();
    assert_eq!(stored, b"answer");
    let ttl: i64 = redis::cmd("TTL").arg(&name).query(&mut conn).unwrap();
    assert!((80..=90).contains(&ttl), "TTL {ttl}");

    // A replacing put sets the TTL again.
    redis::cmd("EXPIRE")
        .arg(&name)
        .arg(5)
        .query::<()>(&mut conn)
        .unwrap();
    cache.put(&key("sum by region"), b"again".to_vec()).await;
    let ttl: i64 = redis::cmd("TTL").arg(&name).query(&mut conn).unwrap();
    assert!((80..=90).contains(&ttl), "TTL after replacing {ttl}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_deletes_its_keys() {
    let prefix = unique_prefix();
    {
        let cache = support::cache_on_test_redis(&prefix).await;
        let _cleanup = DeletePrefix(prefix.clone());
        for i in 0..50 {
            cache.put(&key(&format!("q{i}")), vec![1; 10]).await;
        }
        let mut conn = connect(&url()).unwrap();
        assert_eq!(keys(&mut conn, &prefix).unwrap().len(), 50);
    }
    let mut conn = connect(&url()).unwrap();
    assert_eq!(keys(&mut conn, &prefix).unwrap(), Vec::<String>::new());
}
