//! `intake-redis`: the domain's [`Cache`](intake_domain::ports::Cache) port on Redis,
//! shared by every instance of the service (DESIGN §3).
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
mod link;

pub use cache::{RedisCache, Settings};
