//! The XML decoder never panics and never loops on any bytes: every item is a record
//! or an error, and a fatal error ends the stream. Inputs of even length are decoded
//! keeping only some members of each record (as a contract's fields ask), so the
//! skipping of the others is fuzzed too.
#![no_main]

use intake_domain::contract::DocumentFormat;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let format = DocumentFormat::Xml {
        records: vec!["root".into(), "item".into()],
        members: (data.len() % 2 == 0)
            .then(|| ["a", "@b"].into_iter().map(str::to_owned).collect()),
    };
    intake_fuzz::drain(&format, data);
});
