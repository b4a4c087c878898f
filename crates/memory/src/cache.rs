//! The byte-bounded in-memory cache.

use std::sync::Arc;

use intake_domain::ports::{Cache, CacheKey};

/// The most shards the cache is split into, per available core: each shard has its
/// own lock.
const SHARDS_PER_CORE: u64 = 4;

/// The least each shard holds, so that large values (a shard keeps an entry up to
/// about its own size) still fit when the cache is split.
const MIN_SHARD_BYTES: u64 = 4 << 20;

/// The average entry size assumed to size the cache's bookkeeping of recently evicted
/// keys; a wrong guess costs a little hit rate, nothing else.
const ASSUMED_ENTRY_BYTES: u64 = 1024;

/// An entry's weight: the bytes of its key and its value.
#[derive(Debug, Clone, Copy, Default)]
struct Bytes;

impl quick_cache::Weighter<String, Arc<[u8]>> for Bytes {
    fn weight(&self, key: &String, value: &Arc<[u8]>) -> u64 {
        let len = key.len().saturating_add(value.len());
        u64::try_from(len).unwrap_or(u64::MAX)
    }
}

/// A [`Cache`] in this process's memory, holding at most `max_bytes` of keys and values
/// together and evicting the least useful entries first (quick_cache's S3-FIFO-like
/// policy: entries read again are kept over entries seen once).
///
/// The space is split into shards, each with its own lock and an equal share of the
/// bound; a value larger than about one shard's share (at least 4 MiB when `max_bytes`
/// allows it, else the whole bound) is not kept, and a later `get` is a miss. It
/// never fails: there is nothing to fail. Cheap to share behind an `Arc`.
pub struct MemoryCache {
    entries: quick_cache::sync::Cache<String, Arc<[u8]>, Bytes>,
    max_bytes: u64,
}

impl MemoryCache {
    /// A cache holding at most `max_bytes` bytes of keys and values.
    #[must_use]
    pub fn new(max_bytes: u64) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let cores = u64::try_from(cores).unwrap_or(1);
        let wanted = (cores.saturating_mul(SHARDS_PER_CORE))
            .min(max_bytes / MIN_SHARD_BYTES)
            .max(1);
        // A power of two, which the cache rounds to anyway (rounding down here).
        let shards = 1u64 << wanted.ilog2();
        // A multiple of the shard count, so the shards' shares add up to no more than
        // the bound whatever number of shards the cache settles on.
        let capacity = max_bytes - max_bytes % shards;
        let items = usize::try_from((max_bytes / ASSUMED_ENTRY_BYTES).max(1)).unwrap_or(usize::MAX);
        let options = quick_cache::OptionsBuilder::new()
            .shards(usize::try_from(shards).unwrap_or(1))
            .estimated_items_capacity(items)
            .weight_capacity(capacity)
            .build();
        let entries = match options {
            Ok(options) => quick_cache::sync::Cache::with_options(
                options,
                Bytes,
                quick_cache::DefaultHashBuilder::default(),
                quick_cache::sync::DefaultLifecycle::default(),
            ),
            // Unreachable: both required options are set above.
            Err(_) => quick_cache::sync::Cache::with_weighter(items, capacity, Bytes),
        };
        Self { entries, max_bytes }
    }

    /// The bound given to [`MemoryCache::new`].
    #[must_use]
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// The bytes of keys and values held now; never more than [`MemoryCache::max_bytes`].
    #[must_use]
    pub fn weight(&self) -> u64 {
        self.entries.weight()
    }

    /// The number of entries held now.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl std::fmt::Debug for MemoryCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryCache")
            .field("max_bytes", &self.max_bytes)
            .field("weight", &self.weight())
            .field("len", &self.len())
            .finish()
    }
}

#[async_trait::async_trait]
impl Cache for MemoryCache {
    async fn get(&self, key: &CacheKey) -> Option<Vec<u8>> {
        // The lock is held only to clone the `Arc`; the copy is made outside it.
        self.entries
            .get(key.to_string().as_str())
            .map(|value| value.to_vec())
    }

    async fn put(&self, key: &CacheKey, value: Vec<u8>) {
        self.entries.insert(key.to_string(), Arc::from(value));
    }
}
