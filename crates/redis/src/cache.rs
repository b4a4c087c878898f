//! The Redis cache: entries under a prefix with a TTL, over a [`RedisLink`].

use std::time::Duration;

use intake_domain::ports::{Cache, CacheKey, Health, HealthError, PoolUsage};

use crate::link::RedisLink;

/// How to reach Redis and what to store.
#[derive(Clone, PartialEq, Eq)]
pub struct Settings {
    /// `redis://[:password@]host:port[/db]`.
    pub url: String,
    /// Put before every key, so several services (or tests) can share one Redis.
    pub prefix: String,
    /// How long an entry lives (rounded up to whole seconds). Entries need no
    /// invalidation, since a key carries the dataset's revision: this only frees the
    /// space of answers nobody asks for any more.
    pub ttl: Duration,
    /// The longest any one Redis call (connecting, a read, a write, a ping) may take;
    /// past it the call counts as failed.
    pub timeout: Duration,
}

/// The URL is printed without its password.
impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("url", &intake_domain::redact::url(&self.url))
            .field("prefix", &self.prefix)
            .field("ttl", &self.ttl)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".into(),
            prefix: "intake:".into(),
            ttl: Duration::from_secs(60 * 60),
            timeout: Duration::from_millis(250),
        }
    }
}

/// The [`Cache`] and [`Health`] ports on one Redis server.
///
/// It holds one multiplexed connection (redis' `ConnectionManager`), opened on first
/// use. See the crate documentation for how it behaves while Redis is down. Share it
/// behind an `Arc`.
pub struct RedisCache {
    link: RedisLink,
    prefix: String,
    ttl_seconds: u64,
}

impl RedisCache {
    /// A cache on the Redis of `settings`. Does not connect: the first call does.
    ///
    /// # Errors
    /// When the URL is malformed, or the timeout is zero.
    pub fn new(settings: Settings) -> anyhow::Result<Self> {
        let link = RedisLink::new(&settings.url, settings.timeout, "cache", "answering misses")?;
        let ttl_seconds =
            (settings.ttl.as_secs() + u64::from(settings.ttl.subsec_nanos() > 0)).max(1);
        Ok(Self {
            link,
            prefix: settings.prefix,
            ttl_seconds,
        })
    }

    /// The key a cache key is stored under.
    fn redis_key(&self, key: &CacheKey) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Whether Redis answers `PING` now (within the timeout).
    ///
    /// # Errors
    /// When it does not, or the cache is backing off after a failure.
    pub async fn ping(&self) -> anyhow::Result<()> {
        self.link.ping().await
    }
}

impl std::fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCache")
            .field("url", &self.link.url)
            .field("prefix", &self.prefix)
            .field("ttl_seconds", &self.ttl_seconds)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl Cache for RedisCache {
    async fn get(&self, key: &CacheKey) -> Option<Vec<u8>> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(self.redis_key(key));
        self.link
            .call("get", |mut c| async move { cmd.query_async(&mut c).await })
            .await
            .ok()
            .flatten()
    }

    async fn put(&self, key: &CacheKey, value: Vec<u8>) {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .set_ex(self.redis_key(key), value, self.ttl_seconds)
            .ignore();
        // A failure is logged by `call`, and a dropped write is only a later miss.
        let _ = self
            .link
            .call("put", |mut c| async move { pipe.exec_async(&mut c).await })
            .await;
    }
}

#[async_trait::async_trait]
impl Health for RedisCache {
    fn name(&self) -> &'static str {
        "redis"
    }

    async fn check(&self) -> Result<(), HealthError> {
        Ok(self.ping().await?)
    }

    fn pool(&self) -> Option<PoolUsage> {
        None
    }

    fn required(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn construction_checks_the_url_and_timeout_without_connecting() {
        let closed = Settings {
            url: "redis://127.0.0.1:1".into(),
            ..Settings::default()
        };
        assert!(RedisCache::new(closed.clone()).is_ok());
        let bad = Settings {
            url: "http://:secret@nowhere".into(),
            ..Settings::default()
        };
        let error = format!("{:#}", RedisCache::new(bad).unwrap_err());
        assert!(!error.contains("secret"), "{error}");
        let zero = Settings {
            timeout: Duration::ZERO,
            ..closed
        };
        assert!(RedisCache::new(zero).is_err());
    }

    #[test]
    fn the_ttl_is_rounded_up_to_whole_seconds() {
        let with = |ttl| {
            RedisCache::new(Settings {
                ttl,
                ..Settings::default()
            })
            .map(|c| c.ttl_seconds)
            .ok()
        };
        assert_eq!(with(Duration::from_secs(3600)), Some(3600));
        assert_eq!(with(Duration::from_millis(1500)), Some(2));
        assert_eq!(with(Duration::ZERO), Some(1));
    }
}
