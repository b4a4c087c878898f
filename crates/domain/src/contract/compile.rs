//! Validation and compilation of a [`ContractSpec`] into a [`Contract`].

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::error::{ContractError, ContractIssue};
use super::spec::{
    CallbackSpec, ContractSpec, DelayUnit, FieldType, FormatName, InvalidPolicy, MeasureSpec,
    MergePolicy,
};
use crate::model::record::check_name;

/// A compiled path inside a raw record: its segments (see [`crate::raw::RawRecord::lookup`]).
pub type FieldPath = Vec<String>;

/// What a decoder needs to know about a document, compiled from the contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocumentFormat {
    /// XML: `records` is the element path of the record elements, root first.
    Xml {
        /// Element names from the root to the record element.
        records: Vec<String>,
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
                let field = match e.path().to_string() {
                    p if p == "." => "(contract)".to_owned(),
                    p => p,
                };
                ContractError::Invalid(vec![ContractIssue::new(field, strip_position(inner))])
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
        let format = compile_format(&spec, &mut issues);
        let fields = compile_fields(&spec, &mut issues);
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

fn strip_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.find(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

fn compile_format(spec: &ContractSpec, issues: &mut Vec<ContractIssue>) -> DocumentFormat {
    if spec.csv.is_some() && spec.format != FormatName::Csv {
        issues.push(ContractIssue::new(
            "csv",
            "only allowed with \"format\": \"csv\"",
        ));
    }
    let records = spec.records.as_deref();
    match spec.format {
        FormatName::Xml => DocumentFormat::Xml {
            records: xml_records_path(records, issues),
        },
        FormatName::Json => DocumentFormat::Json {
            records: records
                .map(|p| split_path(p, '.', "records", issues))
                .unwrap_or_default(),
        },
        FormatName::Csv | FormatName::Ndjson => {
            if records.is_some() {
                issues.push(ContractIssue::new(
                    "records",
                    "not used by this format; remove it",
                ));
            }
            match spec.format {
                FormatName::Csv => csv_dialect(spec, issues),
                _ => DocumentFormat::Ndjson,
            }
        }
    }
}

fn xml_records_path(records: Option<&str>, issues: &mut Vec<ContractIssue>) -> Vec<String> {
    let Some(path) = records else {
        issues.push(ContractIssue::new(
            "records",
            "required for XML: the element path of the records, e.g. \"root/record\"",
        ));
        return Vec::new();
    };
    let segments = split_path(path, '/', "records", issues);
    if segments.iter().any(|s| s.starts_with('@')) {
        issues.push(ContractIssue::new(
            "records",
            "must name elements, not attributes",
        ));
    }
    segments
}

fn csv_dialect(spec: &ContractSpec, issues: &mut Vec<ContractIssue>) -> DocumentFormat {
    let one_char =
        |value: &Option<String>, default: u8, field: &str, issues: &mut Vec<_>| match value
            .as_deref()
            .map(str::as_bytes)
        {
            None => default,
            Some([c]) if c.is_ascii() && *c != b'\n' && *c != b'\r' => *c,
            Some(_) => {
                issues.push(ContractIssue::new(field, "must be one ASCII character"));
                default
            }
        };
    let csv = spec.csv.clone().unwrap_or(super::CsvSpec {
        delimiter: None,
        quote: None,
    });
    DocumentFormat::Csv {
        delimiter: one_char(&csv.delimiter, b',', "csv.delimiter", issues),
        quote: one_char(&csv.quote, b'"', "csv.quote", issues),
    }
}

fn split_path(path: &str, sep: char, field: &str, issues: &mut Vec<ContractIssue>) -> Vec<String> {
    let segments: Vec<String> = path.split(sep).map(str::to_owned).collect();
    if segments
        .iter()
        .any(|s| s.trim().is_empty() || s.trim() != s)
    {
        issues.push(ContractIssue::new(
            field,
            format!("path {path:?} has an empty segment or stray spaces"),
        ));
    }
    segments
}

fn compile_fields(spec: &ContractSpec, issues: &mut Vec<ContractIssue>) -> Vec<CompiledField> {
    if spec.fields.is_empty() {
        issues.push(ContractIssue::new(
            "fields",
            "a contract needs at least one field",
        ));
    }
    spec.fields
        .iter()
        .map(|(name, field)| {
            let at = format!("fields.{name}");
            if let Err(e) = check_name(name) {
                issues.push(ContractIssue::new(&at, e.to_string()));
            }
            let raw = field.path.clone().unwrap_or_else(|| name.clone());
            CompiledField {
                name: name.clone(),
                path: field_path(spec.format, &raw, &format!("{at}.path"), issues),
                kind: field.kind,
                required: field.required,
            }
        })
        .collect()
}

fn field_path(
    format: FormatName,
    raw: &str,
    at: &str,
    issues: &mut Vec<ContractIssue>,
) -> FieldPath {
    match format {
        FormatName::Csv if raw.is_empty() => {
            issues.push(ContractIssue::new(at, "a column name cannot be empty"));
            vec![String::new()]
        }
        FormatName::Csv => vec![raw.to_owned()],
        FormatName::Json | FormatName::Ndjson => split_path(raw, '.', at, issues),
        FormatName::Xml => {
            let segments = split_path(raw, '/', at, issues);
            let last = segments.len().saturating_sub(1);
            if segments.iter().take(last).any(|s| s.starts_with('@')) {
                issues.push(ContractIssue::new(
                    at,
                    "an attribute (@name) can only end a path",
                ));
            }
            segments
        }
    }
}

type Fields<'a> = BTreeMap<&'a str, &'a CompiledField>;

fn lookup<'a>(
    fields: &Fields<'a>,
    name: &str,
    at: &str,
    issues: &mut Vec<ContractIssue>,
) -> Option<&'a CompiledField> {
    let found = fields.get(name).copied();
    if found.is_none() {
        issues.push(ContractIssue::new(
            at,
            format!("{name:?} is not a field of this contract"),
        ));
    }
    found
}

