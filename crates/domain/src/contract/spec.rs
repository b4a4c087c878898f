//! The contract's JSON shape, exactly as maintainers write it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A contract as written: see DESIGN §5 and `adr/0003-contract-format.md`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContractSpec {
    /// A free-text note for maintainers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The document format.
    pub format: FormatName,
    /// Where the records are: an XML element path (`root/record`) or a JSON dotted path
    /// to an array (absent: the document is a top-level array). Not used by CSV/NDJSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<String>,
    /// CSV dialect (only with `"format": "csv"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csv: Option<CsvSpec>,
    /// The fields to read from each record, by canonical field name.
    pub fields: BTreeMap<String, FieldSpec>,
    /// The fields whose values identify a record (composite keys allowed).
    pub key: Vec<String>,
    /// The field holding the record's version (integer or timestamp).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Fields to group and filter by.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dimensions: Vec<String>,
    /// Numeric values: a field name, or a ratio of two other measures.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub measures: BTreeMap<String, MeasureSpec>,
    /// How an incoming record combines with the state already held for its key.
    pub merge: MergePolicy,
    /// What an invalid record does to its document.
    pub on_invalid: InvalidPolicy,
    /// An identity check: records agreeing on `key` must agree on `fields`. Records
    /// without the identity key are not checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<IdentitySpec>,
    /// A callback after each accepted version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback: Option<CallbackSpec>,
}

/// The document formats Intake decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FormatName {
    /// XML; records are elements at an element path.
    Xml,
    /// CSV with a header row.
    Csv,
    /// JSON; records are the elements of an array.
    Json,
    /// Newline-delimited JSON: one object per line.
    Ndjson,
}

/// The CSV dialect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvSpec {
    /// One ASCII character; default `,`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<String>,
    /// One ASCII character; default `"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quote: Option<String>,
}

/// One field to read from each record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    /// Where the value is in the record (XML `a/b/@c`, JSON `a.b`, CSV column name);
    /// default: the field's own name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The value's type; values are coerced to it (numbers from text, and so on).
    #[serde(rename = "type")]
    pub kind: FieldType,
    /// A required field that is absent, empty or of the wrong type makes the record invalid.
    #[serde(default)]
    pub required: bool,
}

/// The types a field can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    /// Text, kept exactly (leading zeros too).
    String,
    /// A whole number (`"12"`, `12`, `12.0`).
    Integer,
    /// A finite number (`"12.5"`, `12.5`).
    Number,
    /// `true`/`false` (also `1`/`0`, `yes`/`no`).
    Boolean,
    /// An instant: RFC 3339 and the common date-time forms feeds send.
    Timestamp,
    /// Any JSON value, kept as is.
    Json,
}

/// A measure: a numeric field, or a ratio of two field-backed measures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MeasureSpec {
    /// The measure is the value of this (integer or number) field.
    Field(String),
    /// A ratio of two other measures.
    Ratio(RatioSpec),
}

/// `numerator / denominator * scale`, computed after the merge; undefined (and left
/// out) when the denominator is 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RatioSpec {
    /// `[numerator, denominator]`: names of field-backed measures.
    pub ratio: [String; 2],
    /// Multiplier; default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<f64>,
}

/// The merge policies of DESIGN §5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MergePolicy {
    /// Keep the highest version; an equal version is a duplicate (or a conflict when its
    /// contents differ); a lower one is superseded. Needs `version`.
    HighestVersion,
    /// Keep the first record of each key; later ones are duplicates or conflicts.
    FirstWins,
    /// Keep the last arrival.
    LastWins,
    /// Each measure keeps its maximum across arrivals.
    MaxMeasures,
}

/// What an invalid record does to its document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvalidPolicy {
    /// All or nothing: one invalid record rejects the whole document.
    RejectDocument,
    /// Keep the good records; report the bad ones with their location.
    SkipRecord,
}

/// An identity check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentitySpec {
    /// The fields that identify a real-world entity (e.g. a student number).
    pub key: Vec<String>,
    /// The fields that must agree for the same identity (e.g. the names).
    pub fields: Vec<String>,
}

/// When a callback fires after an accepted version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CallbackSpec {
    /// After the delay given by a field of the record.
    Delay(DelaySpec),
    /// After a fixed delay.
    After(AfterSpec),
}

/// A callback after the delay held by a field of the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DelaySpec {
    /// The (integer or number) field holding the delay.
    pub delay: String,
    /// The field's unit.
    pub unit: DelayUnit,
}

/// A callback after a fixed delay such as `"30s"`, `"500ms"`, `"5m"`, `"1h"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AfterSpec {
    /// The delay.
    pub after: String,
}

/// Units of a callback delay field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DelayUnit {
    /// Milliseconds.
    Ms,
    /// Seconds.
    S,
}
