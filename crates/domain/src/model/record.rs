use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{FieldValue, RecordKey, Version};

/// Why an entry of a record (a field, dimension or measure) was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EntryError {
    /// Names are 1–64 characters: ASCII letters, digits and `_`, not starting with a digit.
    #[error(
        "{0:?} is not a valid name (1-64 characters: letters, digits, '_', not starting with a digit)"
    )]
    BadName(String),
    /// Measures are finite numbers: NaN and infinities are refused.
    #[error("measure {name:?} is not a finite number ({value})")]
    NotFinite {
        /// The measure's name.
        name: String,
        /// The refused value.
        value: f64,
    },
}

/// Checks a field, dimension or measure name.
///
/// # Errors
/// [`EntryError::BadName`] when the name breaks the rule.
pub(crate) fn check_name(name: &str) -> Result<(), EntryError> {
    let ok = (1..=64).contains(&name.len())
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(EntryError::BadName(name.to_owned()))
    }
}

/// Numeric values of a record, by measure name; always finite.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "BTreeMap<String, f64>", into = "BTreeMap<String, f64>")]
pub struct Measures(BTreeMap<String, f64>);

impl Measures {
    /// Sets a measure.
    ///
    /// # Errors
    /// [`EntryError`] for a bad name or a non-finite value.
    pub fn insert(&mut self, name: &str, value: f64) -> Result<(), EntryError> {
        Self::check(name, &value)?;
        self.0.insert(name.to_owned(), value);
        Ok(())
    }

    fn check(name: &str, value: &f64) -> Result<(), EntryError> {
        check_name(name)?;
        if value.is_finite() {
            Ok(())
        } else {
            Err(EntryError::NotFinite {
                name: name.to_owned(),
                value: *value,
            })
        }
    }

    /// A measure's value, if the record has it.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.0.get(name).copied()
    }

    /// Removes a measure (a derived ratio that became undefined).
    pub fn remove(&mut self, name: &str) {
        self.0.remove(name);
    }

    /// All measures, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, f64)> {
        self.0.iter().map(|(k, v)| (k.as_str(), *v))
    }
}

/// Text values a record is grouped and filtered by, by dimension name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    try_from = "BTreeMap<String, String>",
    into = "BTreeMap<String, String>"
)]
pub struct Dimensions(BTreeMap<String, String>);

impl Dimensions {
    /// Sets a dimension.
    ///
    /// # Errors
    /// [`EntryError::BadName`] for a bad name.
    pub fn insert(&mut self, name: &str, value: String) -> Result<(), EntryError> {
        check_name(name)?;
        self.0.insert(name.to_owned(), value);
        Ok(())
    }

    fn check(name: &str, _: &str) -> Result<(), EntryError> {
        check_name(name)
    }

    /// A dimension's value, if the record has it.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// All dimensions, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// The record's other fields (neither a dimension nor a measure's source), by field name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(
    try_from = "BTreeMap<String, FieldValue>",
    into = "BTreeMap<String, FieldValue>"
)]
pub struct Attributes(BTreeMap<String, FieldValue>);

impl Attributes {
    /// Sets an attribute.
    ///
    /// # Errors
    /// [`EntryError::BadName`] for a bad name.
    pub fn insert(&mut self, name: &str, value: FieldValue) -> Result<(), EntryError> {
        check_name(name)?;
        self.0.insert(name.to_owned(), value);
        Ok(())
    }

    fn check(name: &str, _: &FieldValue) -> Result<(), EntryError> {
        check_name(name)
    }

    /// An attribute's value, if the record has it.
    pub fn get(&self, name: &str) -> Option<&FieldValue> {
        self.0.get(name)
    }

    /// All attributes, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &FieldValue)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The attributes as one plain JSON object (see [`FieldValue::to_json`]).
    pub fn to_json(&self) -> serde_json::Value {
        self.0
            .iter()
            .map(|(k, v)| (k.clone(), v.to_json()))
            .collect::<serde_json::Map<_, _>>()
            .into()
    }
}

/// Conversions between a validated name map and its plain `BTreeMap`: every entry is
/// checked as `insert` would (so stored data is checked like new data), and the map is
/// then kept as it is, without copying its keys.
macro_rules! map_conversions {
    ($map:ident, $value:ty) => {
        impl TryFrom<BTreeMap<String, $value>> for $map {
            type Error = EntryError;
            fn try_from(value: BTreeMap<String, $value>) -> Result<Self, Self::Error> {
                for (name, v) in &value {
                    Self::check(name, v)?;
                }
                Ok(Self(value))
            }
        }

        impl From<$map> for BTreeMap<String, $value> {
            fn from(value: $map) -> Self {
                value.0
            }
        }
    };
}

map_conversions!(Measures, f64);
map_conversions!(Dimensions, String);
map_conversions!(Attributes, FieldValue);

/// The state of one record of a dataset: what the latest-state table holds per key and
/// what every history entry records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The record's key.
    pub key: RecordKey,
    /// The record's version, when the contract has a version field.
    pub version: Option<Version>,
    /// Values to group and filter by.
    pub dimensions: Dimensions,
    /// Numeric values, derived ratios included (an undefined ratio is absent).
    pub measures: Measures,
    /// Every other mapped field.
    pub attributes: Attributes,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_refuse_nan_infinity_and_bad_names() {
        let mut m = Measures::default();
        assert!(m.insert("percent", 50.0).is_ok());
        assert!(matches!(
            m.insert("p", f64::NAN),
            Err(EntryError::NotFinite { .. })
        ));
        assert!(matches!(
            m.insert("p", f64::INFINITY),
            Err(EntryError::NotFinite { .. })
        ));
        assert!(matches!(m.insert("9p", 1.0), Err(EntryError::BadName(_))));
        assert!(matches!(m.insert("a-b", 1.0), Err(EntryError::BadName(_))));
        assert_eq!(m.get("percent"), Some(50.0));
    }

    #[test]
    fn measures_loaded_from_storage_are_checked_too() {
        let json = r#"{"ok": 1.0, "bad name": 2.0}"#;
        assert!(serde_json::from_str::<Measures>(json).is_err());
    }
}
