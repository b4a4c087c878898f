//! The compact JSON form the adapters store a record in (ADR 22): short member names,
//! nothing for an absent version or an empty map, and attribute values without type
//! tags where JSON already tells them apart. For a four-column CSV row it is about a
//! third of the size of the record's serde form, which clients and events see.
//!
//! `{"k": ["id"], "v": 7, "d": {"group": "g1"}, "m": {"value": 1.5}, "a": {"note": "x"}}`
//!
//! An attribute is a JSON string (text), an integer (integer), a number written with
//! a fraction or an exponent (number: `serde_json` always writes one), a boolean, or
//! an object of one member: `{"t": "<RFC 3339>"}` for a timestamp, `{"j": <any JSON>}`
//! for a JSON value. Documents stored in the record's serde form before this form
//! existed are read too.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Attributes, Dimensions, FieldValue, Measures, Record, RecordKey, Version};

/// A stored document that is neither form of a record.
#[derive(Debug, thiserror::Error)]
#[error("a stored record could not be read: {0}")]
pub struct StoredRecordError(#[from] serde_json::Error);

#[derive(Serialize)]
struct Out<'a> {
    k: &'a RecordKey,
    #[serde(skip_serializing_if = "Option::is_none")]
    v: Option<Version>,
    #[serde(skip_serializing_if = "Entries::is_empty")]
    d: Entries<'a, &'a str>,
    #[serde(skip_serializing_if = "Entries::is_empty")]
    m: Entries<'a, f64>,
    #[serde(skip_serializing_if = "Entries::is_empty")]
    a: Entries<'a, ValueOut<'a>>,
}

/// A name map written from its entries, without copying it.
struct Entries<'a, V>(Vec<(&'a str, V)>);

impl<V> Entries<'_, V> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<V: Serialize> Serialize for Entries<'_, V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in &self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

struct ValueOut<'a>(&'a FieldValue);

impl Serialize for ValueOut<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            FieldValue::Text(s) => serializer.serialize_str(s),
            FieldValue::Integer(i) => serializer.serialize_i64(*i),
            FieldValue::Number(n) => serializer.serialize_f64(*n),
            FieldValue::Boolean(b) => serializer.serialize_bool(*b),
            FieldValue::Timestamp(t) => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("t", t)?;
                map.end()
            }
            FieldValue::Json(v) => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("j", v)?;
                map.end()
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct In {
    k: RecordKey,
    #[serde(default)]
    v: Option<Version>,
    #[serde(default)]
    d: Dimensions,
    #[serde(default)]
    m: Measures,
    #[serde(default)]
    a: BTreeMap<String, ValueIn>,
}

struct ValueIn(FieldValue);

