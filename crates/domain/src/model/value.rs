use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// A typed field value, as a contract's field types produce it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldValue {
    /// Text, kept exactly as received (`002299` stays `002299`).
    Text(String),
    /// A whole number.
    Integer(i64),
    /// A floating-point number (mapping only produces finite ones).
    Number(f64),
    /// true or false.
    Boolean(bool),
    /// An instant, normalised to UTC.
    Timestamp(DateTime<Utc>),
    /// Any JSON value, kept as received (a nested object such as an account's `data`).
    Json(serde_json::Value),
}

impl FieldValue {
    /// The value as plain JSON, as clients and callbacks see it: timestamps in RFC 3339.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Self::Text(s) => Value::String(s.clone()),
            Self::Integer(i) => Value::from(*i),
            Self::Number(n) => serde_json::Number::from_f64(*n).map_or(Value::Null, Value::Number),
            Self::Boolean(b) => Value::Bool(*b),
            Self::Timestamp(t) => Value::String(t.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
            Self::Json(v) => v.clone(),
        }
    }

    /// The value as text, for keys and dimensions: text as is, numbers in decimal,
    /// booleans as `true`/`false`, timestamps in RFC 3339; `None` for JSON.
    pub fn as_text(&self) -> Option<String> {
        match self {
            Self::Text(s) => Some(s.clone()),
            Self::Integer(i) => Some(i.to_string()),
            Self::Number(n) => Some(n.to_string()),
            Self::Boolean(b) => Some(b.to_string()),
            Self::Timestamp(t) => Some(t.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
            Self::Json(_) => None,
        }
    }

    /// The value as a number, for measures and ratios.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Integer(i) => Some(*i as f64),
            Self::Number(n) => Some(*n),
            _ => None,
        }
    }
}
