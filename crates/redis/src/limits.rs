//! The shared rate limiter: one token bucket per key in a Redis hash, taken from by a
//! Lua script so that every instance's requests are decided atomically on the server,
//! with the server's clock.

use std::time::Duration;

use intake_domain::limits::decision;
use intake_domain::ports::{
    Health, HealthError, PoolUsage, RateDecision, RateLimit, RateLimitError, RateLimiter,
};

use crate::link::RedisLink;

/// The arithmetic of `intake_domain::limits::take`, on the server: the bucket
/// (`tokens`, `at` in ms) starts full, gains `per_second` tokens a second up to `burst`,
/// and a request takes one when there is one. The hash expires once it would be full
/// again, since a missing bucket is a full one. Replies `{allowed, tokens}` (tokens as
/// text: Lua numbers become integers in replies).
const TAKE: &str = r"
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local burst = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = burst
else
  tokens = math.min(burst, tokens + math.max(0, now - at) * rate / 1000)
end
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) * 1000 / rate) + 1000)
return {allowed, tostring(tokens)}
";

/// How to reach Redis.
#[derive(Clone, PartialEq, Eq)]
pub struct LimiterSettings {
    /// `redis://[:password@]host:port[/db]`.
    pub url: String,
    /// Put before every key (`<prefix>ratelimit:<key>`).
    pub prefix: String,
    /// The longest one call may take; past it the call fails (and the service falls
    /// back to its in-process limiter).
    pub timeout: Duration,
}

/// The URL is printed without its password.
impl std::fmt::Debug for LimiterSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LimiterSettings")
            .field("url", &intake_domain::redact::url(&self.url))
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Default for LimiterSettings {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".into(),
            prefix: "intake:".into(),
            timeout: Duration::from_millis(250),
        }
    }
}

/// The [`RateLimiter`] and [`Health`] ports on one Redis server, shared by every
/// instance that uses the same server and prefix.
pub struct RedisRateLimiter {
    link: RedisLink,
    prefix: String,
    script: redis::Script,
}

impl RedisRateLimiter {
    /// A limiter on the Redis of `settings`. Does not connect: the first call does.
    ///
    /// # Errors
    /// When the URL is malformed, or the timeout is zero.
    pub fn new(settings: LimiterSettings) -> anyhow::Result<Self> {
        let link = RedisLink::new(
            &settings.url,
            settings.timeout,
            "rate limiter",
            "limiting in each process",
        )?;
        Ok(Self {
            link,
            prefix: settings.prefix,
            script: redis::Script::new(TAKE),
        })
    }
}

impl std::fmt::Debug for RedisRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRateLimiter")
            .field("url", &self.link.url)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn acquire(&self, key: &str, limit: RateLimit) -> Result<RateDecision, RateLimitError> {
        let mut invocation = self.script.prepare_invoke();
        invocation
            .key(format!("{}ratelimit:{key}", self.prefix))
            .arg(limit.burst)
            .arg(limit.per_second);
        let (allowed, tokens): (i64, String) = self
            .link
            .call("take", |mut c| async move {
                invocation.invoke_async(&mut c).await
            })
            .await?;
        let tokens: f64 = tokens
            .parse()
            .map_err(|_| anyhow::anyhow!("the rate limit script answered {tokens:?}"))?;
        Ok(decision(allowed == 1, tokens, limit))
    }
}

#[async_trait::async_trait]
impl Health for RedisRateLimiter {
    fn name(&self) -> &'static str {
        "redis"
    }

    async fn check(&self) -> Result<(), HealthError> {
        Ok(self.link.ping().await?)
    }

    fn pool(&self) -> Option<PoolUsage> {
        None
    }

    fn required(&self) -> bool {
        false
    }
}
