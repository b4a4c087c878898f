use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::merge::{Batch, Verdict};
use crate::model::{
    Conflict, DatasetName, FieldValue, ImportId, ImportReport, Record, RecordKey, Revision,
};
use crate::ports::Lease;

/// A record with where and when its state came from.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRecord {
    /// The state.
    pub record: Record,
    /// The import that produced it.
    pub import: ImportId,
    /// When it was committed.
    pub updated_at: DateTime<Utc>,
    /// A history entry of a deletion (ADR 40): the key had this state until `import`
    /// deleted it. Latest states are never deleted ones.
    pub deleted: bool,
}

/// Which part of a key's history to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryPage {
    /// Entries at most.
    pub limit: u32,
    /// Only entries after this one (the `next` of the previous page).
    pub after: Option<i64>,
}

impl HistoryPage {
    /// The whole history.
    pub const ALL: Self = Self {
        limit: u32::MAX,
        after: None,
    };
}

/// A page of a key's history.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEntries {
    /// Oldest first.
    pub entries: Vec<StoredRecord>,
    /// Where the next page starts, when there is one.
    pub next: Option<i64>,
}

impl HistoryEntries {
    /// The page of `page.limit` entries from `rows` (each with its sequence, oldest
    /// first), which a store read with one row more than the limit, so that one
    /// tells whether a next page follows.
    pub fn from_rows(mut rows: Vec<(i64, StoredRecord)>, page: &HistoryPage) -> Self {
        let more = rows.len() > page.limit as usize;
        rows.truncate(page.limit as usize);
        let next = more.then(|| rows.last().map(|(seq, _)| *seq)).flatten();
        Self {
            entries: rows.into_iter().map(|(_, entry)| entry).collect(),
            next,
        }
    }
}

/// Which records a list, a scan or marks keep: every condition holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct RecordFilter {
    /// Each named dimension has one of its listed values (a name with no value
    /// matches nothing).
    pub dimensions: BTreeMap<String, Vec<String>>,
    /// Only records whose latest state was committed at or after this instant.
    pub updated_since: Option<DateTime<Utc>>,
}

impl RecordFilter {
    /// `dimension = value` for each pair.
    pub fn equal_to(pairs: &BTreeMap<String, String>) -> Self {
        Self {
            dimensions: pairs
                .iter()
                .map(|(name, value)| (name.clone(), vec![value.clone()]))
                .collect(),
            updated_since: None,
        }
    }

    /// Whether it keeps every record.
    pub fn is_empty(&self) -> bool {
        self.dimensions.is_empty() && self.updated_since.is_none()
    }
}

/// The order of a record list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RecordOrder {
    /// By canonical key, bytewise.
    #[default]
    Key,
    /// By a measure's value, records without it last, then by key.
    Measure {
        /// The measure.
        name: String,
        /// Highest first.
        descending: bool,
    },
}

/// Which records to list: a filter, an order, and a page.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecordQuery {
    /// What the records must match.
    pub filters: RecordFilter,
    /// Their order; with an order other than by key, `after` is `None`.
    pub order: RecordOrder,
    /// Page size.
    pub limit: u32,
    /// Records to skip (ordered by canonical key), after `after`.
    pub offset: u64,
    /// Only records whose canonical key sorts (bytewise) after this one: a keyset
    /// cursor, so that pages stay stable while records are added anywhere.
    pub after: Option<String>,
}

/// A keyset scan over a dataset's latest state: records matching every filter whose
/// canonical key sorts (bytewise) after `after`, in canonical key order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecordScan {
    /// What the records must match.
    pub filters: RecordFilter,
    /// The canonical key of the last record of the previous page (`None`: from the
    /// start).
    pub after: Option<String>,
    /// Page size.
    pub limit: u32,
}

/// One page of records.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordPage {
    /// The records, ordered by canonical key.
    pub records: Vec<StoredRecord>,
    /// How many match in all.
    pub total: u64,
}

/// Errors of the record store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such dataset or record.
    #[error("not found")]
    NotFound,
    /// The import's lease was lost while writing; the writer rolled back.
    #[error("lease lost")]
    LeaseLost,
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Identity references by canonical identity key.
pub type IdentityMap = HashMap<String, BTreeMap<String, Option<FieldValue>>>;

/// One import's writes, in one transaction inside the adapter. Batches stream through
/// it (one [`crate::merge::Batch`] at a time, from the import's merge session); nothing
/// is visible to readers until [`ImportWriter::finish`]; dropping it without finishing
/// rolls everything back.
#[async_trait::async_trait]
pub trait ImportWriter: Send {
    /// The current state of these keys and identity references, as this transaction
    /// sees them (earlier batches included).
    ///
    /// # Errors
    /// - `Unexpected` when reading failed.
    async fn load(
        &mut self,
        keys: &[RecordKey],
        identities: &[String],
    ) -> Result<(HashMap<RecordKey, Record>, IdentityMap), StoreError>;

