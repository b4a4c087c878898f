//! The in-process rate limiter: one token bucket per key in a map behind a mutex.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use intake_domain::limits::{Bucket, take};
use intake_domain::ports::{RateDecision, RateLimit, RateLimitError, RateLimiter};

/// Token buckets in this process's memory (see [`intake_domain::limits::take`]).
///
/// Bounded: when it holds `max_keys` buckets and a new key arrives, the buckets that
/// have filled up again are forgotten (a forgotten bucket starts full, so nothing
/// changes for its key); if none has, the new key's bucket is not kept and the
/// request is decided as the first of a full bucket.
pub struct MemoryRateLimiter {
    started: Instant,
    max_keys: usize,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl MemoryRateLimiter {
    /// A limiter keeping at most `max_keys` buckets.
    pub fn new(max_keys: usize) -> Self {
        Self {
            started: Instant::now(),
            max_keys: max_keys.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Buckets held now.
    pub fn len(&self) -> usize {
        self.buckets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether it holds no bucket.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Debug for MemoryRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryRateLimiter")
            .field("max_keys", &self.max_keys)
            .field("buckets", &self.len())
            .finish()
    }
}

#[async_trait::async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn acquire(&self, key: &str, limit: RateLimit) -> Result<RateDecision, RateLimitError> {
        let now = self.now_ms();
        // No await while the lock is held.
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(bucket) = buckets.get_mut(key) {
            let (state, decision) = take(Some(*bucket), now, limit);
            *bucket = state;
            return Ok(decision);
        }
        if buckets.len() >= self.max_keys {
            buckets.retain(|_, b| take(Some(*b), now, limit).1.remaining + 1 < limit.burst);
        }
        let (state, decision) = take(None, now, limit);
        if buckets.len() < self.max_keys {
            buckets.insert(key.to_owned(), state);
        }
        Ok(decision)
    }
}
