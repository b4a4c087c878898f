//! Coercion of raw values to field types: feeds send numbers as text, booleans as
//! `yes`, and timestamps in many shapes.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde_json::Value;

use crate::contract::FieldType;
use crate::model::FieldValue;

/// Coerces a raw value. `Ok(None)` means absent (null, or empty text).
pub(super) fn coerce(value: &Value, kind: FieldType) -> Result<Option<FieldValue>, String> {
    if let Value::String(s) = value {
        let s = s.trim();
        if s.is_empty() {
            return Ok(None);
        }
        if s.contains('\0') {
            // No SQL text type stores U+0000; refusing it here reports the record
            // instead of failing the whole import in the store.
            return Err("contains a NUL character (U+0000)".into());
        }
        return from_text(s, kind).map(Some);
    }
    match (kind, value) {
        (_, Value::Null) => Ok(None),
        (FieldType::Json, v) => Ok(Some(FieldValue::Json(v.clone()))),
        (FieldType::String, Value::Number(n)) => Ok(Some(FieldValue::Text(n.to_string()))),
        (FieldType::String, Value::Bool(b)) => Ok(Some(FieldValue::Text(b.to_string()))),
        (FieldType::Integer, Value::Number(n)) => integer(n.as_i64(), n.as_f64()).map(Some),
        (FieldType::Number, Value::Number(n)) => number(n.as_f64()).map(Some),
        (FieldType::Boolean, Value::Bool(b)) => Ok(Some(FieldValue::Boolean(*b))),
        (FieldType::Boolean, Value::Number(n)) => match n.as_i64() {
            Some(0) => Ok(Some(FieldValue::Boolean(false))),
            Some(1) => Ok(Some(FieldValue::Boolean(true))),
            _ => Err(format!("{n} is not a boolean")),
        },
        (kind, v) => Err(format!("expected {}, found {}", describe(kind), shape(v))),
    }
}

fn from_text(s: &str, kind: FieldType) -> Result<FieldValue, String> {
    match kind {
        FieldType::String => Ok(FieldValue::Text(s.to_owned())),
        FieldType::Json => Ok(FieldValue::Json(Value::String(s.to_owned()))),
        FieldType::Integer => match s.parse::<i64>() {
            Ok(i) => Ok(FieldValue::Integer(i)),
            Err(_) => {
                integer(None, s.parse::<f64>().ok()).map_err(|_| format!("{s:?} is not an integer"))
            }
        },
        FieldType::Number => {
            number(s.parse::<f64>().ok()).map_err(|_| format!("{s:?} is not a number"))
        }
        FieldType::Boolean => match s.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "y" => Ok(FieldValue::Boolean(true)),
            "false" | "0" | "no" | "n" => Ok(FieldValue::Boolean(false)),
            _ => Err(format!("{s:?} is not a boolean")),
        },
        FieldType::Timestamp => parse_timestamp(s)
            .map(FieldValue::Timestamp)
            .ok_or_else(|| {
                format!("{s:?} is not a timestamp (use RFC 3339, e.g. 2017-12-04T12:12:10+11:00)")
            }),
    }
}

fn integer(exact: Option<i64>, float: Option<f64>) -> Result<FieldValue, String> {
    if let Some(i) = exact {
        return Ok(FieldValue::Integer(i));
    }
    match float {
        Some(f) if f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15 => {
            Ok(FieldValue::Integer(f as i64))
        }
        Some(f) => Err(format!("{f} is not an integer")),
        None => Err("not an integer".to_owned()),
    }
}

fn number(value: Option<f64>) -> Result<FieldValue, String> {
    match value {
        Some(f) if f.is_finite() => Ok(FieldValue::Number(f)),
        Some(f) => Err(format!("{f} is not a finite number")),
        None => Err("not a number".to_owned()),
    }
}

fn describe(kind: FieldType) -> &'static str {
    match kind {
        FieldType::String => "text",
        FieldType::Integer => "an integer",
        FieldType::Number => "a number",
        FieldType::Boolean => "a boolean",
        FieldType::Timestamp => "a timestamp",
        FieldType::Json => "a JSON value",
    }
}

