//! The XML decoder never panics and never loops on any bytes: every item is a record
//! or an error, and a fatal error ends the stream.
#![no_main]

use intake_domain::contract::DocumentFormat;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let format = DocumentFormat::Xml {
        records: vec!["root".into(), "item".into()],
    };
    intake_fuzz::drain(&format, data);
});
