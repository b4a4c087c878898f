use std::fmt;

use serde::{Deserialize, Serialize};

/// The name of a dataset: 1 to 63 characters, lowercase ASCII letters, digits, `-` and
/// `_`, starting with a letter. It appears in URLs, so it is kept URL-safe.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DatasetName(String);

/// Why a dataset name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DatasetNameError {
    /// The name was empty.
    #[error("dataset name is empty")]
    Empty,
    /// The name was longer than 63 characters.
    #[error("dataset name is longer than 63 characters")]
    TooLong,
    /// The name did not start with a lowercase letter.
    #[error("dataset name must start with a lowercase letter")]
    BadStart,
    /// The name held a character outside `a-z`, `0-9`, `-`, `_`.
    #[error("dataset name may only hold a-z, 0-9, '-' and '_' (found {0:?})")]
    BadChar(char),
}

impl DatasetName {
    /// Validates and wraps a dataset name.
    ///
    /// # Errors
    /// A [`DatasetNameError`] saying which rule the name breaks.
    pub fn parse(name: impl Into<String>) -> Result<Self, DatasetNameError> {
        let name = name.into();
        let first = name.chars().next().ok_or(DatasetNameError::Empty)?;
        if name.len() > 63 {
            return Err(DatasetNameError::TooLong);
        }
        if !first.is_ascii_lowercase() {
            return Err(DatasetNameError::BadStart);
        }
        let allowed =
            |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
        match name.chars().find(|c| !allowed(*c)) {
            Some(c) => Err(DatasetNameError::BadChar(c)),
            None => Ok(Self(name)),
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for DatasetName {
    type Error = DatasetNameError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<DatasetName> for String {
    fn from(value: DatasetName) -> Self {
        value.0
    }
}

impl fmt::Display for DatasetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A dataset's revision: starts at 0 and increases by one with every committed import.
/// Cache keys include it, so a new import makes new answers visible without a purge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Revision(u64);

impl Revision {
    /// The revision of a dataset that has never committed an import.
    pub const INITIAL: Self = Self(0);

    /// Wraps a stored revision number.
    pub fn new(value: u64) -> Self {
        Self(value)
    }

    /// The revision after one more committed import.
    pub fn next(self) -> Self {
        Self(self.0.saturating_add(1))
    }

    /// The revision number.
    pub fn get(self) -> u64 {
        self.0
    }
}

/// The number of a published contract: 1, 2, 3… per dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct ContractVersion(u32);

impl ContractVersion {
    /// The first contract of a dataset.
    pub const FIRST: Self = Self(1);

    /// Wraps a contract number; 0 is never a contract.
    ///
    /// # Errors
    /// [`ContractVersionError`] for 0.
    pub fn try_new(value: u32) -> Result<Self, ContractVersionError> {
        if value > 0 {
            Ok(Self(value))
        } else {
            Err(ContractVersionError)
        }
    }

    /// The number that the next published contract gets.
    pub fn next(self) -> Self {
        Self(self.0.saturating_add(1))
    }

    /// The contract number.
    pub fn get(self) -> u32 {
        self.0
    }
}

/// Contract numbers start at 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("contract versions start at 1")]
pub struct ContractVersionError;

impl TryFrom<u32> for ContractVersion {
    type Error = ContractVersionError;
    fn try_from(value: u32) -> Result<Self, Self::Error> {
        Self::try_new(value)
    }
}

impl From<ContractVersion> for u32 {
    fn from(value: ContractVersion) -> Self {
        value.0
    }
}

impl fmt::Display for ContractVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A record's version, read from the contract's version field (an integer, or a
/// timestamp as microseconds since the Unix epoch). Higher is newer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Version(i64);

impl Version {
    /// Wraps a version number.
    pub fn new(value: i64) -> Self {
        Self(value)
    }

    /// The version number.
    pub fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dataset_names_follow_the_url_safe_rules() {
        let cases = [
            ("exam-results", Ok(())),
            ("a", Ok(())),
            ("a_1-b", Ok(())),
            ("", Err(DatasetNameError::Empty)),
            ("Exam", Err(DatasetNameError::BadStart)),
            ("1abc", Err(DatasetNameError::BadStart)),
            ("exam results", Err(DatasetNameError::BadChar(' '))),
            ("exam/results", Err(DatasetNameError::BadChar('/'))),
        ];
        for (name, expected) in cases {
            assert_eq!(DatasetName::parse(name).map(|_| ()), expected, "{name:?}");
        }
        assert_eq!(
            DatasetName::parse("a".repeat(64)),
            Err(DatasetNameError::TooLong)
        );
        assert!(DatasetName::parse("a".repeat(63)).is_ok());
    }

    #[test]
    fn contract_versions_start_at_one() {
        assert_eq!(ContractVersion::try_new(0), Err(ContractVersionError));
        assert_eq!(ContractVersion::FIRST.next().get(), 2);
        assert!(serde_json::from_str::<ContractVersion>("0").is_err());
    }

    #[test]
    fn revisions_only_increase() {
        assert_eq!(Revision::INITIAL.next().next().get(), 2);
        assert_eq!(Revision::new(u64::MAX).next().get(), u64::MAX);
    }
}
