//! What the Redis tests share: the server under test, caches on unique key prefixes
//! that are deleted afterwards, and private `redis-server` processes.
#![allow(dead_code, reason = "test support; each test file uses its part")]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use intake_domain::ports::{
    Cache, CacheKey, Health as _, RateDecision, RateLimit, RateLimitError, RateLimiter,
};
use intake_redis::{LimiterSettings, RedisCache, RedisRateLimiter, Settings};

/// The Redis the tests use (`INTAKE_TEST_REDIS_URL`, by default the local one).
pub fn url() -> String {
    std::env::var("INTAKE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A key prefix no other test or run uses.
pub fn unique_prefix() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("intake-test:{}-{nanos}-{n}:", std::process::id())
}

/// A cache on the test Redis under a fresh prefix, with a timeout generous enough for
/// megabyte values on a busy machine. Fails the test when Redis does not answer:
/// these tests are required, never skipped.
pub async fn cache_on_test_redis(prefix: &str) -> RedisCache {
    let url = url();
    let cache = RedisCache::new(Settings {
        url: url.clone(),
        prefix: prefix.to_owned(),
        timeout: Duration::from_secs(5),
        ..Settings::default()
    })
    .unwrap();
    if let Err(e) = cache.check().await {
        panic!(
            "these tests need a running Redis at {url} (start one, or point \
             INTAKE_TEST_REDIS_URL at one): {e:#}"
        );
    }
    cache
}

/// A fresh cache for the conformance suite: its keys are deleted when it is dropped.
pub async fn fresh() -> Arc<dyn Cache> {
    let prefix = unique_prefix();
    let cache = cache_on_test_redis(&prefix).await;
    Arc::new(Scoped {
        cache,
        _cleanup: DeletePrefix(prefix),
    })
}

/// A cache whose prefix is deleted when it is dropped (even when a test panics).
pub struct Scoped {
    /// The cache under test.
    pub cache: RedisCache,
    _cleanup: DeletePrefix,
}

#[async_trait::async_trait]
impl Cache for Scoped {
    async fn get(&self, key: &CacheKey) -> Option<Vec<u8>> {
        self.cache.get(key).await
    }

    async fn put(&self, key: &CacheKey, value: Vec<u8>) {
        self.cache.put(key, value).await;
    }
}

/// A rate limiter on the test Redis under `prefix`; fails the test when Redis does
/// not answer.
pub async fn limiter_on_test_redis(prefix: &str) -> RedisRateLimiter {
    let limiter = RedisRateLimiter::new(LimiterSettings {
        url: url(),
        prefix: prefix.to_owned(),
        timeout: Duration::from_secs(5),
    })
    .unwrap();
    if let Err(e) = limiter.check().await {
        panic!("these tests need a running Redis at {} : {e:#}", url());
    }
    limiter
}

/// A fresh limiter for the conformance suite: its buckets are deleted when dropped.
pub async fn fresh_limiter() -> Arc<dyn RateLimiter> {
    let prefix = unique_prefix();
    let limiter = limiter_on_test_redis(&prefix).await;
    Arc::new(ScopedLimiter {
        limiter,
        _cleanup: DeletePrefix(prefix),
    })
}

/// A limiter whose prefix is deleted when it is dropped.
pub struct ScopedLimiter {
    limiter: RedisRateLimiter,
    _cleanup: DeletePrefix,
}

#[async_trait::async_trait]
impl RateLimiter for ScopedLimiter {
    async fn acquire(&self, key: &str, limit: RateLimit) -> Result<RateDecision, RateLimitError> {
        self.limiter.acquire(key, limit).await
    }
}

/// Deletes every key under a prefix from the test Redis when dropped.
pub struct DeletePrefix(pub String);

impl Drop for DeletePrefix {
    fn drop(&mut self) {
        if let Err(e) = delete_prefix(&url(), &self.0) {
            eprintln!("could not delete the test keys {}*: {e}", self.0);
        }
    }
}

/// A blocking connection to the Redis at `url`.
pub fn connect(url: &str) -> redis::RedisResult<redis::Connection> {
    redis::Client::open(url)?.get_connection_with_timeout(Duration::from_secs(2))
}

/// The keys under `prefix`.
pub fn keys(conn: &mut redis::Connection, prefix: &str) -> redis::RedisResult<Vec<String>> {
    let mut cursor = 0u64;
    let mut all = Vec::new();
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query(conn)?;
        all.extend(keys);
        if next == 0 {
            return Ok(all);
        }
        cursor = next;
    }
}

/// Deletes every key under `prefix` (blocking: also runs in `Drop`).
pub fn delete_prefix(url: &str, prefix: &str) -> redis::RedisResult<()> {
    let mut conn = connect(url)?;
    let keys = keys(&mut conn, prefix)?;
    for chunk in keys.chunks(500) {
        redis::cmd("DEL").arg(chunk).query::<()>(&mut conn)?;
    }
    Ok(())
}

/// A local port that nothing listens on (it was free a moment ago).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A private `redis-server` child process, killed when dropped.
pub struct Server {
    child: Option<Child>,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl Server {
    /// Starts `redis-server` (`INTAKE_TEST_REDIS_SERVER`, by default
    /// `/usr/bin/redis-server`) on `port`, without persistence, and waits until it
    /// answers.
    pub fn start(port: u16) -> Self {
        let binary = std::env::var("INTAKE_TEST_REDIS_SERVER")
            .unwrap_or_else(|_| "/usr/bin/redis-server".into());
        let child = Command::new(&binary)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {binary} (a required test tool): {e}"));
        let server = Self {
            child: Some(child),
            port,
        };
        server.wait_until_it_answers();
        server
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn wait_until_it_answers(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let pong =
                connect(&self.url()).and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
            match pong {
                Ok(_) => return,
                Err(e) if Instant::now() > deadline => {
                    panic!("redis-server on port {} did not answer: {e}", self.port)
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// Kills the process (SIGKILL) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}