fn check_unique(names: &[String], at: &str, issues: &mut Vec<ContractIssue>) {
    let mut seen = BTreeSet::new();
    for name in names {
        if !seen.insert(name) {
            issues.push(ContractIssue::new(at, format!("{name:?} is listed twice")));
        }
    }
}

fn check_key(spec: &ContractSpec, fields: &Fields<'_>, issues: &mut Vec<ContractIssue>) {
    if spec.key.is_empty() {
        issues.push(ContractIssue::new(
            "key",
            "at least one key field is required",
        ));
    }
    check_unique(&spec.key, "key", issues);
    for (i, name) in spec.key.iter().enumerate() {
        let at = format!("key[{i}]");
        let Some(field) = lookup(fields, name, &at, issues) else {
            continue;
        };
        if !field.required {
            issues.push(ContractIssue::new(
                &at,
                format!("key field {name:?} must be required"),
            ));
        }
        if !matches!(field.kind, FieldType::String | FieldType::Integer) {
            issues.push(ContractIssue::new(
                &at,
                format!("key field {name:?} must be a string or an integer"),
            ));
        }
    }
}

fn check_version(spec: &ContractSpec, fields: &Fields<'_>, issues: &mut Vec<ContractIssue>) {
    match &spec.version {
        None if spec.merge == MergePolicy::HighestVersion => issues.push(ContractIssue::new(
            "version",
            "required by \"merge\": \"highest_version\"",
        )),
        None => {}
        Some(name) => {
            let Some(field) = lookup(fields, name, "version", issues) else {
                return;
            };
            if !field.required {
                issues.push(ContractIssue::new(
                    "version",
                    format!("version field {name:?} must be required"),
                ));
            }
            if !matches!(field.kind, FieldType::Integer | FieldType::Timestamp) {
                issues.push(ContractIssue::new(
                    "version",
                    format!("version field {name:?} must be an integer or a timestamp"),
                ));
            }
        }
    }
}

fn check_dimensions(spec: &ContractSpec, fields: &Fields<'_>, issues: &mut Vec<ContractIssue>) {
    check_unique(&spec.dimensions, "dimensions", issues);
    for (i, name) in spec.dimensions.iter().enumerate() {
        let at = format!("dimensions[{i}]");
        let Some(field) = lookup(fields, name, &at, issues) else {
            continue;
        };
        if matches!(field.kind, FieldType::Json | FieldType::Number) {
            issues.push(ContractIssue::new(
                &at,
                format!("dimension {name:?} must be a string, integer, boolean or timestamp"),
            ));
        }
    }
}

fn compile_measures(
    spec: &ContractSpec,
    fields: &Fields<'_>,
    issues: &mut Vec<ContractIssue>,
) -> Vec<(String, MeasureSource)> {
    let field_backed: BTreeSet<&str> = spec
        .measures
        .iter()
        .filter(|(_, m)| matches!(m, MeasureSpec::Field(_)))
        .map(|(name, _)| name.as_str())
        .collect();
    spec.measures
        .iter()
        .map(|(name, measure)| {
            let at = format!("measures.{name}");
            if let Err(e) = check_name(name) {
                issues.push(ContractIssue::new(&at, e.to_string()));
            }
            let source = match measure {
                MeasureSpec::Field(field) => field_measure(name, field, fields, &at, issues),
                MeasureSpec::Ratio { ratio, scale } => {
                    ratio_measure(ratio, *scale, &field_backed, &at, issues)
                }
            };
            (name.clone(), source)
        })
        .collect()
}

