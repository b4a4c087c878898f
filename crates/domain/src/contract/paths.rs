//! Compilation of the document format and of field paths, per format.

use super::compile::{CompiledField, DocumentFormat, FieldPath};
use super::error::ContractIssue;
use super::spec::{ContractSpec, FormatName};
use crate::model::record::check_name;

pub(super) fn compile_format(
    spec: &ContractSpec,
    issues: &mut Vec<ContractIssue>,
) -> DocumentFormat {
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
            members: None,
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

pub(super) fn compile_fields(
    spec: &ContractSpec,
    issues: &mut Vec<ContractIssue>,
) -> Vec<CompiledField> {
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