impl<'de> Deserialize<'de> for ValueIn {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor).map(ValueIn)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = FieldValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a stored attribute value")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<FieldValue, E> {
        Ok(FieldValue::Text(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<FieldValue, E> {
        Ok(FieldValue::Text(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<FieldValue, E> {
        Ok(FieldValue::Integer(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<FieldValue, E> {
        i64::try_from(v)
            .map(FieldValue::Integer)
            .map_err(|_| E::custom("an integer attribute beyond i64"))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<FieldValue, E> {
        Ok(FieldValue::Number(v))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<FieldValue, E> {
        Ok(FieldValue::Boolean(v))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FieldValue, A::Error> {
        let tag: String = map
            .next_key()?
            .ok_or_else(|| de::Error::custom("an empty object is no stored value"))?;
        let value = match tag.as_str() {
            "t" => FieldValue::Timestamp(map.next_value::<DateTime<Utc>>()?),
            "j" => FieldValue::Json(map.next_value::<serde_json::Value>()?),
            other => return Err(de::Error::unknown_field(other, &["t", "j"])),
        };
        if map.next_key::<String>()?.is_some() {
            return Err(de::Error::custom("a stored value object has one member"));
        }
        Ok(value)
    }
}

impl Record {
    /// The record in the compact form adapters store (see the module documentation).
    pub fn to_stored(&self) -> String {
        let out = Out {
            k: &self.key,
            v: self.version,
            d: Entries(self.dimensions.iter().collect()),
            m: Entries(self.measures.iter().collect()),
            a: Entries(
                self.attributes
                    .iter()
                    .map(|(name, value)| (name, ValueOut(value)))
                    .collect(),
            ),
        };
        // Every member serializes infallibly (string keys, finite numbers).
        serde_json::to_string(&out).unwrap_or_default()
    }

    /// Reads a stored record: the compact form, or the serde form stored before it.
    ///
    /// # Errors
    /// [`StoredRecordError`] when the text is neither, or holds an invalid entry.
    pub fn from_stored(text: &str) -> Result<Self, StoredRecordError> {
        match serde_json::from_str::<In>(text) {
            Ok(stored) => {
                let mut attributes = Attributes::default();
                for (name, value) in stored.a {
                    attributes
                        .insert(&name, value.0)
                        .map_err(<serde_json::Error as de::Error>::custom)?;
                }
                Ok(Self {
                    key: stored.k,
                    version: stored.v,
                    dimensions: stored.d,
                    measures: stored.m,
                    attributes,
                })
            }
            Err(compact) => serde_json::from_str::<Self>(text).map_err(|legacy| {
                // A document with `k` was meant to be compact: its error says more.
                if text.trim_start().starts_with("{\"k\"") {
                    StoredRecordError(compact)
                } else {
                    StoredRecordError(legacy)
                }
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(attributes: &[(&str, FieldValue)], version: Option<i64>) -> Record {
        let mut a = Attributes::default();
        for (name, value) in attributes {
            a.insert(name, value.clone()).unwrap();
        }
        let mut d = Dimensions::default();
        d.insert("group", "g1".into()).unwrap();
        let mut m = Measures::default();
        m.insert("value", 2.0).unwrap();
        Record {
            key: RecordKey::try_new(vec!["9863".into(), "0/2%".into()]).unwrap(),
            version: version.map(Version::new),
            dimensions: d,
            measures: m,
            attributes: a,
        }
    }

    #[test]
    fn every_kind_of_value_comes_back_as_it_went_in() {
        let at = DateTime::parse_from_rfc3339("2017-12-04T12:12:10.123456+11:00").unwrap();
        let values = [
            ("text", FieldValue::Text("002299".into())),
            ("numeric_text", FieldValue::Text("12".into())),
            ("integer", FieldValue::Integer(-12)),
            ("whole_number", FieldValue::Number(12.0)),
            ("number", FieldValue::Number(1e300)),
            ("negative_zero", FieldValue::Number(-0.0)),
            ("boolean", FieldValue::Boolean(false)),
            ("timestamp", FieldValue::Timestamp(at.with_timezone(&Utc))),
            (
                "json_object",
                FieldValue::Json(serde_json::json!({"t": "not a time"})),
            ),
            ("json_null", FieldValue::Json(serde_json::Value::Null)),
            ("json_text", FieldValue::Json(serde_json::json!("x"))),
        ];
        let original = record(&values, Some(7));
        let stored = original.to_stored();
        let back = Record::from_stored(&stored).unwrap();
        assert_eq!(back, original, "{stored}");
        for (name, value) in &values {
            let got = back.attributes.get(name).unwrap();
            assert_eq!(
                std::mem::discriminant(got),
                std::mem::discriminant(value),
                "{name} keeps its type"
            );
        }
        assert!(stored.contains(r#""whole_number":12.0"#), "{stored}");
    }

    #[test]
    fn the_compact_form_is_much_smaller_and_omits_what_is_absent() {
        let original = record(&[("note", FieldValue::Text("x".into()))], None);
        let stored = original.to_stored();
        assert_eq!(
            stored,
            r#"{"k":["9863","0/2%"],"d":{"group":"g1"},"m":{"value":2.0},"a":{"note":"x"}}"#
        );
        let serde_form = serde_json::to_string(&original).unwrap();
        assert!(stored.len() * 3 < serde_form.len() * 2, "{serde_form}");
    }

    #[test]
    fn records_stored_in_the_serde_form_are_still_read() {
        let original = record(&[("n", FieldValue::Integer(3))], Some(1));
        let legacy = serde_json::to_string(&original).unwrap();
        assert_eq!(Record::from_stored(&legacy).unwrap(), original);
    }

    #[test]
    fn a_bad_document_is_an_error_not_a_guess() {
        for bad in [
            r#"{"k":["a"],"a":{"x":null}}"#,
            r#"{"k":["a"],"a":{"x":{"q":1}}}"#,
            r#"{"k":["a"],"a":{"x":{"t":"yesterday"}}}"#,
            r#"{"k":["a"],"m":{"value":"1"}}"#,
            r#"{"k":["a"],"z":1}"#,
            r#"[1, 2]"#,
        ] {
            assert!(Record::from_stored(bad).is_err(), "{bad}");
        }
    }
}
