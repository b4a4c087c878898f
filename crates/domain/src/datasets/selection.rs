//! Which records a list keeps (issue 20, ADR 39): filters on dimensions, with any of
//! several values, and on `updated_since` go to the store, which has them indexed or
//! typed; filters on any other field the contract declares (or a ratio measure) are
//! checked here against each record's contents as the store's pages pass.

use serde_json::Value;

use super::DatasetError;
use crate::contract::Contract;
use crate::model::Record;
use crate::ports::RecordFilter;

/// A client's filter split into what the store applies and what is checked here.
pub(super) struct Selection<'c> {
    /// Dimensions and time, for the store.
    pub(super) store: RecordFilter,
    /// Other fields, each with the values it may have.
    fields: Vec<(String, Vec<String>)>,
    contract: &'c Contract,
}

impl<'c> Selection<'c> {
    /// Splits `filter`, whose names may be any field the contract declares, a
    /// dimension or a measure.
    ///
    /// # Errors
    /// `UnknownField` for any other name.
    pub(super) fn new(contract: &'c Contract, filter: &RecordFilter) -> Result<Self, DatasetError> {
        let dimensions = contract.dimensions();
        let mut store = RecordFilter {
            updated_since: filter.updated_since,
            ..RecordFilter::default()
        };
        let mut fields = Vec::new();
        for (name, values) in &filter.dimensions {
            if dimensions.contains(name) {
                store.dimensions.insert(name.clone(), values.clone());
            } else if contract.spec().fields.contains_key(name)
                || contract.measure_names().any(|m| m == name)
            {
                fields.push((name.clone(), values.clone()));
            } else {
                return Err(DatasetError::UnknownField {
                    name: name.clone(),
                    fields: names(contract),
                });
            }
        }
        Ok(Self {
            store,
            fields,
            contract,
        })
    }

    /// Whether some value asked for holds a NUL character, which no stored text holds.
    pub(super) fn matches_nothing(&self) -> bool {
        self.store
            .dimensions
            .values()
            .chain(self.fields.iter().map(|(_, v)| v))
            .flatten()
            .any(|v| v.contains('\0'))
    }

    /// Whether every filter is the store's.
    pub(super) fn is_stored(&self) -> bool {
        self.fields.is_empty()
    }

    /// Whether `record` has one of the asked values in each field filtered here.
    pub(super) fn keeps(&self, record: &Record) -> bool {
        if self.fields.is_empty() {
            return true;
        }
        let contents = self.contract.contents(record);
        self.fields.iter().all(|(name, values)| {
            contents
                .get(name)
                .is_some_and(|value| values.iter().any(|v| equal(value, v)))
        })
    }
}

/// Every name a record filter may use: the fields, then the ratio measures.
fn names(contract: &Contract) -> Vec<String> {
    let mut names: Vec<String> = contract.spec().fields.keys().cloned().collect();
    for measure in contract.measure_names() {
        if !names.iter().any(|n| n == measure) {
            names.push(measure.to_owned());
        }
    }
    names
}

/// Whether a field's value is the text a client asked for: text as is, a number by
/// value (`55` is `55.0`), a boolean as `true`/`false`, anything else as the JSON it
/// reads as.
fn equal(value: &Value, wanted: &str) -> bool {
    match value {
        Value::String(s) => s == wanted,
        Value::Number(n) => wanted
            .parse::<f64>()
            .ok()
            .zip(n.as_f64())
            .is_some_and(|(w, n)| w == n),
        Value::Bool(b) => wanted == if *b { "true" } else { "false" },
        Value::Null => false,
        other => serde_json::from_str::<Value>(wanted).is_ok_and(|w| w == *other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_compare_as_their_type_reads() {
        assert!(equal(&json!("002299"), "002299"));
        assert!(!equal(&json!("002299"), "2299"));
        assert!(equal(&json!(55.0), "55"));
        assert!(equal(&json!(55), "55.0"));
        assert!(!equal(&json!(55), "fifty-five"));
        assert!(equal(&json!(true), "true"));
        assert!(!equal(&Value::Null, "null"));
        assert!(equal(&json!({"a": 1}), r#"{ "a": 1 }"#));
        assert!(!equal(&json!({"a": 1}), "a"));
    }
}
