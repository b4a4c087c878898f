use serde::{Deserialize, Serialize};

use super::{FieldValue, Location, RecordKey};

/// Why two pieces of data about the same thing disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictKind {
    /// The same identity key (e.g. a student number) arrived with different identity
    /// fields (e.g. two names). The record is still merged; the disagreement is reported.
    Identity,
    /// `highest_version`: the same version of a record arrived with different contents.
    /// The first one stays.
    SameVersion,
    /// `first_wins`: a later record with the same key and different contents. The first
    /// one stays.
    DuplicateKey,
}

/// One field on which the existing and the incoming data disagree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldDifference {
    /// The field's name.
    pub field: String,
    /// What Intake already had (`None`: the field was absent).
    pub existing: Option<FieldValue>,
    /// What arrived (`None`: the field was absent).
    pub incoming: Option<FieldValue>,
}

/// A disagreement found while merging: never dropped silently, listed per import and
/// per dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conflict {
    /// What kind of disagreement this is.
    pub kind: ConflictKind,
    /// The key of the incoming record.
    pub key: RecordKey,
    /// For identity conflicts, the canonical identity key (e.g. the student number).
    pub identity: Option<String>,
    /// The fields that disagree.
    pub differences: Vec<FieldDifference>,
    /// Where the incoming record was in its document.
    pub location: Location,
}
