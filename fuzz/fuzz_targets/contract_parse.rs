//! The contract parser never panics on any text, and a contract it accepts is one it
//! accepts again from its own JSON (what the catalog stores and reads back).
#![no_main]

use intake_domain::Contract;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(contract) = Contract::parse(text) else {
        return;
    };
    let stored = contract.to_json().to_string();
    let again = Contract::parse(&stored).expect("a stored contract reads back");
    assert_eq!(again, contract, "the stored form is the same contract");
});
