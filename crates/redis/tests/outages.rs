//! The cache while Redis is unreachable, silent or stopped: calls return misses within
//! a bound and never panic, the health check reports it, connection attempts are
//! spaced out, and the cache works again once Redis is back. Uses private
//! `redis-server` processes (`/usr/bin/redis-server`, required) on free ports.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[path = "support/redis.rs"]
mod support;

use std::io::Read as _;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use intake_domain::ports::{Cache, CacheKey, Health};
use intake_domain::{DatasetName, Revision};
use intake_redis::{RedisCache, Settings};
use support::{Server, free_port};

/// The most any call may take while Redis is down (the timeout is 250 ms; a call
/// that reconnects may wait for the connection and then the command).
const BOUND: Duration = Duration::from_secs(2);

fn key(query: &str) -> CacheKey {
    CacheKey {
        dataset: DatasetName::parse("sales").unwrap(),
        revision: Revision::new(3),
        query: query.to_owned(),
    }
}

fn cache_at(url: String) -> RedisCache {
    RedisCache::new(Settings {
        url,
        prefix: support::unique_prefix(),
        ..Settings::default()
    })
    .unwrap()
}

/// Runs `f`, asserting it finishes within [`BOUND`].
async fn bounded<T>(what: &str, f: impl Future<Output = T>) -> T {
    let started = Instant::now();
    let out = tokio::time::timeout(BOUND * 2, f)
        .await
        .unwrap_or_else(|_| panic!("{what} hung"));
    let took = started.elapsed();
    assert!(took < BOUND, "{what} took {took:?}");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_port_gives_misses_dropped_writes_and_a_failed_check() {
    let url = format!("redis://127.0.0.1:{}", free_port());
    let cache = cache_at(url);
    assert_eq!(cache.name(), "redis");
    assert!(cache.pool().is_none());

    assert_eq!(bounded("get", cache.get(&key("q"))).await, None);
    bounded("put", cache.put(&key("q"), b"v".to_vec())).await;
    let check = bounded("check", cache.check()).await;
    let message = format!("{:#}", check.unwrap_err());
    assert!(message.contains("127.0.0.1"), "{message}");

    // While it backs off, calls answer at once.
    let started = Instant::now();
    for i in 0..200 {
        assert_eq!(cache.get(&key(&format!("q{i}"))).await, None);
        cache.put(&key(&format!("q{i}")), vec![1]).await;
    }
    assert!(started.elapsed() < BOUND, "{:?}", started.elapsed());

    // After the back-off it tries again, and fails again the same way.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert!(bounded("check", cache.check()).await.is_err());
    assert_eq!(bounded("get", cache.get(&key("q"))).await, None);
}

/// A server that accepts connections and never answers: every attempt costs a full
/// timeout, so the cache must not make one per request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_server_is_tried_at_most_once_per_second() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    std::thread::spawn(move || {
        let mut open = Vec::new();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            counter.fetch_add(1, Ordering::SeqCst);
            // Read and ignore whatever comes; keep the connection open.
            let _ = stream.set_nonblocking(true);
            let mut buf = [0; 1024];
            let _ = stream.read(&mut buf);
            open.push(stream);
        }
    });
    let cache = Arc::new(cache_at(format!("redis://127.0.0.1:{port}")));

    // Eight callers asking as fast as they can for 2.5 s.
    let deadline = Instant::now() + Duration::from_millis(2_500);
    let callers: Vec<_> = (0..8)
        .map(|i| {
            let cache = cache.clone();
            tokio::spawn(async move {
                let mut calls = 0;
                while Instant::now() < deadline {
                    let started = Instant::now();
                    if i % 2 == 0 {
                        assert_eq!(cache.get(&key("q")).await, None);
                    } else {
                        cache.put(&key("q"), vec![1; 100]).await;
                    }
                    let took = started.elapsed();
                    assert!(took < Duration::from_secs(1), "a call took {took:?}");
                    calls += 1;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                calls
            })
        })
        .collect();
    let mut calls = 0;
    for caller in callers {
        calls += caller.await.unwrap();
    }
    let attempts = accepted.load(Ordering::SeqCst);
    assert!(calls > 500, "only {calls} calls");
    assert!(
        (1..=4).contains(&attempts),
        "{attempts} connection attempts in 2.5 s for {calls} calls"
    );
    assert!(bounded("check", cache.check()).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_mid_test_gives_misses_then_works_again() {
    let port = free_port();
    let mut server = Server::start(port);
    let cache = cache_at(server.url());

    cache.put(&key("before"), b"kept".to_vec()).await;
    assert_eq!(cache.get(&key("before")).await, Some(b"kept".to_vec()));
    cache.check().await.unwrap();

    server.kill();
    assert_eq!(bounded("get", cache.get(&key("before"))).await, None);
    bounded("put", cache.put(&key("during"), b"lost".to_vec())).await;
    assert!(bounded("check", cache.check()).await.is_err());
    for i in 0..100 {
        assert_eq!(
            bounded("get", cache.get(&key(&format!("q{i}")))).await,
            None
        );
    }

    // A new server on the same port (empty: nothing is persisted).
    let _server = Server::start(port);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut tries = 0;
    loop {
        tries += 1;
        bounded("put", cache.put(&key("after"), b"back".to_vec())).await;
        if bounded("get", cache.get(&key("after"))).await == Some(b"back".to_vec()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the cache did not work again within 5 s ({tries} tries)"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cache.check().await.unwrap();
    assert_eq!(cache.get(&key("during")).await, None);
    assert_eq!(cache.get(&key("before")).await, None);
}
