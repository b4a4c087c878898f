//! How far the imports this process is working on have come (issue 20): the pipeline
//! counts the records it decodes and the bytes it reads, and readers (the import's
//! answer while it is `processing`, `intake import`'s bar) take a snapshot. Only the
//! process doing the work knows; nothing is written to the store for it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};

use crate::model::ImportId;

/// The counts one import's pipeline keeps.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    records: AtomicU64,
    bytes: AtomicU64,
}

impl Tally {
    /// One more record decoded.
    pub(crate) fn record(&self) {
        self.records.fetch_add(1, Ordering::Relaxed);
    }

    /// `n` more bytes of the document read.
    pub(crate) fn read(&self, n: usize) {
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// A snapshot of an import's progress.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImportProgress {
    /// Records decoded so far (valid or not).
    pub records_seen: u64,
    /// Bytes of the document read so far.
    pub bytes_read: u64,
    /// The document's size.
    pub bytes_total: u64,
    /// When this attempt started.
    pub started_at: DateTime<Utc>,
    /// Records decoded per second since then.
    pub records_per_second: f64,
}

struct Entry {
    tally: Arc<Tally>,
    total: u64,
    started_at: DateTime<Utc>,
}

/// The imports in progress in this process.
#[derive(Clone, Default)]
pub(crate) struct InProgress(Arc<Mutex<HashMap<ImportId, Entry>>>);

/// Keeps an import listed while it is being processed; dropping it ends the listing.
pub(crate) struct Tracking {
    registry: InProgress,
    import: ImportId,
    pub(crate) tally: Arc<Tally>,
}

impl Drop for Tracking {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.import);
    }
}

impl InProgress {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ImportId, Entry>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Lists an import of `total` bytes as started at `now`.
    pub(crate) fn start(&self, import: &ImportId, total: u64, now: DateTime<Utc>) -> Tracking {
        let tally = Arc::new(Tally::default());
        let entry = Entry {
            tally: tally.clone(),
            total,
            started_at: now,
        };
        self.lock().insert(import.clone(), entry);
        Tracking {
            registry: self.clone(),
            import: import.clone(),
            tally,
        }
    }

    /// Where an import this process is working on stands at `now`.
    pub(crate) fn get(&self, import: &ImportId, now: DateTime<Utc>) -> Option<ImportProgress> {
        let map = self.lock();
        let entry = map.get(import)?;
        let records_seen = entry.tally.records.load(Ordering::Relaxed);
        let seconds = (now - entry.started_at).num_milliseconds().max(1) as f64 / 1000.0;
        Some(ImportProgress {
            records_seen,
            bytes_read: entry.tally.bytes.load(Ordering::Relaxed).min(entry.total),
            bytes_total: entry.total,
            started_at: entry.started_at,
            records_per_second: records_seen as f64 / seconds,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_import_is_listed_while_tracked_with_its_counts_and_rate() {
        let registry = InProgress::default();
        let id = ImportId::parse("0123456789abcdef0123456789abcdef").expect("id");
        let start = DateTime::<Utc>::UNIX_EPOCH;
        let tracking = registry.start(&id, 1000, start);
        for _ in 0..50 {
            tracking.tally.record();
        }
        tracking.tally.read(400);
        let later = start + chrono::Duration::seconds(2);
        let progress = registry.get(&id, later).expect("listed");
        assert_eq!(
            (
                progress.records_seen,
                progress.bytes_read,
                progress.bytes_total
            ),
            (50, 400, 1000)
        );
        assert!((progress.records_per_second - 25.0).abs() < 1e-9);
        drop(tracking);
        assert_eq!(registry.get(&id, later), None, "gone when processing ends");
    }
}
