//! Marks for deep offsets (issue 17): a v1 page at offset 500,000 would otherwise read
//! and skip half a million keys. The store numbers a dataset's keys in one pass and
//! names every [`EVERY`]-th ([`RecordStore::marks`](crate::ports::RecordStore::marks));
//! a deep page then starts after a mark and skips fewer than [`EVERY`] keys.
//!
//! Marks hold for one revision of a dataset (and one set of filters): an import that
//! adds a key before a mark moves every later position. They are kept in memory per
//! (dataset, creation, revision, filters), a few sets at most, and made again when the
//! revision moves on.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use crate::model::{DatasetName, Revision};
use crate::ports::{Dataset, RecordFilter};

/// Keys between two marks: a deep page skips fewer than this many.
pub const EVERY: u64 = 1024;

/// Sets of marks kept (a set is about `records / EVERY` keys).
const KEPT: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Of {
    dataset: DatasetName,
    created: i64,
    revision: Revision,
    filters: RecordFilter,
}

impl Of {
    fn new(dataset: &Dataset, filters: &RecordFilter) -> Self {
        Self {
            dataset: dataset.name.clone(),
            created: dataset.created_at.timestamp_micros(),
            revision: dataset.revision,
            filters: filters.clone(),
        }
    }
}

/// Sets of marks, oldest first.
type Kept = VecDeque<(Of, Arc<Vec<String>>)>;

/// Cheap to clone; clones share the marks.
#[derive(Clone, Default)]
pub(crate) struct Marks(Arc<Mutex<Kept>>);

impl Marks {
    /// The marks of `dataset` at its revision, with these filters, if kept.
    pub(crate) fn get(
        &self,
        dataset: &Dataset,
        filters: &RecordFilter,
    ) -> Option<Arc<Vec<String>>> {
        let of = Of::new(dataset, filters);
        let kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        kept.iter().find(|(o, _)| *o == of).map(|(_, m)| m.clone())
    }

    /// Keeps marks made at `dataset`'s revision, replacing those of other revisions
    /// with the same filters, and the oldest set when [`KEPT`] are kept.
    pub(crate) fn keep(&self, dataset: &Dataset, filters: &RecordFilter, marks: Arc<Vec<String>>) {
        let of = Of::new(dataset, filters);
        let mut kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        kept.retain(|(o, _)| !(o.dataset == of.dataset && o.filters == of.filters));
        if kept.len() >= KEPT {
            kept.pop_front();
        }
        kept.push_back((of, marks));
    }
}

/// Where a page at `offset` starts: after which mark, and how many keys after it.
/// `None` when the offset is before the first mark.
pub(crate) fn start(marks: &[String], offset: u64) -> Option<(&str, u64)> {
    let passed = usize::try_from(offset / EVERY).unwrap_or(usize::MAX);
    let passed = passed.min(marks.len());
    let mark = marks.get(passed.checked_sub(1)?)?;
    Some((mark.as_str(), offset - passed as u64 * EVERY))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marks(n: usize) -> Vec<String> {
        // The key at position (i + 1) × EVERY, counting from 1, is number (i + 1) × EVERY - 1.
        (0..n)
            .map(|i| format!("k{:06}", (i as u64 + 1) * EVERY - 1))
            .collect()
    }

    #[test]
    fn a_page_starts_after_the_last_mark_it_passes() {
        let m = marks(3);
        assert_eq!(start(&m, 0), None);
        assert_eq!(start(&m, EVERY - 1), None);
        // Offset EVERY skips keys 0 … EVERY - 1: the page starts after the first mark.
        assert_eq!(start(&m, EVERY), Some(("k001023", 0)));
        assert_eq!(start(&m, 2 * EVERY + 5), Some(("k002047", 5)));
        // Past the last mark, the rest is skipped after it (past the end: an empty page).
        assert_eq!(start(&m, 10 * EVERY + 7), Some(("k003071", 7 * EVERY + 7)));
        assert_eq!(start(&[], 10 * EVERY), None);
    }
}
