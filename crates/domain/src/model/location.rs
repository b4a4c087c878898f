use std::fmt;

use serde::{Deserialize, Serialize};

/// Where in a document a record (or an error) is: whichever of these the format can
/// tell. `record` is the 1-based position of the record among the document's records;
/// `line`/`column` are 1-based text positions; `row` is the CSV row number counting the
/// header as row 1; `path` is an element path such as `mcq-test-results/mcq-test-result[3]`
/// (XPath: the third record, counting from 1) or `$.items[2]` (JSONPath: the third,
/// counting from 0).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    /// 1-based position of the record among the document's records.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub record: Option<u64>,
    /// 1-based line of the record's start.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub line: Option<u64>,
    /// 1-based column of the record's start.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub column: Option<u64>,
    /// CSV row number (the header is row 1).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub row: Option<u64>,
    /// Element path of the record within the document.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub path: Option<String>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(r) = self.record {
            parts.push(format!("record {r}"));
        }
        if let Some(r) = self.row {
            parts.push(format!("row {r}"));
        }
        match (self.line, self.column) {
            (Some(l), Some(c)) => parts.push(format!("line {l}, column {c}")),
            (Some(l), None) => parts.push(format!("line {l}")),
            _ => {}
        }
        if let Some(p) = &self.path {
            parts.push(format!("at {p}"));
        }
        if parts.is_empty() {
            f.write_str("document")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_every_known_part() {
        let loc = Location {
            record: Some(3),
            line: Some(12),
            column: Some(2),
            path: Some("a/b[3]".into()),
            ..Location::default()
        };
        assert_eq!(loc.to_string(), "record 3, line 12, column 2, at a/b[3]");
        assert_eq!(Location::default().to_string(), "document");
    }
}
