//! The reference workloads of `examples/`, so every adapter is tested on the same real
//! contracts and documents.

/// One reference workload: its contract and sample documents.
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    /// The dataset name the examples use.
    pub dataset: &'static str,
    /// The contract, as JSON text.
    pub contract: &'static str,
    /// Sample documents: (file name, media type, bytes).
    pub documents: &'static [(&'static str, &'static str, &'static [u8])],
}

/// The exam-results (Markr) workload.
pub const EXAM_RESULTS: Workload = Workload {
    dataset: "exam-results",
    contract: include_str!("../../../../examples/contracts/exam-results.json"),
    documents: &[
        (
            "exam-results.xml",
            "text/xml+markr",
            include_bytes!("../../../../examples/data/exam-results.xml"),
        ),
        (
            "exam-results-invalid.xml",
            "text/xml+markr",
            include_bytes!("../../../../examples/data/exam-results-invalid.xml"),
        ),
        (
            "markr-sample-results.xml",
            "text/xml+markr",
            include_bytes!("../../../../examples/data/markr-sample-results.xml"),
        ),
    ],
};

/// The accounts workload.
pub const ACCOUNTS: Workload = Workload {
    dataset: "accounts",
    contract: include_str!("../../../../examples/contracts/accounts.json"),
    documents: &[(
        "account-updates.json",
        "application/json",
        include_bytes!("../../../../examples/data/account-updates.json"),
    )],
};

/// The customers workload.
pub const CUSTOMERS: Workload = Workload {
    dataset: "customers",
    contract: include_str!("../../../../examples/contracts/customers.json"),
    documents: &[(
        "customers.csv",
        "text/csv",
        include_bytes!("../../../../examples/data/customers.csv"),
    )],
};

/// All three, for suites that run every workload.
pub const WORKLOADS: [Workload; 3] = [EXAM_RESULTS, ACCOUNTS, CUSTOMERS];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Contract, DatasetName};

    #[test]
    fn every_workload_has_a_valid_name_and_contract() {
        for w in WORKLOADS {
            assert!(DatasetName::parse(w.dataset).is_ok(), "{}", w.dataset);
            assert!(Contract::parse(w.contract).is_ok(), "{}", w.dataset);
            assert!(!w.documents.is_empty());
        }
    }
}