    /// Writes a batch: latest state and history for each change, identity references
    /// not yet stored (the first one per key stays), conflicts,
    /// `record.created`/`record.updated` outbox events, and callback timers (replacing
    /// the key's pending timer).
    ///
    /// # Errors
    /// - `Unexpected` when writing failed; the writer is then unusable.
    async fn apply(&mut self, batch: &Batch) -> Result<(), StoreError>;

    /// Extends the import's lease to `by` from now while the unit of work is open (an
    /// embedded database may not accept another writer meanwhile). Until the writer
    /// finishes, no other worker can claim the import either way.
    ///
    /// # Errors
    /// - `LeaseLost` when another worker claimed the import.
    async fn renew(&mut self, by: Duration) -> Result<DateTime<Utc>, StoreError>;

    /// Marks the import finished with its report (`completed` for `Commit`, `failed`
    /// for `Reject`, in which case nothing applied is kept), writes the
    /// `import.completed`/`import.failed` event, bumps the dataset revision on commit,
    /// and commits, all at once. Gives the dataset's revision and the pending callbacks
    /// the import cancelled (none for `Reject`).
    ///
    /// # Errors
    /// - `LeaseLost` when another worker claimed the import meanwhile (nothing is
    ///   committed).
    async fn finish(
        self: Box<Self>,
        verdict: Verdict,
        report: &ImportReport,
    ) -> Result<Finished, StoreError>;
}

/// What a finished import committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// The dataset's revision after it.
    pub revision: Revision,
    /// The pending callbacks its newer versions cancelled.
    pub cancelled: Vec<CancelledCallback>,
}

/// A pending callback that a newer version of its key, or its deletion, cancelled
/// (DESIGN §8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelledCallback {
    /// The key.
    pub key: String,
    /// The version the callback was for.
    pub version: Option<i64>,
    /// The version that replaced it.
    pub replaced_by: Option<i64>,
    /// The key's record was deleted instead (ADR 40).
    pub deleted: bool,
}

/// Latest state, history and conflicts of records.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait::async_trait]
pub trait RecordStore: Send + Sync {
    /// Opens the unit of work of a claimed import.
    ///
    /// # Errors
    /// - `LeaseLost` when the lease is no longer held.
    async fn begin_apply(&self, lease: &Lease) -> Result<Box<dyn ImportWriter>, StoreError>;

    /// One record's latest state.
    ///
    /// # Errors
    /// - `NotFound` when the key has no record.
    async fn get(&self, dataset: &DatasetName, key: &RecordKey)
    -> Result<StoredRecord, StoreError>;

    /// Records matching a query, in its order.
    ///
    /// # Errors
    /// - `Unexpected` only.
    async fn list(
        &self,
        dataset: &DatasetName,
        query: &RecordQuery,
    ) -> Result<RecordPage, StoreError>;

    /// The next page of a keyset scan (see [`RecordScan`]): readers page through a whole
    /// dataset in bounded memory, and a page costs the same wherever it starts.
    ///
    /// # Errors
    /// - `Unexpected` only (an unknown dataset has no records).
    async fn scan(
        &self,
        dataset: &DatasetName,
        scan: &RecordScan,
    ) -> Result<Vec<Record>, StoreError>;

    /// Marks for deep offsets: the canonical keys of the records matching `filters`
    /// at positions `every`, `2 × every`, … (counting from 1) in canonical key order.
    /// A page at offset `n × every + m` is then the page after the `n`-th mark at
    /// offset `m`, whatever `n` is.
    ///
    /// # Errors
    /// - `Unexpected` only (an unknown dataset has no records).
    async fn marks(
        &self,
        dataset: &DatasetName,
        filters: &RecordFilter,
        every: u64,
    ) -> Result<Vec<String>, StoreError>;

    /// A page of one key's accepted states, oldest first: at most `page.limit`, those
    /// after the entry `page.after` names (the `next` of an earlier page).
    ///
    /// # Errors
    /// - `NotFound` when the key never had a record (with `after` or without).
    async fn history(
        &self,
        dataset: &DatasetName,
        key: &RecordKey,
        page: &HistoryPage,
    ) -> Result<HistoryEntries, StoreError>;

    /// A dataset's conflicts, oldest first.
    ///
    /// # Errors
    /// - `Unexpected` only.
    async fn conflicts(
        &self,
        dataset: &DatasetName,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<(ImportId, Conflict)>, StoreError>;
}
