//! The NDJSON decoder never panics on any bytes.
#![no_main]

use intake_domain::contract::DocumentFormat;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    intake_fuzz::drain(&DocumentFormat::Ndjson, data);
});
