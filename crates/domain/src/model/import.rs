use std::fmt;

use serde::{Deserialize, Serialize};

use super::Location;

/// The id of an import: 1 to 64 characters of ASCII letters, digits, `-` and `_`.
/// Adapters choose the scheme (a UUID, a sequence number); it appears in URLs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ImportId(String);

/// Why an import id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an import id (1-64 characters: letters, digits, '-', '_')")]
pub struct ImportIdError(String);

impl ImportId {
    /// Validates and wraps an import id.
    ///
    /// # Errors
    /// [`ImportIdError`] when the text breaks the rule.
    pub fn parse(id: impl Into<String>) -> Result<Self, ImportIdError> {
        let id = id.into();
        let ok = (1..=64).contains(&id.len())
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if ok {
            Ok(Self(id))
        } else {
            Err(ImportIdError(id))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ImportId {
    type Error = ImportIdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<ImportId> for String {
    fn from(value: ImportId) -> Self {
        value.0
    }
}

impl fmt::Display for ImportId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where an import is in its life: `received → processing → completed | failed`.
/// An expired lease sends `processing` back to `received`; reprocessing with another
/// contract starts a finished import again from `received`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportStatus {
    /// Stored in the vault, waiting for a worker.
    Received,
    /// Claimed by a worker holding a lease.
    Processing,
    /// Processed and committed (its report may still list skipped records).
    Completed,
    /// Rejected as a whole: nothing from it was applied; the raw document stays.
    Failed,
}

impl ImportStatus {
    /// Whether an import may move from `self` to `next`.
    pub fn can_become(self, next: Self) -> bool {
        use ImportStatus::*;
        matches!(
            (self, next),
            (Received, Processing)
                | (Processing, Completed | Failed | Received)
                | (Completed | Failed, Received)
        )
    }

    /// Its name as stored and shown (`received`, `processing`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::Processing => "processing",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }

    /// The status of a name given by [`ImportStatus::as_str`].
    pub fn parse(name: &str) -> Option<Self> {
        use ImportStatus::*;
        [Received, Processing, Completed, Failed]
            .into_iter()
            .find(|s| s.as_str() == name)
    }

    /// Whether processing has finished (successfully or not).
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Completed | Self::Failed)
    }
}

/// One problem with one record (or with the document, when decoding stopped).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordError {
    /// Where the record is in its document.
    pub location: Location,
    /// The contract field at fault, when the problem is with one field.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub field: Option<String>,
    /// What is wrong, for a person.
    pub message: String,
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{}: field {field:?}: {}", self.location, self.message),
            None => write!(f, "{}: {}", self.location, self.message),
        }
    }
}

/// What processing an import did, record by record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportReport {
    /// Records found in the document (valid or not).
    pub seen: u64,
    /// New keys.
    pub inserted: u64,
    /// Existing keys whose state changed.
    pub updated: u64,
    /// Records that changed nothing (exact duplicates, or no better measure).
    pub unchanged: u64,
    /// Records older than the state already held (`highest_version`), ignored.
    pub superseded: u64,
    /// Keys whose record a deletion document deleted (ADR 40); absent when none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub deleted: u64,
    /// Records that could not be decoded or mapped.
    pub invalid: u64,
    /// Conflicts reported (identity, same version, duplicate key).
    pub conflicts: u64,
    /// Measures whose ratio was undefined (zero denominator) and left out.
    pub undefined_ratios: u64,
    /// The first [`ImportReport::MAX_ERRORS`] errors, in document order.
    pub errors: Vec<RecordError>,
    /// Whether more errors happened than `errors` lists.
    pub errors_truncated: bool,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl ImportReport {
    /// How many errors a report lists before it only counts them.
    pub const MAX_ERRORS: usize = 100;

    /// Keeps an error if there is room, and notes the truncation otherwise.
    pub fn push_error(&mut self, error: RecordError) {
        if self.errors.len() < Self::MAX_ERRORS {
            self.errors.push(error);
        } else {
            self.errors_truncated = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_only_move_along_the_lifecycle() {
        use ImportStatus::*;
        assert!(Received.can_become(Processing));
        assert!(Processing.can_become(Completed));
        assert!(
            Processing.can_become(Received),
            "an expired lease is claimed again"
        );
        assert!(Failed.can_become(Received), "reprocessing starts again");
        assert!(!Received.can_become(Completed));
        assert!(!Completed.can_become(Failed));
        for s in [Received, Processing, Completed, Failed] {
            assert_eq!(ImportStatus::parse(s.as_str()), Some(s));
            let json = serde_json::to_value(s).unwrap();
            assert_eq!(
                json.as_str(),
                Some(s.as_str()),
                "the names agree with serde"
            );
        }
        assert_eq!(ImportStatus::parse("done"), None);
    }

    #[test]
    fn import_ids_are_url_safe() {
        assert!(ImportId::parse("01J9Z-abc_1").is_ok());
        assert!(ImportId::parse("").is_err());
        assert!(ImportId::parse("a/b").is_err());
        assert!(ImportId::parse("x".repeat(65)).is_err());
    }

    #[test]
    fn a_report_keeps_the_first_errors_and_counts_the_rest() {
        let mut report = ImportReport::default();
        for i in 0..(ImportReport::MAX_ERRORS + 5) {
            report.push_error(RecordError {
                location: Location {
                    record: Some(i as u64 + 1),
                    ..Location::default()
                },
                field: None,
                message: "bad".into(),
            });
        }
        assert_eq!(report.errors.len(), ImportReport::MAX_ERRORS);
        assert!(report.errors_truncated);
        assert_eq!(report.errors[0].location.record, Some(1));
    }
}
