//! `intake-codecs`: streaming decoders for the document formats of data contracts.
//!
//! An adapter of the [`DocumentDecoder`] port: it turns a document (any
//! [`std::io::Read`]) into [`RawRecord`]s one at a time, in document order, each with
//! its location. Memory stays bounded by the largest single record (capped at
//! [`Codecs::max_record_bytes`]), never by the document. A record that cannot be
//! decoded yields a non-fatal [`DecodeError`] and decoding goes on with the next record
//! where the format allows (CSV rows, JSON array elements, NDJSON lines); a broken
//! document structure yields a fatal error and ends the stream.

mod budget;
mod csv;
mod json;
mod lines;
mod ndjson;
mod xml;

use std::io::{BufRead, BufReader, Read};

use intake_domain::contract::DocumentFormat;
use intake_domain::ports::{DocumentDecoder, RecordStream};
use intake_domain::{DecodeError, Location, RawRecord};

/// The decoders, configured.
#[derive(Debug, Clone, Copy)]
pub struct Codecs {
    max_record_bytes: usize,
}

impl Default for Codecs {
    fn default() -> Self {
        Self {
            max_record_bytes: Self::DEFAULT_MAX_RECORD_BYTES,
        }
    }
}

impl Codecs {
    /// The default cap on one record's size: 16 MiB.
    pub const DEFAULT_MAX_RECORD_BYTES: usize = 16 * 1024 * 1024;

    /// Decoders that refuse any record larger than `max` bytes: as a non-fatal error
    /// where the format can skip it (a JSON element, an NDJSON line, an XML record made
    /// of smaller parts), as a fatal one where it cannot (a CSV row, which a runaway
    /// quote looks like; a single XML token). Parsers read ahead in buffers of up to 64
    /// KiB, which come on top of the cap.
    pub fn with_max_record_bytes(max: usize) -> Self {
        Self {
            max_record_bytes: max.max(1),
        }
    }

    /// The cap on one record's size.
    pub fn max_record_bytes(&self) -> usize {
        self.max_record_bytes
    }

    /// Decodes a document (a convenience over the port's method).
    pub fn decode_reader<R: Read + Send + 'static>(
        &self,
        format: &DocumentFormat,
        input: R,
    ) -> RecordStream {
        let mut input = BufReader::with_capacity(64 * 1024, input);
        skip_byte_order_mark(&mut input);
        match format {
            DocumentFormat::Xml { records, members } => Box::new(xml::XmlRecords::new(
                input,
                records.clone(),
                members.clone(),
                self.max_record_bytes,
            )),
            DocumentFormat::Csv { delimiter, quote } => Box::new(csv::CsvRecords::new(
                input,
                *delimiter,
                *quote,
                self.max_record_bytes,
            )),
            DocumentFormat::Json { records } => Box::new(json::JsonRecords::new(
                input,
                records.clone(),
                self.max_record_bytes,
            )),
            DocumentFormat::Ndjson => {
                Box::new(ndjson::NdjsonRecords::new(input, self.max_record_bytes))
            }
        }
    }
}

impl DocumentDecoder for Codecs {
    fn decode(&self, format: &DocumentFormat, input: Box<dyn Read + Send>) -> RecordStream {
        self.decode_reader(format, input)
    }
}

/// Skips a UTF-8 byte-order mark, in every format, before any parser or position
/// counter sees it. A read error here is left for the decoder to meet and report.
fn skip_byte_order_mark<R: BufRead>(input: &mut R) {
    if input
        .fill_buf()
        .is_ok_and(|b| b.starts_with(b"\xEF\xBB\xBF"))
    {
        input.consume(3);
    }
}

/// A located error.
fn error(location: Location, message: impl Into<String>, is_fatal: bool) -> DecodeError {
    DecodeError {
        location,
        message: message.into(),
        is_fatal,
    }
}

/// One JSON record: an object, or a non-fatal error at `location`.
fn parse_object(bytes: &[u8], location: Location) -> Result<RawRecord, DecodeError> {
    let kind = match serde_json::from_slice(bytes) {
        Ok(serde_json::Value::Object(map)) => return Ok(RawRecord::new(map, location)),
        Err(e) => return Err(error(location, format!("invalid JSON: {e}"), false)),
        Ok(serde_json::Value::Array(_)) => "a list",
        Ok(serde_json::Value::String(_)) => "text",
        Ok(serde_json::Value::Number(_)) => "a number",
        Ok(serde_json::Value::Bool(_)) => "a boolean",
        Ok(serde_json::Value::Null) => "null",
    };
    Err(error(
        location,
        format!("expected an object, found {kind}"),
        false,
    ))
}
