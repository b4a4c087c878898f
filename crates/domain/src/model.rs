//! Intake's model: value types with validating constructors.
//!
//! Every type here can only hold a valid value: constructors that can fail are named
//! `parse` or `try_new` and return a small typed error.

mod conflict;
mod dataset;
mod import;
mod key;
mod location;
pub(crate) mod record;
mod stored;
mod value;

pub use conflict::{Conflict, ConflictKind, FieldDifference};
pub use dataset::{
    ContractVersion, ContractVersionError, DatasetName, DatasetNameError, Revision, Version,
};
pub use import::{ImportId, ImportIdError, ImportReport, ImportStatus, RecordError};
pub use key::{KeyError, RecordKey};
pub use location::Location;
pub use record::{Attributes, Dimensions, EntryError, Measures, Record};
pub use stored::StoredRecordError;
pub use value::FieldValue;
