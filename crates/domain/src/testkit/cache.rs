//! The cache suite: what every [`Cache`] adapter keeps, through the port alone.
//!
//! Each case takes a fresh, empty cache that is working (reachable, and large enough
//! for a few MiB), so every write is expected to be read back. Concurrency here is
//! futures polled together on one task (the domain has no runtime); an adapter adds
//! its own multi-threaded tests where its locking needs them.

use std::sync::Arc;

use super::storage::futures_join_all;
use super::support::name;
use crate::model::Revision;
use crate::ports::{Cache, CacheKey};

/// A key of dataset `dataset`, revision `revision` and query `query`.
fn key(dataset: &str, revision: u64, query: &str) -> CacheKey {
    CacheKey {
        dataset: name(dataset),
        revision: Revision::new(revision),
        query: query.to_owned(),
    }
}

/// `len` bytes that depend on `seed` and on their position, so a truncated, shifted
/// or mixed-up value does not compare equal.
fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            // xorshift64: cheap, and no two seeds give the same stream.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect()
}

/// A stored value is read back byte for byte, an empty value is a hit (not a miss),
/// and reading does not consume it.
pub async fn a_put_value_is_read_back(cache: Arc<dyn Cache>) {
    let k = key("sales", 3, "sum(amount) by region");
    let value = b"{\"groups\":[1,2,3]}".to_vec();
    cache.put(&k, value.clone()).await;
    assert_eq!(cache.get(&k).await, Some(value.clone()));
    assert_eq!(cache.get(&k).await, Some(value), "a second read");

    let empty = key("sales", 3, "empty answer");
    cache.put(&empty, Vec::new()).await;
    assert_eq!(cache.get(&empty).await, Some(Vec::new()));

    let binary = key("sales", 3, "all bytes");
    let all: Vec<u8> = (0..=255).collect();
    cache.put(&binary, all.clone()).await;
    assert_eq!(cache.get(&binary).await, Some(all));
}

/// A key never stored is a miss, in an empty cache and next to stored keys.
pub async fn a_missing_key_is_a_miss(cache: Arc<dyn Cache>) {
    assert_eq!(cache.get(&key("sales", 1, "never stored")).await, None);
    cache.put(&key("sales", 1, "stored"), b"x".to_vec()).await;
    assert_eq!(cache.get(&key("sales", 1, "never stored")).await, None);
    assert_eq!(cache.get(&key("sales", 1, "stored ")).await, None);
    assert_eq!(cache.get(&key("sales", 1, "")).await, None);
}

/// A second put under the same key replaces the value, whether longer or shorter.
pub async fn a_put_replaces_the_value(cache: Arc<dyn Cache>) {
    let k = key("sales", 7, "top 10 by amount");
    cache.put(&k, b"first".to_vec()).await;
    let longer = pattern(1, 10_000);
    cache.put(&k, longer.clone()).await;
    assert_eq!(cache.get(&k).await, Some(longer));
    cache.put(&k, b"short".to_vec()).await;
    assert_eq!(cache.get(&k).await, Some(b"short".to_vec()));
}

/// Keys that differ only in the revision, the dataset or the query are distinct entries.
pub async fn keys_differing_in_one_part_are_distinct(cache: Arc<dyn Cache>) {
    let keys = [
        key("sales", 3, "q"),
        key("sales", 4, "q"),
        key("sales", 30, "q"),
        key("sales", 0, "q"),
        key("sales2", 3, "q"),
        key("sale", 3, "q"),
        key("sales", 3, "q2"),
        key("sales", 3, "Q"),
        key("sales", 3, "q:3"),
    ];
    for (i, k) in keys.iter().enumerate() {
        cache.put(k, format!("value {i}").into_bytes()).await;
    }
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(
            cache.get(k).await,
            Some(format!("value {i}").into_bytes()),
            "key {k}"
        );
    }
    // Replacing one leaves the others alone.
    cache.put(&keys[0], b"replaced".to_vec()).await;
    assert_eq!(cache.get(&keys[0]).await, Some(b"replaced".to_vec()));
    for (i, k) in keys.iter().enumerate().skip(1) {
        assert_eq!(
            cache.get(k).await,
            Some(format!("value {i}").into_bytes()),
            "key {k} after replacing {}",
            keys[0]
        );
    }
}

/// A 1 MiB value (and a few next to it) round-trips byte for byte.
pub async fn large_values_round_trip(cache: Arc<dyn Cache>) {
    const MIB: usize = 1 << 20;
    let big = key("sales", 1, "a large answer");
    let value = pattern(42, MIB);
    cache.put(&big, value.clone()).await;
    let got = cache.get(&big).await.expect("the 1 MiB value is a hit");
    assert_eq!(got.len(), MIB);
    assert!(got == value, "the 1 MiB value came back changed");

    let others: Vec<_> = (0..3u64)
        .map(|i| {
            (
                key("sales", 1, &format!("large {i}")),
                pattern(100 + i, MIB / 2 + 1),
            )
        })
        .collect();
    for (k, v) in &others {
        cache.put(k, v.clone()).await;
    }
    for (k, v) in &others {
        let got = cache.get(k).await.expect("a 512 KiB value is a hit");
        assert!(&got == v, "{k} came back changed");
    }
}

/// Many concurrent writers and readers: every read is a miss or a whole value that was
/// written under that key, never a mix; at the end each key holds one of its values.
pub async fn concurrent_puts_and_gets_do_not_corrupt(cache: Arc<dyn Cache>) {
    const TASKS: u64 = 16;
    const KEYS: u64 = 8;
    const ROUNDS: u64 = 6;
    // Value `(task, round)` of key `k`: its header names both, the rest is a pattern of
    // them, and its length varies, so any mix-up shows.
    let value = |k: u64, task: u64, round: u64| {
        let mut v = format!("{k}/{task}/{round}|").into_bytes();
        let len = 1_000 + usize::try_from((task * 7 + round * 13 + k) % 50).unwrap_or(0) * 100;
        v.extend(pattern(k * 1_000_000 + task * 1_000 + round, len));
        v
    };
    let check = |k: u64, got: &[u8]| {
        let text_end = got.iter().position(|b| *b == b'|').expect("a header");
        let header = std::str::from_utf8(&got[..text_end]).expect("an ASCII header");
        let parts: Vec<u64> = header
            .split('/')
            .map(|p| p.parse().expect("a number"))
            .collect();
        assert_eq!(parts.len(), 3, "header {header:?}");
        assert_eq!(parts[0], k, "key {k} holds a value of key {}", parts[0]);
        assert!(
            got == value(k, parts[1], parts[2]).as_slice(),
            "key {k} holds a corrupted value {header}"
        );
    };
    let keys: Vec<CacheKey> = (0..KEYS)
        .map(|k| key("contended", 5, &format!("query {k}")))
        .collect();

    let tasks = (0..TASKS).map(|task| {
        let cache = cache.clone();
        let keys = &keys;
        async move {
            let mut seen = 0;
            for round in 0..ROUNDS {
                for (k, ck) in (0..KEYS).zip(keys) {
                    if (k + task + round) % 2 == 0 {
                        cache.put(ck, value(k, task, round)).await;
                    } else if let Some(got) = cache.get(ck).await {
                        check(k, &got);
                        seen += 1;
                    }
                }
            }
            seen
        }
    });
    let seen: u64 = futures_join_all(tasks).await.into_iter().sum();
    assert!(seen > 0, "no reader ever saw a value");

    for (k, ck) in (0..KEYS).zip(&keys) {
        let got = cache
            .get(ck)
            .await
            .expect("every key was written and is kept");
        check(k, &got);
    }
}
