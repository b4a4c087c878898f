//! What the fuzz targets share.

use intake_codecs::Codecs;
use intake_domain::contract::DocumentFormat;

/// Decodes `data` as `format` to the end, with a small record cap so that memory
/// stays bounded: every item must be a record or an error with a message.
pub fn drain(format: &DocumentFormat, data: &[u8]) {
    let codecs = Codecs::with_max_record_bytes(64 * 1024);
    let records = codecs.decode_reader(format, std::io::Cursor::new(data.to_vec()));
    for item in records.take(100_000) {
        if let Err(e) = item {
            assert!(!e.message.is_empty(), "an error says what is wrong");
        }
    }
}
