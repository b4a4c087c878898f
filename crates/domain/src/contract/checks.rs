//! Checks of the key, version, dimensions, measures, identity and callback against the
//! contract's fields.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::compile::{CallbackRule, CompiledField, MeasureSource};
use super::error::ContractIssue;
use super::spec::{
    AfterSpec, CallbackSpec, ContractSpec, DelaySpec, DelayUnit, FieldType, MeasureSpec,
    MergePolicy, RatioSpec,
};
use crate::model::record::check_name;

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

pub(super) fn check_key(spec: &ContractSpec, fields: &Fields<'_>, issues: &mut Vec<ContractIssue>) {
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

pub(super) fn check_version(
    spec: &ContractSpec,
    fields: &Fields<'_>,
    issues: &mut Vec<ContractIssue>,
) {
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

pub(super) fn check_dimensions(
    spec: &ContractSpec,
    fields: &Fields<'_>,
    issues: &mut Vec<ContractIssue>,
) {
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
        // max_measures takes each measure's maximum but the dimensions of one arrival:
        // a field that is both would disagree with itself.
        let is_measure = spec
            .measures
            .values()
            .any(|m| matches!(m, MeasureSpec::Field(f) if f == name));
        if spec.merge == MergePolicy::MaxMeasures && is_measure {
            issues.push(ContractIssue::new(
                &at,
                format!("with \"merge\": \"max_measures\", {name:?} cannot be both a dimension and a measure"),
            ));
        }
    }
}

pub(super) fn compile_measures(
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
                MeasureSpec::Ratio(RatioSpec { ratio, scale }) => {
                    if fields.contains_key(name.as_str()) {
                        issues.push(ContractIssue::new(
                            &at,
                            format!("measure {name:?} would hide the field of the same name"),
                        ));
                    }
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

pub(super) fn check_identity(
    spec: &ContractSpec,
    fields: &Fields<'_>,
    issues: &mut Vec<ContractIssue>,
) {
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

pub(super) fn compile_callback(
    spec: &ContractSpec,
    fields: &Fields<'_>,
    issues: &mut Vec<ContractIssue>,
) -> Option<CallbackRule> {
    match spec.callback.as_ref()? {
        CallbackSpec::Delay(DelaySpec { delay, unit }) => {
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
        CallbackSpec::After(AfterSpec { after }) => {
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
