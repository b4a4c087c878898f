use std::fmt;

use serde::{Deserialize, Serialize};

/// One problem found in a contract, naming the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContractIssue {
    /// The contract field at fault, as a dotted path (`measures.percent.ratio[1]`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl ContractIssue {
    pub(crate) fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ContractIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Why a contract was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContractError {
    /// The text is not JSON.
    #[error("contract is not valid JSON: {message} (line {line}, column {column})")]
    Syntax {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// The JSON is not a valid contract; every problem found is listed.
    #[error("contract is invalid: {}", join(.0))]
    Invalid(Vec<ContractIssue>),
}

impl ContractError {
    /// The problems, each naming its field (empty for a syntax error).
    pub fn issues(&self) -> &[ContractIssue] {
        match self {
            Self::Syntax { .. } => &[],
            Self::Invalid(issues) => issues,
        }
    }
}

fn join(issues: &[ContractIssue]) -> String {
    issues
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
