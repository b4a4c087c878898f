//! The CSV decoder never panics on any bytes, whatever the dialect: the first byte
//! picks the delimiter and the second the quote.
#![no_main]

use intake_domain::contract::DocumentFormat;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (dialect, body) = data.split_at(data.len().min(2));
    let delimiter =
        [b',', b';', b'\t', b'|'][usize::from(dialect.first().copied().unwrap_or(0) % 4)];
    let quote = [b'"', b'\''][usize::from(dialect.get(1).copied().unwrap_or(0) % 2)];
    intake_fuzz::drain(&DocumentFormat::Csv { delimiter, quote }, body);
});
