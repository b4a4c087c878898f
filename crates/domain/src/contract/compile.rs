//! Validation and compilation of a [`ContractSpec`] into a [`Contract`].

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::checks::{
    check_dimensions, check_identity, check_key, check_version, compile_callback, compile_measures,
};
use super::error::{ContractError, ContractIssue};
use super::paths::{compile_fields, compile_format};
use super::spec::{ContractSpec, FieldType, InvalidPolicy, MergePolicy};

/// A compiled path inside a raw record: its segments (see [`crate::raw::RawRecord::lookup`]).
pub type FieldPath = Vec<String>;

/// What a decoder needs to know about a document, compiled from the contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocumentFormat {
    /// XML: `records` is the element path of the record elements, root first.
    Xml {
        /// Element names from the root to the record element.
        records: Vec<String>,
        /// The record element's children and attributes (`@name`) the contract reads;
        /// the others are parsed but not kept. `None`: every one is kept.
        members: Option<BTreeSet<String>>,
    },
    /// CSV with a header row.
    Csv {
        /// Field delimiter.
        delimiter: u8,
        /// Quote character.
        quote: u8,
    },
    /// JSON: an array at `records` (empty: the document is the array).
    Json {
        /// Object keys from the top level to the array.
        records: Vec<String>,
    },
    /// One JSON object per line.
    Ndjson,
}

/// A field ready for mapping.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CompiledField {
    pub name: String,
    pub path: FieldPath,
    pub kind: FieldType,
    pub required: bool,
}

/// How a measure's value is obtained.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum MeasureSource {
    Field(String),
    Ratio {
        numerator: String,
        denominator: String,
        scale: f64,
    },
}

/// When callbacks fire, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallbackRule {
    /// After the delay held by a field, in the given unit.
    Field {
        /// The field holding the delay.
        field: String,
        /// Milliseconds per unit of the field.
        millis_per_unit: u64,
    },
    /// After a fixed delay.
    After(Duration),
}

/// A validated, compiled contract. Immutable; built by [`Contract::parse`] or
/// [`Contract::compile`].
#[derive(Debug, Clone, PartialEq)]
pub struct Contract {
    spec: ContractSpec,
    format: DocumentFormat,
    pub(crate) fields: Vec<CompiledField>,
    pub(crate) measures: Vec<(String, MeasureSource)>,
    callback: Option<CallbackRule>,
}

impl Contract {
    /// Parses and compiles a contract from its JSON text.
    ///
    /// # Errors
    /// [`ContractError::Syntax`] for text that is not JSON; [`ContractError::Invalid`]
    /// listing every problem, each naming its field, otherwise.
    pub fn parse(json: &str) -> Result<Self, ContractError> {
        let mut de = serde_json::Deserializer::from_str(json);
        let spec: ContractSpec = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let inner = e.inner();
            if inner.is_syntax() || inner.is_eof() {
                ContractError::Syntax {
                    line: inner.line(),
                    column: inner.column(),
                    message: inner.to_string(),
                }
            } else {
                // serde stops at the first mistake: look at each part on its own, so
                // that every mistake is listed at once.
                let mut issues = serde_json::from_str::<serde_json::Value>(json)
                    .map(|value| type_issues(&value))
                    .unwrap_or_default();
                if issues.is_empty() {
                    let message = strip_position(inner);
                    let field = field_at_fault(&e.path().to_string(), &message);
                    issues.push(ContractIssue::new(field, message));
                }
                ContractError::Invalid(issues)
            }
        })?;
        de.end().map_err(|e| ContractError::Syntax {
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
        Self::compile(spec)
    }

    /// Validates and compiles a contract.
    ///
    /// # Errors
    /// [`ContractError::Invalid`] listing every problem found.
    pub fn compile(spec: ContractSpec) -> Result<Self, ContractError> {
        let mut issues = Vec::new();
        // SQL text cannot hold NUL, and nothing a contract names needs one.
        if let Ok(json) = serde_json::to_value(&spec) {
            find_nul(&json, "", &mut issues);
        }
        let mut format = compile_format(&spec, &mut issues);
        let fields = compile_fields(&spec, &mut issues);
        // Mapping reads a record only at its fields' paths: an XML decoder need not
        // build the rest (a Markr result's answers are most of its bytes).
        if let DocumentFormat::Xml { members, .. } = &mut format {
            *members = Some(
                fields
                    .iter()
                    .filter_map(|f| f.path.first().cloned())
                    .collect(),
            );
        }
        let by_name: BTreeMap<&str, &CompiledField> =
            fields.iter().map(|f| (f.name.as_str(), f)).collect();
        check_key(&spec, &by_name, &mut issues);
        check_version(&spec, &by_name, &mut issues);
        check_dimensions(&spec, &by_name, &mut issues);
        let measures = compile_measures(&spec, &by_name, &mut issues);
        check_identity(&spec, &by_name, &mut issues);
        let callback = compile_callback(&spec, &by_name, &mut issues);
        if !issues.is_empty() {
            return Err(ContractError::Invalid(issues));
        }
        Ok(Self {
            spec,
            format,
            fields,
            measures,
            callback,
        })
    }

    /// The contract as written.
    pub fn spec(&self) -> &ContractSpec {
        &self.spec
    }

    /// What decoders need to know.
    pub fn format(&self) -> &DocumentFormat {
        &self.format
    }

    /// For CSV, the columns a header must name: each required field's column. Empty
    /// for other formats.
    pub fn required_columns(&self) -> Vec<&str> {
        if !matches!(self.format, DocumentFormat::Csv { .. }) {
            return Vec::new();
        }
        self.spec
            .fields
            .iter()
            .filter(|(_, f)| f.required)
            .map(|(name, f)| f.path.as_deref().unwrap_or(name))
            .collect()
    }

    /// The merge policy.
    pub fn merge_policy(&self) -> MergePolicy {
        self.spec.merge
    }

    /// The invalid-input policy.
    pub fn on_invalid(&self) -> InvalidPolicy {
        self.spec.on_invalid
    }

    /// The key's field names, in order.
    pub fn key_fields(&self) -> &[String] {
        &self.spec.key
    }

    /// The dimension names.
    pub fn dimensions(&self) -> &[String] {
        &self.spec.dimensions
    }

    /// The measure names, derived ones included.
    pub fn measure_names(&self) -> impl Iterator<Item = &str> {
        self.measures.iter().map(|(name, _)| name.as_str())
    }

    /// When callbacks fire, if the contract has them.
    pub fn callback(&self) -> Option<&CallbackRule> {
        self.callback.as_ref()
    }

    /// The contract as JSON text (the form it is stored in).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.spec).unwrap_or(serde_json::Value::Null)
    }
}

