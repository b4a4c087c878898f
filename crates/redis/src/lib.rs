//! `intake-redis`: the domain's [`Cache`](intake_domain::ports::Cache) and
//! [`RateLimiter`](intake_domain::ports::RateLimiter) ports on Redis, shared by every
//! instance of the service (DESIGN §3, §15).
//!
//! [`RedisRateLimiter`] keeps a token bucket per key in a hash, taken from by one Lua
//! script, so every instance's requests are decided atomically with the server's
//! clock. It fails fast like the cache (below) and the service then limits in each
//! process until Redis is back.
//!
//! [`RedisCache`] stores each answer under `prefix + "dataset:revision:query"` with
//! `SET … EX ttl`, and is also a [`Health`](intake_domain::ports::Health) dependency
//! (`PING`). A cache never fails nor slows a request, so:
//!
//! - constructing it does not connect: the service starts while Redis is down, and the
//!   first request connects;
//! - every Redis call (connecting included) is bounded by [`Settings::timeout`]; an
//!   error or a timeout is a miss, or a dropped write;
//! - after a failed connection, or an error that breaks the connection, it answers
//!   misses at once and tries to connect again at most once per second, instead of
//!   on every request;
//! - it logs the changes of state ("cache unavailable", "cache back") rather than
//!   every failed request, and other errors at most once per ten seconds.

mod cache;
mod limits;
mod link;

pub use cache::{RedisCache, Settings};
pub use limits::{LimiterSettings, RedisRateLimiter};
