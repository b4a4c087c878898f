//! The cache conformance suite of `intake-domain` on [`MemoryCache`], and the byte
//! bound that is this adapter's own promise.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::sync::Arc;

use intake_domain::ports::{Cache, CacheKey};
use intake_domain::{DatasetName, Revision};
use intake_memory::MemoryCache;

intake_domain::cache_conformance!(async { Arc::new(MemoryCache::new(64 << 20)) });

fn key(query: &str) -> CacheKey {
    CacheKey {
        dataset: DatasetName::parse("sales").unwrap(),
        revision: Revision::new(3),
        query: query.to_owned(),
    }
}

#[tokio::test]
async fn an_entry_weighs_its_key_and_value_bytes() {
    let cache = MemoryCache::new(1 << 20);
    assert!(cache.is_empty());
    let k = key("sum");
    cache.put(&k, vec![7; 100]).await;
    assert_eq!(cache.len(), 1);
    assert_eq!(cache.weight(), (k.to_string().len() + 100) as u64);
    cache.put(&k, vec![7; 10]).await;
    assert_eq!(cache.weight(), (k.to_string().len() + 10) as u64);
}

#[tokio::test]
async fn the_byte_bound_is_kept_and_recent_entries_stay() {
    const BOUND: u64 = 1 << 20;
    let cache = MemoryCache::new(BOUND);
    assert_eq!(cache.max_bytes(), BOUND);
    let value = |i: usize| {
        let mut v = format!("{i}:").into_bytes();
        v.resize(1_000 + i % 500, u8::try_from(i % 251).unwrap());
        v
    };
    // About 12 MiB through a 1 MiB cache.
    let total = 10_000;
    for i in 0..total {
        cache.put(&key(&format!("q{i}")), value(i)).await;
        assert!(
            cache.weight() <= BOUND,
            "after {i} puts: {} bytes > {BOUND}",
            cache.weight()
        );
    }
    assert!(cache.weight() > BOUND / 2, "the cache is used: {cache:?}");
    assert!(cache.len() < total / 5, "entries were evicted: {cache:?}");
    for i in total - 10..total {
        assert_eq!(
            cache.get(&key(&format!("q{i}"))).await,
            Some(value(i)),
            "recent entry {i}"
        );
    }
    // Entries read again are kept while a stream of new ones goes by.
    let hot: Vec<_> = (0..20).map(|i| key(&format!("hot{i}"))).collect();
    for k in &hot {
        cache.put(k, vec![1; 1_000]).await;
    }
    for round in 0..20 {
        for k in &hot {
            assert!(cache.get(k).await.is_some(), "{k} lost in round {round}");
        }
        for i in 0..100 {
            cache.put(&key(&format!("cold{round}-{i}")), value(i)).await;
        }
        assert!(cache.weight() <= BOUND);
    }
}

#[tokio::test]
async fn a_value_larger_than_the_bound_is_not_kept_nor_is_the_one_it_replaces() {
    let cache = MemoryCache::new(64 << 10);
    let k = key("big");
    cache.put(&k, vec![1; 100]).await;
    cache.put(&k, vec![2; 100 << 10]).await;
    assert_eq!(cache.get(&k).await, None);
    assert!(cache.weight() <= 64 << 10);
    cache.put(&k, vec![3; 100]).await;
    assert_eq!(cache.get(&k).await, Some(vec![3; 100]));
}

#[tokio::test]
async fn a_zero_bound_keeps_nothing() {
    let cache = MemoryCache::new(0);
    cache.put(&key("q"), vec![1]).await;
    assert_eq!(cache.get(&key("q")).await, None);
    assert_eq!(cache.weight(), 0);
}

/// The suite's concurrency case from several threads at once on one cache: the suite
/// alone polls its futures on one task.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn threads_sharing_the_cache_do_not_corrupt_it() {
    let cache: Arc<dyn Cache> = Arc::new(MemoryCache::new(64 << 20));
    let runs: Vec<_> = (0..8)
        .map(|_| {
            tokio::spawn(
                intake_domain::testkit::cache::concurrent_puts_and_gets_do_not_corrupt(
                    cache.clone(),
                ),
            )
        })
        .collect();
    for run in runs {
        run.await.unwrap();
    }
}