fn field_measure(
    name: &str,
    field: &str,
    fields: &Fields<'_>,
    at: &str,
    issues: &mut Vec<ContractIssue>,
) -> MeasureSource {
    let found = lookup(fields, field, at, issues);
    if found.is_some_and(|f| !matches!(f.kind, FieldType::Integer | FieldType::Number)) {
        issues.push(ContractIssue::new(
            at,
            format!("field {field:?} must be an integer or a number"),
        ));
    }
    if name != field && fields.contains_key(name) {
        issues.push(ContractIssue::new(
            at,
            format!("measure {name:?} would hide the field of the same name"),
        ));
    }
    MeasureSource::Field(field.to_owned())
}

fn ratio_measure(
    ratio: &[String; 2],
    scale: Option<f64>,
    field_backed: &BTreeSet<&str>,
    at: &str,
    issues: &mut Vec<ContractIssue>,
) -> MeasureSource {
    for (i, operand) in ratio.iter().enumerate() {
        if !field_backed.contains(operand.as_str()) {
            issues.push(ContractIssue::new(
                format!("{at}.ratio[{i}]"),
                format!("{operand:?} is not a field-backed measure of this contract"),
            ));
        }
    }
    let scale = scale.unwrap_or(1.0);
    if !scale.is_finite() || scale == 0.0 {
        issues.push(ContractIssue::new(
            format!("{at}.scale"),
            "must be a finite, non-zero number",
        ));
    }
    MeasureSource::Ratio {
        numerator: ratio[0].clone(),
        denominator: ratio[1].clone(),
        scale,
    }
}

fn check_identity(spec: &ContractSpec, fields: &Fields<'_>, issues: &mut Vec<ContractIssue>) {
    let Some(identity) = &spec.identity else {
        return;
    };
    for (list, part) in [(&identity.key, "key"), (&identity.fields, "fields")] {
        let at = format!("identity.{part}");
        if list.is_empty() {
            issues.push(ContractIssue::new(&at, "must list at least one field"));
        }
        check_unique(list, &at, issues);
        for (i, name) in list.iter().enumerate() {
            let at = format!("{at}[{i}]");
            if lookup(fields, name, &at, issues).is_none() {
                continue;
            }
            if part == "fields" && identity.key.contains(name) {
                issues.push(ContractIssue::new(
                    &at,
                    format!("{name:?} is already in identity.key"),
                ));
            }
        }
    }
}

fn compile_callback(
    spec: &ContractSpec,
    fields: &Fields<'_>,
    issues: &mut Vec<ContractIssue>,
) -> Option<CallbackRule> {
    match spec.callback.as_ref()? {
        CallbackSpec::Delay { delay, unit } => {
            let field = lookup(fields, delay, "callback.delay", issues)?;
            if !matches!(field.kind, FieldType::Integer | FieldType::Number) {
                issues.push(ContractIssue::new(
                    "callback.delay",
                    format!("field {delay:?} must be an integer or a number"),
                ));
            }
            let millis_per_unit = match unit {
                DelayUnit::Ms => 1,
                DelayUnit::S => 1000,
            };
            Some(CallbackRule::Field {
                field: delay.clone(),
                millis_per_unit,
            })
        }
        CallbackSpec::After { after } => {
            match parse_duration(after) {
                Some(d) => Some(CallbackRule::After(d)),
                None => {
                    issues.push(ContractIssue::new("callback.after", format!("{after:?} is not a duration such as \"500ms\", \"30s\", \"5m\" or \"1h\"")));
                    None
                }
            }
        }
    }
}

/// Parses `"500ms"`, `"30s"`, `"5m"`, `"1h"`.
pub(crate) fn parse_duration(text: &str) -> Option<Duration> {
    let digits = text.find(|c: char| !c.is_ascii_digit())?;
    let value: u64 = text[..digits].parse().ok()?;
    let millis = match &text[digits..] {
        "ms" => value,
        "s" => value.checked_mul(1_000)?,
        "m" => value.checked_mul(60_000)?,
        "h" => value.checked_mul(3_600_000)?,
        _ => return None,
    };
    Some(Duration::from_millis(millis))
}