fn shape(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

const WITH_OFFSET: &[&str] = &[
    "%Y-%m-%d %H:%M:%S%.f%:z",
    "%Y-%m-%d %H:%M:%S%.f%z",
    "%Y-%m-%dT%H:%M:%S%.f%z",
    "%Y-%m-%d %H:%M:%S%.f %z",
];

const NAIVE: &[&str] = &[
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
    "%Y/%m/%d %H:%M:%S%.f",
    "%Y/%m/%d %H:%M",
];

/// Parses a timestamp in RFC 3339, RFC 2822, ISO 8601 with a space or without a colon in
/// the offset, or without an offset (taken as UTC), or a plain date (midnight UTC).
pub fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    let with_offset = DateTime::parse_from_rfc3339(s)
        .or_else(|_| DateTime::parse_from_rfc2822(s))
        .ok()
        .or_else(|| {
            WITH_OFFSET
                .iter()
                .find_map(|f| DateTime::parse_from_str(s, f).ok())
        });
    if let Some(t) = with_offset {
        return Some(t.with_timezone(&Utc));
    }
    let naive = NAIVE
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
        .or_else(|| {
            ["%Y-%m-%d", "%Y/%m/%d"]
                .iter()
                .find_map(|f| NaiveDate::parse_from_str(s, f).ok())
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })?;
    Some(naive.and_utc())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ok(v: Value, kind: FieldType) -> Option<FieldValue> {
        coerce(&v, kind).unwrap()
    }

    #[test]
    fn text_with_a_nul_character_is_refused() {
        let refused = coerce(&json!("ab\u{0}c"), FieldType::String);
        assert_eq!(refused, Err("contains a NUL character (U+0000)".into()));
        assert_eq!(
            ok(json!("abc"), FieldType::String),
            Some(FieldValue::Text("abc".into()))
        );
    }

    #[test]
    fn numbers_come_from_text_and_numbers() {
        assert_eq!(
            ok(json!("12.5"), FieldType::Number),
            Some(FieldValue::Number(12.5))
        );
        assert_eq!(
            ok(json!(" 20 "), FieldType::Integer),
            Some(FieldValue::Integer(20))
        );
        assert_eq!(
            ok(json!("20.0"), FieldType::Integer),
            Some(FieldValue::Integer(20))
        );
        assert_eq!(
            ok(json!(7), FieldType::Number),
            Some(FieldValue::Number(7.0))
        );
        assert!(coerce(&json!("twenty"), FieldType::Number).is_err());
        assert!(coerce(&json!("NaN"), FieldType::Number).is_err());
        assert!(coerce(&json!("inf"), FieldType::Number).is_err());
        assert!(coerce(&json!("2.5"), FieldType::Integer).is_err());
        assert!(coerce(&json!([1]), FieldType::Number).is_err());
    }

    #[test]
    fn text_keeps_leading_zeros_and_empty_text_is_absent() {
        assert_eq!(
            ok(json!("002299"), FieldType::String),
            Some(FieldValue::Text("002299".into()))
        );
        assert_eq!(
            ok(json!(2299), FieldType::String),
            Some(FieldValue::Text("2299".into()))
        );
        assert_eq!(ok(json!("   "), FieldType::String), None);
        assert_eq!(ok(json!(null), FieldType::Integer), None);
        assert!(coerce(&json!({"a": 1}), FieldType::String).is_err());
    }

    #[test]
    fn booleans_accept_the_usual_spellings() {
        for (text, expected) in [
            ("true", true),
            ("YES", true),
            ("1", true),
            ("false", false),
            ("no", false),
        ] {
            assert_eq!(
                ok(json!(text), FieldType::Boolean),
                Some(FieldValue::Boolean(expected)),
                "{text}"
            );
        }
        assert!(coerce(&json!("maybe"), FieldType::Boolean).is_err());
    }

    #[test]
    fn timestamps_in_the_forms_feeds_send_all_parse_to_utc() {
        let expected = "2017-12-04T01:12:10Z";
        for text in [
            "2017-12-04T12:12:10+11:00",
            "2017-12-04 12:12:10+11:00",
            "2017-12-04T12:12:10+1100",
            "Mon, 04 Dec 2017 12:12:10 +1100",
            "2017-12-04T01:12:10Z",
            "2017-12-04T01:12:10",
            "2017-12-04 01:12:10",
            "2017/12/04 01:12:10",
        ] {
            let t = parse_timestamp(text).unwrap_or_else(|| panic!("{text} did not parse"));
            assert_eq!(
                t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                expected,
                "{text}"
            );
        }
        let frac = parse_timestamp("2017-12-04T01:12:10.250Z").unwrap();
        assert_eq!(frac.timestamp_subsec_millis(), 250);
        let date = parse_timestamp("2017-12-04").unwrap();
        assert_eq!(date.to_rfc3339(), "2017-12-04T00:00:00+00:00");
        assert_eq!(
            parse_timestamp("04/12/2017"),
            None,
            "ambiguous day/month order is refused"
        );
        assert_eq!(parse_timestamp("yesterday"), None);
    }

    #[test]
    fn numbers_are_not_taken_as_timestamps() {
        assert!(coerce(&json!(1512349930), FieldType::Timestamp).is_err());
    }
}
