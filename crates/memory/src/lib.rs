//! `intake-memory`: in-process adapters, for a single instance of the service or as a
//! first level in front of a shared one.
//!
//! [`MemoryCache`] implements the domain's [`Cache`](intake_domain::ports::Cache) port
//! in the process's memory, bounded by the bytes it holds (keys plus values) rather
//! than by a number of entries, since cached answers range from a few bytes to
//! megabytes. Entries never expire: a cache key carries the dataset's revision, so a
//! new import makes new keys and the old entries are evicted as they go cold.

//!
//! [`MemoryRateLimiter`] implements the [`RateLimiter`](intake_domain::ports::RateLimiter)
//! port: a token bucket per key, for one instance, or behind a shared limiter while
//! that one is unreachable.

mod cache;
mod limits;

pub use cache::MemoryCache;
pub use limits::MemoryRateLimiter;
