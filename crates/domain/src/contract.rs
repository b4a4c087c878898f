//! Data contracts (DESIGN §5): the declarative, versioned mapping from a source's
//! documents to canonical records.
//!
//! A contract arrives as JSON ([`ContractSpec`]), is validated and compiled once into a
//! [`Contract`], and is immutable from then on. Compilation checks everything that can
//! be checked without data (every path compiles, key fields exist and are required,
//! ratios name real measures…) and reports every problem with the field at fault.

mod checks;
mod compile;
mod error;
mod limits;
mod media;
mod paths;
mod spec;

pub(crate) use checks::parse_duration;
pub use compile::{CallbackRule, Contract, DocumentFormat, FieldPath};
pub(crate) use compile::{CompiledField, MeasureSource};
pub use error::{ContractError, ContractIssue};
pub use limits::{ContractLimits, ContractTooLarge};
pub use spec::{
    AfterSpec, CallbackSpec, ContractSpec, CsvSpec, DelaySpec, DelayUnit, FieldSpec, FieldType,
    FormatName, IdentitySpec, InvalidPolicy, MeasureSpec, MergePolicy, RatioSpec,
};