/// Reports every key or text value holding a NUL character, at its path.
fn find_nul(value: &serde_json::Value, path: &str, issues: &mut Vec<ContractIssue>) {
    const MESSAGE: &str = "text may not contain a NUL character (U+0000)";
    let at = |key: &str| match path {
        "" => key.to_owned(),
        _ => format!("{path}.{key}"),
    };
    match value {
        serde_json::Value::String(s) if s.contains('\0') => {
            issues.push(ContractIssue::new(
                if path.is_empty() { "(contract)" } else { path },
                MESSAGE,
            ));
        }
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                find_nul(item, &format!("{path}[{i}]"), issues);
            }
        }
        serde_json::Value::Object(map) => {
            for (key, item) in map {
                if key.contains('\0') {
                    issues.push(ContractIssue::new(at(key), MESSAGE));
                } else {
                    find_nul(item, &at(key), issues);
                }
            }
        }
        _ => {}
    }
}

/// The field a shape error is about: its path, completed by the missing field's name
/// when serde reports one ("missing field `on_invalid`").
/// Every part of a contract that does not read as its type, each with its field: the
/// top-level keys one by one, and each field and measure on its own.
fn type_issues(value: &serde_json::Value) -> Vec<ContractIssue> {
    use super::spec::{
        CallbackSpec, CsvSpec, FieldSpec, FormatName, IdentitySpec, InvalidPolicy, MeasureSpec,
        MergePolicy,
    };
    fn check<T: serde::de::DeserializeOwned>(
        prefix: &str,
        value: &serde_json::Value,
        issues: &mut Vec<ContractIssue>,
    ) {
        if let Err(e) = serde_path_to_error::deserialize::<_, T>(value) {
            let message = strip_position(e.inner());
            let inner = e.path().to_string();
            let path = match inner.as_str() {
                "." => prefix.to_owned(),
                rest => format!("{prefix}.{}", rest.trim_start_matches('.')),
            };
            issues.push(ContractIssue::new(field_at_fault(&path, &message), message));
        }
    }
    fn each<T: serde::de::DeserializeOwned>(
        prefix: &str,
        value: &serde_json::Value,
        issues: &mut Vec<ContractIssue>,
    ) {
        match value.as_object() {
            Some(entries) => {
                for (name, entry) in entries {
                    check::<T>(&format!("{prefix}.{name}"), entry, issues);
                }
            }
            None => issues.push(ContractIssue::new(prefix, "must be an object")),
        }
    }
    let mut issues = Vec::new();
    let Some(object) = value.as_object() else {
        issues.push(ContractIssue::new("(contract)", "must be a JSON object"));
        return issues;
    };
    for required in ["format", "fields", "key", "merge", "on_invalid"] {
        if !object.contains_key(required) {
            issues.push(ContractIssue::new(required, "required"));
        }
    }
    for (key, value) in object {
        match key.as_str() {
            "description" | "records" | "version" => {
                check::<Option<String>>(key, value, &mut issues)
            }
            "format" => check::<FormatName>(key, value, &mut issues),
            "csv" => check::<CsvSpec>(key, value, &mut issues),
            "fields" => each::<FieldSpec>(key, value, &mut issues),
            "key" | "dimensions" => check::<Vec<String>>(key, value, &mut issues),
            "measures" => each::<MeasureSpec>(key, value, &mut issues),
            "merge" => check::<MergePolicy>(key, value, &mut issues),
            "on_invalid" => check::<InvalidPolicy>(key, value, &mut issues),
            "identity" => check::<IdentitySpec>(key, value, &mut issues),
            "callback" => check::<CallbackSpec>(key, value, &mut issues),
            other => issues.push(ContractIssue::new(
                other,
                "unknown field: a contract has format, fields, key, merge, on_invalid and \
                 optionally description, records, csv, version, dimensions, measures, \
                 identity, callback",
            )),
        }
    }
    issues
}

fn field_at_fault(path: &str, message: &str) -> String {
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next());
    match (path, missing) {
        (".", Some(name)) => name.to_owned(),
        (".", None) => "(contract)".to_owned(),
        (path, Some(name)) => format!("{path}.{name}"),
        (path, None) => path.to_owned(),
    }
}

fn strip_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.find(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}
