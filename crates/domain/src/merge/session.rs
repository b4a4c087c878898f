//! A merge session: one document's records merged in order against a state, with the
//! report, history, conflicts and verdict it produces.
//!
//! One session serves a whole document, so its report and verdict cover every record.
//! A dry run or a test gives it an empty state and [`MergeSession::push`]es everything.
//! The import service works in batches to stay in bounded memory, and for each batch:
//!
//! 1. [`MergeSession::accept`]s the batch's items (mapping them, reporting bad ones),
//!    which gives the record keys and identity keys the batch needs;
//! 2. loads their stored state and [`MergeSession::add_state`]s it;
//! 3. [`MergeSession::merge`]s the mapped records in order;
//! 4. [`MergeSession::take_batch`]s the changes to write, which also forgets the state
//!    (the store holds it now, so step 2 must load it again for the next batch).
//!
//! A key whose state was not added merges as if it were new: loading is the service's
//! job, and the storage conformance suites check it.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use super::{Decision, Verdict, check_identity, key_conflict};
use crate::contract::Contract;
use crate::mapping::MappedRecord;
use crate::model::{Conflict, FieldValue, ImportReport, Location, Record, RecordError, RecordKey};
use crate::raw::{DecodeError, RawRecord};

/// Whether an accepted change created, updated or deleted its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// `record.created`.
    Created,
    /// `record.updated`.
    Updated,
    /// `record.deleted`: the key has no record any more; the change's record is the
    /// state it had (ADR 40). Only a deletion document makes these, never a merge.
    Deleted,
}

/// One accepted change: a history entry, an outbox event and maybe a callback timer.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// Created or updated.
    pub kind: ChangeKind,
    /// The key's new state.
    pub record: Record,
    /// Where the record that caused it was.
    pub location: Location,
    /// When its callback is due, if the contract has callbacks.
    pub callback_after: Option<Duration>,
}

/// What a finished session produced.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionResult {
    /// Apply or reject (see [`crate::contract::InvalidPolicy::verdict`]).
    pub verdict: Verdict,
    /// The counts and first errors. After a reject, only `seen`, `invalid` and the
    /// errors are non-zero: nothing was applied.
    pub report: ImportReport,
    /// Accepted changes in document order, since the last batch was taken (empty after
    /// a reject).
    pub changes: Vec<Change>,
    /// Conflicts in document order, since the last batch was taken (empty after a
    /// reject).
    pub conflicts: Vec<Conflict>,
    /// The state held since the last batch was taken: every key added or changed
    /// (empty after a reject). Without batches, the final state of the document's keys.
    pub records: BTreeMap<RecordKey, Record>,
}

type IdentityFields = BTreeMap<String, Option<FieldValue>>;

/// The state of a key: as loaded, or the latest change in this batch (not copied).
#[derive(Debug)]
enum Held {
    Loaded(Record),
    Changed(usize),
}

/// What one batch produced, for the store to write in the import's transaction.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Batch {
    /// Accepted changes, in document order.
    pub changes: Vec<Change>,
    /// Conflicts, in document order.
    pub conflicts: Vec<Conflict>,
    /// Identity references first seen in this batch (not loaded from the store), to
    /// be stored; the store keeps the first per key.
    pub identities: HashMap<String, IdentityFields>,
}

/// Merges a document's records in order; see the module documentation.
#[derive(Debug)]
pub struct MergeSession<'c> {
    contract: &'c Contract,
    records: HashMap<RecordKey, Held>,
    identities: HashMap<String, IdentityFields>,
    /// The keys of `identities` loaded from the store: not written again.
    stored_identities: HashSet<String>,
    report: ImportReport,
    changes: Vec<Change>,
    conflicts: Vec<Conflict>,
    broke_off: bool,
    /// Whether the first record was looked at for a header that cannot be right.
    header_checked: bool,
    /// The header lacks required columns: the document is refused whole, at once.
    header_refused: bool,
}

impl<'c> MergeSession<'c> {
    /// A session over an empty state (see [`MergeSession::add_state`]).
    pub fn new(contract: &'c Contract) -> Self {
        Self {
            contract,
            records: HashMap::new(),
            identities: HashMap::new(),
            stored_identities: HashSet::new(),
            report: ImportReport::default(),
            changes: Vec::new(),
            conflicts: Vec::new(),
            broke_off: false,
            header_checked: false,
            header_refused: false,
        }
    }

