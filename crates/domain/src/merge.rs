//! Merge: the four policies of DESIGN §5 as pure functions over (current state,
//! incoming record) → outcome, the identity check, and the document-level rule of
//! `reject_document` vs `skip_record`.

mod session;

use std::cmp::Ordering;
use std::collections::BTreeMap;

use crate::contract::{Contract, InvalidPolicy, MergePolicy};
use crate::mapping::{Identity, MappedRecord};
use crate::model::{Conflict, ConflictKind, FieldDifference, FieldValue, Measures, Record};

pub use session::{Batch, Change, ChangeKind, MergeSession, SessionResult};

/// What merging one incoming record did to the state of its key.
#[derive(Debug, Clone, PartialEq)]
pub enum MergeOutcome {
    /// The key was new; this is its first state.
    Inserted(Record),
    /// The key's state changed to this.
    Updated(Record),
    /// Nothing changed: an exact duplicate, or nothing better under `max_measures`.
    Unchanged,
    /// The incoming record is older than the state held (`highest_version`); ignored.
    Superseded,
    /// The incoming record disagrees with the state held and loses (`highest_version`
    /// with an equal version, `first_wins`); the disagreement is reported.
    Conflict(Conflict),
}

/// Whether a processed document is applied or rejected as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Apply the valid records.
    Commit,
    /// Apply nothing; the import fails (the raw document stays in the vault).
    Reject,
}

impl InvalidPolicy {
    /// The document-level rule: under `reject_document` any invalid record, or a
    /// document whose decoding broke off, rejects the whole document; under
    /// `skip_record` the valid records are kept either way.
    pub fn verdict(self, invalid: u64, decoding_broke_off: bool) -> Verdict {
        match self {
            Self::RejectDocument if invalid > 0 || decoding_broke_off => Verdict::Reject,
            _ => Verdict::Commit,
        }
    }
}

/// What merging decides, before any record is copied: the session moves the incoming
/// record into its change instead of cloning it.
pub(crate) enum Decision {
    /// The incoming record becomes the state as it is.
    TakeIncoming(ChangeKind),
    /// A merge of both becomes the state (`max_measures`).
    TakeMerged(Record),
    Unchanged,
    Superseded,
    Conflict(ConflictKind),
}

impl Contract {
    /// Merges an incoming record into the current state of its key under the
    /// contract's merge policy. Derived measures are computed after the merge.
    pub fn merge(&self, current: Option<&Record>, incoming: &MappedRecord) -> MergeOutcome {
        match (self.decide(current, &incoming.record), current) {
            (Decision::TakeIncoming(ChangeKind::Created), _) => {
                MergeOutcome::Inserted(incoming.record.clone())
            }
            // A merge never deletes (only a deletion document does).
            (Decision::TakeIncoming(ChangeKind::Updated | ChangeKind::Deleted), _) => {
                MergeOutcome::Updated(incoming.record.clone())
            }
            (Decision::TakeMerged(record), _) => MergeOutcome::Updated(record),
            (Decision::Unchanged, _) => MergeOutcome::Unchanged,
            (Decision::Superseded, _) => MergeOutcome::Superseded,
            (Decision::Conflict(kind), Some(current)) => {
                MergeOutcome::Conflict(key_conflict(kind, current, incoming))
            }
            (Decision::Conflict(_), None) => MergeOutcome::Inserted(incoming.record.clone()),
        }
    }

    pub(crate) fn decide(&self, current: Option<&Record>, new: &Record) -> Decision {
        let Some(current) = current else {
            return Decision::TakeIncoming(ChangeKind::Created);
        };
        if current == new {
            return Decision::Unchanged;
        }
        match self.merge_policy() {
            MergePolicy::HighestVersion => match new.version.cmp(&current.version) {
                Ordering::Greater => Decision::TakeIncoming(ChangeKind::Updated),
                Ordering::Less => Decision::Superseded,
                Ordering::Equal => Decision::Conflict(ConflictKind::SameVersion),
            },
            MergePolicy::FirstWins => Decision::Conflict(ConflictKind::DuplicateKey),
            MergePolicy::LastWins => Decision::TakeIncoming(ChangeKind::Updated),
            MergePolicy::MaxMeasures => {
                let merged = self.max_measures(current, new);
                if &merged == current {
                    Decision::Unchanged
                } else {
                    Decision::TakeMerged(merged)
                }
            }
        }
    }

