//! Mapping: a compiled contract turns a decoded raw record into a canonical one.
//!
//! Each field is looked up at its path and coerced to its type; a required field that
//! is absent, empty or of the wrong type makes the record invalid, and every such
//! problem is reported with the record's location and the field's name. An optional
//! field with a bad value is reported the same way: silently dropping data a feed sent
//! would hide a changed external API.

mod coerce;

use std::collections::BTreeMap;
use std::time::Duration;

use crate::contract::{CallbackRule, CompiledField, Contract, FieldType, MeasureSource};
use crate::model::{
    Attributes, Dimensions, FieldValue, Location, Measures, Record, RecordError, RecordKey, Version,
};
use crate::raw::RawRecord;

pub use coerce::parse_timestamp;

/// A record mapped through a contract, ready to merge.
#[derive(Debug, Clone, PartialEq)]
pub struct MappedRecord {
    /// The canonical record, derived measures computed.
    pub record: Record,
    /// The mapped identity fields, by name, when the contract has an identity check.
    pub identity: Option<Identity>,
    /// Where the record was in its document.
    pub location: Location,
    /// When a callback is due after this version is accepted.
    pub callback_after: Option<Duration>,
    /// Ratio measures that were undefined (zero denominator) and left out.
    pub undefined_ratios: Vec<String>,
}

/// The identity of a record: the canonical identity key and the fields that must agree.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// The identity key in canonical form (see [`RecordKey`]).
    pub key: String,
    /// The identity fields (`None`: absent in this record).
    pub fields: BTreeMap<String, Option<FieldValue>>,
}

/// A record's coerced field values, one slot per contract field: looked up by name
/// without allocating a map per record.
struct Values<'c> {
    fields: &'c [CompiledField],
    slots: Vec<Option<FieldValue>>,
}

impl Values<'_> {
    fn get(&self, name: &str) -> Option<&FieldValue> {
        let i = self.fields.iter().position(|f| f.name == name)?;
        self.slots.get(i)?.as_ref()
    }

    fn remove(&mut self, name: &str) {
        if let Some(i) = self.fields.iter().position(|f| f.name == name) {
            self.slots[i] = None;
        }
    }

    /// The values left, by field name.
    fn into_map(self) -> BTreeMap<String, FieldValue> {
        let named = self.fields.iter().zip(self.slots);
        named
            .filter_map(|(f, v)| Some((f.name.clone(), v?)))
            .collect()
    }
}

impl Contract {
    /// Maps one raw record.
    ///
    /// # Errors
    /// Every problem found in the record (at least one), each with the record's location.
    pub fn map(&self, raw: &RawRecord) -> Result<MappedRecord, Vec<RecordError>> {
        let location = raw.location().clone();
        let fail = |(field, message): (String, String)| RecordError {
            location: location.clone(),
            field: Some(field),
            message,
        };
        let (values, mut errors) = self.read_fields(raw);
        match self.callback_after(&values) {
            Ok(after) if errors.is_empty() => self
                .build(values, location.clone(), after)
                .map_err(|e| vec![fail(e)]),
            Ok(_) => Err(errors.into_iter().map(fail).collect()),
            Err(message) => {
                errors.push((self.callback_field().to_owned(), message));
                Err(errors.into_iter().map(fail).collect())
            }
        }
    }

    /// Each field looked up and coerced: the values found, and (field, problem) pairs.
    fn read_fields(&self, raw: &RawRecord) -> (Values<'_>, Vec<(String, String)>) {
        let mut slots = Vec::with_capacity(self.fields.len());
        let mut errors = Vec::new();
        for field in &self.fields {
            let value = match raw
                .lookup(&field.path)
                .map(|v| coerce::coerce(v, field.kind))
            {
                Some(Ok(Some(value))) => Some(value),
                Some(Err(message)) => {
                    errors.push((field.name.clone(), message));
                    None
                }
                None | Some(Ok(None)) if field.required => {
                    let path = field.path.join("/");
                    errors.push((
                        field.name.clone(),
                        format!("required field is missing or empty (path {path})"),
                    ));
                    None
                }
                None | Some(Ok(None)) => None,
            };
            slots.push(value);
        }
        let values = Values {
            fields: &self.fields,
            slots,
        };
        (values, errors)
    }

    fn callback_field(&self) -> &str {
        match self.callback() {
            Some(CallbackRule::Field { field, .. }) => field,
            _ => "callback",
        }
    }

    fn build(
        &self,
        mut values: Values<'_>,
        location: Location,
        callback_after: Option<Duration>,
    ) -> Result<MappedRecord, (String, String)> {
        let key = self.key_of(&values)?;
        let version = self.version_of(&values);
        let identity = self.identity_of(&values);
        // Measures and dimensions read the values before any is moved out, so one
        // field can be both (an integer year to group by and to average).
        let mut measures = self.measures_of(&values)?;
        let dimensions = self.dimensions_of(&values)?;
        for name in self.dimensions().iter().chain(self.measure_fields()) {
            values.remove(name);
        }
        let undefined_ratios = self.derive(&mut measures);
        let attributes = Attributes::try_from(values.into_map())
            .map_err(|e| ("fields".to_owned(), e.to_string()))?;
        let record = Record {
            key,
            version,
            dimensions,
            measures,
            attributes,
        };
        Ok(MappedRecord {
            record,
            identity,
            location,
            callback_after,
            undefined_ratios,
        })
    }

    fn measures_of(&self, values: &Values<'_>) -> Result<Measures, (String, String)> {
        let mut measures = Measures::default();
        for (name, source) in &self.measures {
            let MeasureSource::Field(field) = source else {
                continue;
            };
            if let Some(v) = values.get(field).and_then(FieldValue::as_f64) {
                measures
                    .insert(name, v)
                    .map_err(|e| (field.clone(), e.to_string()))?;
            }
        }
        Ok(measures)
    }

