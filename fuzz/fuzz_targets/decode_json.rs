//! The JSON decoder never panics on any bytes, with records at the top level or at a
//! path (the first byte chooses).
#![no_main]

use intake_domain::contract::DocumentFormat;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (choice, body) = data.split_at(data.len().min(1));
    let records = if choice.first().is_some_and(|b| b % 2 == 1) {
        vec!["data".into(), "items".into()]
    } else {
        Vec::new()
    };
    intake_fuzz::drain(&DocumentFormat::Json { records }, body);
});