    /// `max_measures`: each field-backed measure keeps its maximum, ratios are derived
    /// again, the version is the highest, and the other fields come from the
    /// higher-ranked of the two records (see [`rank`]), so the final state does not
    /// depend on arrival order.
    fn max_measures(&self, current: &Record, incoming: &Record) -> Record {
        let winner = match rank(current, incoming) {
            Ordering::Less => incoming,
            _ => current,
        };
        let mut measures = Measures::default();
        for name in self.measure_names() {
            let best = match (current.measures.get(name), incoming.measures.get(name)) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            if let Some(v) = best {
                // Both inputs were valid measures, so their maximum is too.
                let _ = measures.insert(name, v);
            }
        }
        self.derive(&mut measures);
        Record {
            key: winner.key.clone(),
            version: current.version.max(incoming.version),
            dimensions: winner.dimensions.clone(),
            measures,
            attributes: winner.attributes.clone(),
        }
    }
}

/// A total order over records used to pick whose non-measure fields survive a
/// `max_measures` merge: the canonical JSON of their dimensions and attributes, the
/// higher one winning. Taking a maximum keeps the result independent of arrival order
/// (measures cannot take part: the state already holds merged maxima); differing
/// fields are reported by the identity check where the contract has one.
pub fn rank(a: &Record, b: &Record) -> Ordering {
    let fields = |r: &Record| {
        let dims: Vec<_> = r.dimensions.iter().collect();
        (
            serde_json::to_string(&dims).unwrap_or_default(),
            r.attributes.to_json().to_string(),
        )
    };
    fields(a).cmp(&fields(b))
}

/// The identity check: the first identity fields seen for an identity key are the
/// reference; a record that disagrees with them is reported as an identity conflict
/// (it is still merged).
pub fn check_identity(
    reference: &BTreeMap<String, Option<FieldValue>>,
    incoming: &MappedRecord,
    identity: &Identity,
) -> Option<Conflict> {
    let differences: Vec<FieldDifference> = identity
        .fields
        .iter()
        .filter(|(name, value)| reference.get(*name).is_some_and(|r| r != *value))
        .map(|(name, value)| FieldDifference {
            field: name.clone(),
            existing: reference.get(name).cloned().flatten(),
            incoming: value.clone(),
        })
        .collect();
    (!differences.is_empty()).then(|| Conflict {
        kind: ConflictKind::Identity,
        key: incoming.record.key.clone(),
        identity: Some(identity.key.clone()),
        differences,
        location: incoming.location.clone(),
    })
}

pub(crate) fn key_conflict(
    kind: ConflictKind,
    current: &Record,
    incoming: &MappedRecord,
) -> Conflict {
    Conflict {
        kind,
        key: incoming.record.key.clone(),
        identity: None,
        differences: differences(current, &incoming.record),
        location: incoming.location.clone(),
    }
}

/// The fields on which two states of a record disagree.
pub fn differences(existing: &Record, incoming: &Record) -> Vec<FieldDifference> {
    let flat = |r: &Record| -> BTreeMap<String, FieldValue> {
        let mut out: BTreeMap<String, FieldValue> = r
            .attributes
            .iter()
            .map(|(k, v)| (k.to_owned(), v.clone()))
            .collect();
        out.extend(
            r.dimensions
                .iter()
                .map(|(k, v)| (k.to_owned(), FieldValue::Text(v.to_owned()))),
        );
        out.extend(
            r.measures
                .iter()
                .map(|(k, v)| (k.to_owned(), FieldValue::Number(v))),
        );
        if let Some(v) = r.version {
            out.insert("version".to_owned(), FieldValue::Integer(v.get()));
        }
        out
    };
    let (a, b) = (flat(existing), flat(incoming));
    let mut names: Vec<&String> = a.keys().chain(b.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter(|n| a.get(*n) != b.get(*n))
        .map(|n| FieldDifference {
            field: n.clone(),
            existing: a.get(n).cloned(),
            incoming: b.get(n).cloned(),
        })
        .collect()
}