    /// Takes the next item a decoder produced: maps it and merges it, or reports it.
    pub fn push(&mut self, item: Result<RawRecord, DecodeError>) {
        if let Some(mapped) = self.accept(item) {
            self.merge(mapped);
        }
    }

    /// Counts the next item a decoder produced and maps it; a record that cannot be
    /// decoded or mapped is reported and gives `None`.
    pub fn accept(&mut self, item: Result<RawRecord, DecodeError>) -> Option<MappedRecord> {
        if self.header_refused {
            return None;
        }
        match item {
            Ok(raw) => {
                if !self.header_checked {
                    self.header_checked = true;
                    if let Some(error) = self.header_error(&raw) {
                        self.header_refused = true;
                        self.invalid(vec![error]);
                        return None;
                    }
                }
                self.report.seen += 1;
                self.contract
                    .map(&raw)
                    .map_err(|errors| self.invalid(errors))
                    .ok()
            }
            Err(e) => {
                if e.is_fatal {
                    self.broke_off = true;
                } else {
                    self.report.seen += 1;
                }
                let error = RecordError {
                    location: e.location,
                    field: None,
                    message: e.message,
                };
                self.invalid(vec![error]);
                None
            }
        }
    }

    /// Whether the document is already certain to be rejected (merging can stop; the
    /// rest is only validated for the report).
    pub fn is_rejected(&self) -> bool {
        self.verdict() == Verdict::Reject
    }

    /// Whether nothing more of the document is worth reading (its CSV header lacks
    /// required columns): a decoding loop stops.
    pub fn is_over(&self) -> bool {
        self.header_refused
    }

    fn verdict(&self) -> Verdict {
        if self.header_refused {
            return Verdict::Reject;
        }
        self.contract
            .on_invalid()
            .verdict(self.report.invalid, self.broke_off)
    }

