use std::fmt;

use serde::{Deserialize, Serialize};

/// The key of a record within its dataset: one or more non-empty text components, in
/// the order the contract's `key` lists them.
///
/// Its canonical text form joins the components with `/`, escaping `%` as `%25` and `/`
/// as `%2F` inside a component, so `("9863", "002299")` is `9863/002299` and the form is
/// reversible. Components are compared as text: `002299` is not `2299`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct RecordKey(Vec<String>);

/// Why a record key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// A key needs at least one component.
    #[error("a record key needs at least one component")]
    NoComponents,
    /// A component was empty: nothing would identify the record.
    #[error("key component {0} is empty")]
    EmptyComponent(usize),
    /// A component held a NUL character, which no stored key can hold.
    #[error("key component {0} contains a NUL character")]
    Nul(usize),
    /// The canonical text held a `%` escape that is not `%25` or `%2F`.
    #[error("invalid escape in record key {0:?}")]
    BadEscape(String),
    /// The canonical text had another number of components than expected.
    #[error("record key {text:?} has {found} components, expected {expected}")]
    WrongArity {
        /// The text that was parsed.
        text: String,
        /// How many components the dataset's key has.
        expected: usize,
        /// How many the text held.
        found: usize,
    },
}

impl RecordKey {
    /// Builds a key from its components.
    ///
    /// # Errors
    /// [`KeyError::NoComponents`], [`KeyError::EmptyComponent`] or [`KeyError::Nul`].
    pub fn try_new(components: Vec<String>) -> Result<Self, KeyError> {
        if components.is_empty() {
            return Err(KeyError::NoComponents);
        }
        if let Some(i) = components.iter().position(String::is_empty) {
            return Err(KeyError::EmptyComponent(i));
        }
        if let Some(i) = components.iter().position(|c| c.contains('\0')) {
            return Err(KeyError::Nul(i));
        }
        Ok(Self(components))
    }

    /// Parses the canonical text form of a key with `arity` components.
    ///
    /// # Errors
    /// [`KeyError`] when the text is malformed or has another number of components.
    pub fn parse(text: &str, arity: usize) -> Result<Self, KeyError> {
        let components = text
            .split('/')
            .map(|part| unescape(part).ok_or_else(|| KeyError::BadEscape(text.to_owned())))
            .collect::<Result<Vec<_>, _>>()?;
        if components.len() != arity {
            return Err(KeyError::WrongArity {
                text: text.to_owned(),
                expected: arity,
                found: components.len(),
            });
        }
        Self::try_new(components)
    }

    /// The components, in contract order.
    pub fn components(&self) -> &[String] {
        &self.0
    }

    /// The canonical text form (see the type's documentation).
    pub fn canonical(&self) -> String {
        self.to_string()
    }
}

fn unescape(part: &str) -> Option<String> {
    let mut out = String::with_capacity(part.len());
    let mut rest = part;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let escape = rest.get(i..i + 3)?;
        out.push(match escape {
            "%25" => '%',
            "%2F" | "%2f" => '/',
            _ => return None,
        });
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}

impl fmt::Display for RecordKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, component) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("/")?;
            }
            if component.contains(['%', '/']) {
                f.write_str(&component.replace('%', "%25").replace('/', "%2F"))?;
            } else {
                f.write_str(component)?;
            }
        }
        Ok(())
    }
}

impl TryFrom<Vec<String>> for RecordKey {
    type Error = KeyError;
    fn try_from(value: Vec<String>) -> Result<Self, Self::Error> {
        Self::try_new(value)
    }
}

impl From<RecordKey> for Vec<String> {
    fn from(value: RecordKey) -> Self {
        value.0
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn key(parts: &[&str]) -> RecordKey {
        RecordKey::try_new(parts.iter().map(|p| (*p).to_owned()).collect()).unwrap()
    }

    #[test]
    fn canonical_form_joins_components_and_keeps_leading_zeros() {
        assert_eq!(key(&["9863", "002299"]).canonical(), "9863/002299");
        assert_ne!(key(&["9863", "002299"]), key(&["9863", "2299"]));
    }

    #[test]
    fn slashes_and_percents_inside_components_are_escaped() {
        let k = key(&["a/b", "50%"]);
        assert_eq!(k.canonical(), "a%2Fb/50%25");
        assert_eq!(RecordKey::parse(&k.canonical(), 2).unwrap(), k);
    }

    #[test]
    fn malformed_text_is_refused_with_the_reason() {
        assert_eq!(RecordKey::try_new(vec![]), Err(KeyError::NoComponents));
        assert_eq!(
            RecordKey::parse("a//b", 3),
            Err(KeyError::EmptyComponent(1))
        );
        assert_eq!(
            RecordKey::parse("a/b\0c", 2),
            Err(KeyError::Nul(1)),
            "no stored key holds NUL"
        );
        assert!(matches!(
            RecordKey::parse("a%zz", 1),
            Err(KeyError::BadEscape(_))
        ));
        assert!(matches!(
            RecordKey::parse("a/b", 1),
            Err(KeyError::WrongArity {
                expected: 1,
                found: 2,
                ..
            })
        ));
    }

    proptest! {
        #[test]
        fn canonical_text_round_trips(parts in proptest::collection::vec("[a/%2F5]{1,8}|[^\\x00]{1,8}", 1..4)) {
            let k = RecordKey::try_new(parts.clone()).unwrap();
            prop_assert_eq!(RecordKey::parse(&k.canonical(), parts.len()).unwrap(), k);
        }
    }
}
