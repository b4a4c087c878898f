//! Conformance suites for the ports, written once and run by every adapter crate
//! against itself (feature `testkit`). The storage suites arrive with the storage
//! adapters; this module holds what every suite shares.

use crate::contract::Contract;

/// Parses one of the reference contracts a suite uses.
///
/// # Errors
/// The contract's errors, when a suite's contract text is wrong.
pub fn contract(json: &str) -> Result<Contract, crate::ContractError> {
    Contract::parse(json)
}
