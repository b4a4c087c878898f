//! `intake-domain`: the centre of the hexagon.
//!
//! Everything Intake knows about data lives here and nowhere else: the model (datasets,
//! record keys, records, imports, conflicts), data contracts (parse, validate, compile),
//! mapping of decoded raw records into canonical ones, the merge policies, the analytics
//! maths and the ports (traits) that adapters implement. No IO crate, no driver and no
//! wire format appears in this crate: decoders, databases, caches and HTTP live in
//! adapter crates that depend on this one.

#![warn(missing_docs)]

pub mod analytics;
pub mod callbacks;
pub mod contract;
pub mod datasets;
pub mod deadline;
pub mod delivery;
pub mod ingest;
pub mod jobs;
pub mod limits;
pub mod mapping;
pub mod merge;
pub mod model;
pub mod ports;
pub mod raw;
pub mod redact;
pub mod sources;
#[cfg(feature = "testkit")]
#[allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    reason = "conformance suites are tests: a failed expectation is a failed test"
)]
pub mod testkit;
pub mod work;

pub use contract::{Contract, ContractError};
pub use model::{
    Attributes, Conflict, ConflictKind, ContractVersion, DatasetName, Dimensions, FieldValue,
    ImportId, ImportReport, ImportStatus, Location, Measures, Record, RecordError, RecordKey,
    Revision, Version,
};
pub use raw::{DecodeError, RawRecord};
