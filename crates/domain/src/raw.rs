//! Raw records: what a decoder hands to the domain before any contract is applied.
//!
//! A raw record is an untyped tree of the record's content, shaped the same way for
//! every format so that one path syntax can address it:
//! - JSON and NDJSON: the record object as received;
//! - CSV: one text entry per column, keyed by the header;
//! - XML: the record element as an object whose attributes are keys starting with `@`,
//!   whose child elements are keys by tag name (repeated tags become an array, a child
//!   holding only text becomes that text) and whose own text is under `#text`.

use std::fmt;

use serde_json::{Map, Value};

use crate::model::Location;

/// One decoded record, untyped, with its location in the document.
#[derive(Debug, Clone, PartialEq)]
pub struct RawRecord {
    fields: Map<String, Value>,
    location: Location,
}

impl RawRecord {
    /// Wraps a decoded record.
    pub fn new(fields: Map<String, Value>, location: Location) -> Self {
        Self { fields, location }
    }

    /// The record's content.
    pub fn fields(&self) -> &Map<String, Value> {
        &self.fields
    }

    /// Where the record is in its document.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The value at a path of segments (object keys, or array indices for arrays).
    /// An XML element that has attributes as well as text answers with its text when a
    /// path ends on it.
    pub fn lookup<S: AsRef<str>>(&self, path: &[S]) -> Option<&Value> {
        let (first, rest) = path.split_first()?;
        let mut current = self.fields.get(first.as_ref())?;
        for segment in rest {
            current = match current {
                Value::Object(map) => map.get(segment.as_ref())?,
                Value::Array(items) => items.get(segment.as_ref().parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        match current {
            Value::Object(map) if map.contains_key("#text") => map.get("#text"),
            other => Some(other),
        }
    }
}

/// A record, or the whole rest of a document, that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// Where decoding failed.
    pub location: Location,
    /// What was wrong, for a person.
    pub message: String,
    /// `true` when decoding cannot go on after this error (the document's structure is
    /// broken); `false` when only this record is lost and the next one follows.
    pub is_fatal: bool,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

impl std::error::Error for DecodeError {}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn raw(value: Value) -> RawRecord {
        let Value::Object(map) = value else {
            panic!("not an object")
        };
        RawRecord::new(map, Location::default())
    }

    #[test]
    fn lookup_walks_objects_arrays_and_xml_text() {
        let r = raw(json!({
            "summary-marks": {"@available": "20"},
            "answer": [{"@q": "0", "#text": "D"}, {"@q": "1", "#text": "A"}],
            "data": {"mintId": "x"}
        }));
        assert_eq!(
            r.lookup(&["summary-marks", "@available"]),
            Some(&json!("20"))
        );
        assert_eq!(r.lookup(&["answer", "1"]), Some(&json!("A")));
        assert_eq!(r.lookup(&["data", "mintId"]), Some(&json!("x")));
        assert_eq!(r.lookup(&["data", "missing"]), None);
        assert_eq!(r.lookup::<&str>(&[]), None);
    }
}
