//! What the cache logs through an outage: one line when Redis becomes unavailable and
//! one when it is back, however many calls fail in between. Alone in its test binary:
//! tracing caches whether a log statement is enabled per call site, process-wide, and
//! a test on another thread without this test's subscriber could switch them off.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[path = "support/redis.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use intake_domain::ports::{Cache, CacheKey};
use intake_domain::{DatasetName, Revision};
use intake_redis::{RedisCache, Settings};
use support::{Server, free_port};

fn key(query: &str) -> CacheKey {
    CacheKey {
        dataset: DatasetName::parse("sales").unwrap(),
        revision: Revision::new(3),
        query: query.to_owned(),
    }
}

/// Log lines written while it runs, for counting.
#[derive(Clone, Default)]
struct Lines(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl std::fmt::Display for Lines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text())
    }
}

impl Lines {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    fn count(&self, text: &str) -> usize {
        self.text().matches(text).count()
    }
}

/// One line when the cache becomes unavailable and one when it is back, however many
/// calls fail in between.
#[tokio::test]
async fn an_outage_is_logged_once_and_the_recovery_once() {
    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let port = free_port();
    let cache = RedisCache::new(Settings {
        url: format!("redis://127.0.0.1:{port}"),
        prefix: support::unique_prefix(),
        ..Settings::default()
    })
    .unwrap();
    let until = Instant::now() + Duration::from_millis(2_300);
    let mut calls = 0;
    while Instant::now() < until {
        assert_eq!(cache.get(&key("q")).await, None);
        cache.put(&key("q"), vec![1]).await;
        calls += 2;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(calls > 100, "{calls} calls");
    assert_eq!(
        lines.count("cache unavailable"),
        1,
        "{calls} failed calls: {lines}"
    );
    assert_eq!(lines.count("cache back"), 0);

    let _server = Server::start(port);
    let deadline = Instant::now() + Duration::from_secs(5);
    while cache.get(&key("q")).await.is_none() {
        cache.put(&key("q"), vec![1]).await;
        assert!(Instant::now() < deadline, "the cache did not come back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(lines.count("cache back"), 1, "{lines}");
    assert_eq!(lines.count("cache unavailable"), 1);
}