    fn dimensions_of(&self, values: &Values<'_>) -> Result<Dimensions, (String, String)> {
        let mut dimensions = Dimensions::default();
        for name in self.dimensions() {
            if let Some(text) = values.get(name).and_then(FieldValue::as_text) {
                dimensions
                    .insert(name, text)
                    .map_err(|e| (name.clone(), e.to_string()))?;
            }
        }
        Ok(dimensions)
    }

    /// The fields that back a measure.
    fn measure_fields(&self) -> impl Iterator<Item = &String> {
        self.measures.iter().filter_map(|(_, source)| match source {
            MeasureSource::Field(field) => Some(field),
            MeasureSource::Ratio { .. } => None,
        })
    }

    /// A record's contents as the fields it was mapped from, typed as the contract
    /// declares them (an integer field backing a measure is an integer again, an integer
    /// dimension a number), plus the derived ratio measures under their own names. This
    /// is what clients and callbacks see as "the record".
    pub fn contents(&self, record: &Record) -> serde_json::Value {
        let mut out = serde_json::Map::new();
        for field in &self.fields {
            let measure = self
                .measures
                .iter()
                .find_map(|(name, source)| match source {
                    MeasureSource::Field(f) if *f == field.name => record.measures.get(name),
                    _ => None,
                });
            let value = match (
                record.attributes.get(&field.name),
                measure,
                record.dimensions.get(&field.name),
            ) {
                (Some(v), _, _) => v.to_json(),
                (None, Some(m), _) => number_as(m, field.kind),
                (None, None, Some(text)) => text_as(text, field.kind),
                (None, None, None) => continue,
            };
            out.insert(field.name.clone(), value);
        }
        for (name, source) in &self.measures {
            if let (MeasureSource::Ratio { .. }, Some(v)) = (source, record.measures.get(name)) {
                out.insert(name.clone(), v.into());
            }
        }
        out.into()
    }

    /// Computes the ratio measures from the field-backed ones; returns the names of the
    /// ratios left out because they are undefined (denominator 0, or an operand absent).
    pub fn derive(&self, measures: &mut Measures) -> Vec<String> {
        let mut undefined = Vec::new();
        for (name, source) in &self.measures {
            let MeasureSource::Ratio {
                numerator,
                denominator,
                scale,
            } = source
            else {
                continue;
            };
            let value = match (measures.get(numerator), measures.get(denominator)) {
                (Some(n), Some(d)) if d != 0.0 => Some(n / d * scale),
                _ => None,
            };
            match value.filter(|v| v.is_finite()) {
                Some(v) => {
                    // The name was checked when the contract compiled and v is finite.
                    let _ = measures.insert(name, v);
                }
                None => {
                    measures.remove(name);
                    undefined.push(name.clone());
                }
            }
        }
        undefined
    }

    fn key_of(&self, values: &Values<'_>) -> Result<RecordKey, (String, String)> {
        let parts = self
            .key_fields()
            .iter()
            .map(|name| {
                values
                    .get(name)
                    .and_then(FieldValue::as_text)
                    .ok_or_else(|| (name.clone(), "key field is missing".to_owned()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        RecordKey::try_new(parts).map_err(|e| ("key".to_owned(), e.to_string()))
    }

    fn version_of(&self, values: &Values<'_>) -> Option<Version> {
        match values.get(self.spec().version.as_ref()?)? {
            FieldValue::Integer(i) => Some(Version::new(*i)),
            FieldValue::Timestamp(t) => Some(Version::new(t.timestamp_micros())),
            _ => None,
        }
    }

    fn identity_of(&self, values: &Values<'_>) -> Option<Identity> {
        let spec = self.spec().identity.as_ref()?;
        let parts = spec
            .key
            .iter()
            .map(|name| values.get(name).and_then(FieldValue::as_text))
            .collect::<Option<Vec<_>>>()?;
        let key = RecordKey::try_new(parts).ok()?.canonical();
        let fields = spec
            .fields
            .iter()
            .map(|name| (name.clone(), values.get(name).cloned()))
            .collect();
        Some(Identity { key, fields })
    }

    fn callback_after(&self, values: &Values<'_>) -> Result<Option<Duration>, String> {
        match self.callback() {
            None => Ok(None),
            Some(CallbackRule::After(after)) => Ok(Some(*after)),
            Some(CallbackRule::Field {
                field,
                millis_per_unit,
            }) => {
                let Some(delay) = values.get(field).and_then(FieldValue::as_f64) else {
                    return Ok(None);
                };
                let millis = delay * *millis_per_unit as f64;
                if !(0.0..=1e15).contains(&millis) {
                    return Err(format!("callback delay {delay} is negative or too large"));
                }
                Ok(Some(Duration::from_millis(millis.round() as u64)))
            }
        }
    }
}

fn number_as(value: f64, kind: FieldType) -> serde_json::Value {
    let is_whole = value.fract() == 0.0 && value.abs() < 9.007_199_254_740_992e15;
    if kind == FieldType::Integer && is_whole {
        serde_json::Value::from(value as i64)
    } else {
        serde_json::Value::from(value)
    }
}

fn text_as(text: &str, kind: FieldType) -> serde_json::Value {
    let typed = match kind {
        FieldType::Integer => text.parse::<i64>().ok().map(serde_json::Value::from),
        FieldType::Boolean => text.parse::<bool>().ok().map(serde_json::Value::from),
        _ => None,
    };
    typed.unwrap_or_else(|| text.into())
}