    /// For CSV, the first record's columns are the header: one error naming the
    /// required columns it lacks, the columns it has, and the delimiter they suggest,
    /// instead of every row missing the same fields.
    fn header_error(&self, first: &RawRecord) -> Option<RecordError> {
        let crate::contract::DocumentFormat::Csv { delimiter, .. } = self.contract.format() else {
            return None;
        };
        let found: Vec<&String> = first.fields().keys().collect();
        let missing: Vec<&str> = self
            .contract
            .required_columns()
            .into_iter()
            .filter(|c| !first.fields().contains_key(*c))
            .collect();
        if missing.is_empty() {
            return None;
        }
        let quote = |names: &[&str]| {
            names
                .iter()
                .map(|n| format!("{n:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let found_names: Vec<&str> = found.iter().map(|s| s.as_str()).collect();
        let plural = |n: usize| if n == 1 { "" } else { "s" };
        let mut message = format!(
            "the header lacks the required column{} {}; it has {} column{}: {}",
            plural(missing.len()),
            quote(&missing),
            found.len(),
            plural(found.len()),
            quote(&found_names)
        );
        let read_as = char::from(*delimiter);
        let guess = [';', '\t', '|', ',']
            .into_iter()
            .filter(|c| *c != read_as)
            .find(|c| found_names.iter().any(|name| name.contains(*c)));
        if let Some(guess) = guess {
            let shown = if guess == '\t' {
                "\\t".to_owned()
            } else {
                guess.to_string()
            };
            message.push_str(&format!(
                ". The delimiter looks like '{shown}' where the contract reads '{read_as}': \
                 set \"csv\": {{\"delimiter\": \"{shown}\"}} in the contract, or send the \
                 file with '{read_as}'"
            ));
        }
        Some(RecordError {
            location: Location {
                line: Some(1),
                ..Location::default()
            },
            field: None,
            message,
        })
    }

    fn invalid(&mut self, errors: Vec<RecordError>) {
        self.report.invalid += 1;
        for e in errors {
            self.report.push_error(e);
        }
    }

    /// Merges a record [`MergeSession::accept`] mapped, against the state held for its
    /// key (added, or produced by this batch). Nothing merges once the document is
    /// certain to be rejected.
    pub fn merge(&mut self, mapped: MappedRecord) {
        if self.is_rejected() {
            return;
        }
        self.report.undefined_ratios += mapped.undefined_ratios.len() as u64;
        self.check_identity(&mapped);
        let key = mapped.record.key.clone();
        let (kind, record) = match self.contract.decide(self.current(&key), &mapped.record) {
            Decision::TakeIncoming(kind) => (kind, mapped.record),
            Decision::TakeMerged(record) => (ChangeKind::Updated, record),
            Decision::Unchanged => return self.report.unchanged += 1,
            Decision::Superseded => return self.report.superseded += 1,
            Decision::Conflict(kind) => {
                let conflict = self
                    .current(&key)
                    .map(|current| key_conflict(kind, current, &mapped));
                return conflict.into_iter().for_each(|c| self.conflict(c));
            }
        };
        match kind {
            ChangeKind::Created => self.report.inserted += 1,
            ChangeKind::Updated => self.report.updated += 1,
            ChangeKind::Deleted => self.report.deleted += 1,
        }
        self.records.insert(key, Held::Changed(self.changes.len()));
        self.changes.push(Change {
            kind,
            record,
            location: mapped.location,
            callback_after: mapped.callback_after,
        });
    }

    fn current(&self, key: &RecordKey) -> Option<&Record> {
        match self.records.get(key)? {
            Held::Loaded(record) => Some(record),
            Held::Changed(i) => self.changes.get(*i).map(|c| &c.record),
        }
    }

    fn check_identity(&mut self, mapped: &MappedRecord) {
        let Some(identity) = &mapped.identity else {
            return;
        };
        match self.identities.get(&identity.key) {
            Some(reference) => {
                if let Some(c) = check_identity(reference, mapped, identity) {
                    self.conflict(c);
                }
            }
            None => {
                self.identities
                    .insert(identity.key.clone(), identity.fields.clone());
            }
        }
    }

    fn conflict(&mut self, conflict: Conflict) {
        self.report.conflicts += 1;
        self.conflicts.push(conflict);
    }

    /// Adds stored state for the next batch's keys and identity keys (after the previous
    /// [`MergeSession::take_batch`], which forgets state). State the session already
    /// holds is newer than the store's and is kept.
    pub fn add_state(
        &mut self,
        records: HashMap<RecordKey, Record>,
        identities: HashMap<String, IdentityFields>,
    ) {
        for (key, record) in records {
            self.records.entry(key).or_insert(Held::Loaded(record));
        }
        for (key, fields) in identities {
            if let Entry::Vacant(entry) = self.identities.entry(key) {
                self.stored_identities.insert(entry.key().clone());
                entry.insert(fields);
            }
        }
    }

    /// Takes what the records pushed since the last call produced, to be written, and
    /// forgets the cached state. The report and verdict keep covering the document.
    pub fn take_batch(&mut self) -> Batch {
        self.records.clear();
        let stored = std::mem::take(&mut self.stored_identities);
        let mut identities = std::mem::take(&mut self.identities);
        identities.retain(|key, _| !stored.contains(key));
        Batch {
            changes: std::mem::take(&mut self.changes),
            conflicts: std::mem::take(&mut self.conflicts),
            identities,
        }
    }

    /// Ends the session with its verdict.
    pub fn finish(self) -> SessionResult {
        let verdict = self.verdict();
        if verdict == Verdict::Reject {
            let report = ImportReport {
                seen: self.report.seen,
                invalid: self.report.invalid,
                errors: self.report.errors,
                errors_truncated: self.report.errors_truncated,
                ..ImportReport::default()
            };
            return SessionResult {
                verdict,
                report,
                changes: Vec::new(),
                conflicts: Vec::new(),
                records: BTreeMap::new(),
            };
        }
        let changes = self.changes;
        let records = self
            .records
            .into_iter()
            .filter_map(|(key, held)| match held {
                Held::Loaded(record) => Some((key, record)),
                Held::Changed(i) => changes.get(i).map(|c| (key, c.record.clone())),
            })
            .collect();
        SessionResult {
            verdict,
            report: self.report,
            changes,
            conflicts: self.conflicts,
            records,
        }
    }
}
