use std::io::Read;

use crate::contract::DocumentFormat;
use crate::raw::{DecodeError, RawRecord};

/// The records of one document, one at a time, in document order.
pub type RecordStream = Box<dyn Iterator<Item = Result<RawRecord, DecodeError>> + Send>;

/// Turns a document into raw records as a stream. Implemented by the `codecs` crate.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait DocumentDecoder: Send + Sync {
    /// Starts decoding `input` as `format`. Blocking: call it on a blocking thread.
    ///
    /// The stream MUST yield records in document order, each with its location; hold
    /// at most one record (plus a bounded buffer) in memory whatever the document's
    /// size; yield an error with `is_fatal: false` for a record it cannot decode and
    /// continue with the next one where the format allows; and end after an error with
    /// `is_fatal: true` (the document's structure is broken, or reading failed).
    fn decode(&self, format: &DocumentFormat, input: Box<dyn Read + Send>) -> RecordStream;
}
