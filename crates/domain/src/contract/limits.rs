//! How large a contract may be. Every record of every import costs work per field,
//! key part, dimension and measure, so a contract of ten thousand fields (accepted once,
//! 55 s and 520 MB to import 100 rows) is refused when it is created or published.

/// The most fields, key parts, dimensions and measures a contract may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContractLimits {
    /// Fields (`fields`).
    pub fields: usize,
    /// Key parts (`key`).
    pub key_fields: usize,
    /// Dimensions (`dimensions`).
    pub dimensions: usize,
    /// Measures (`measures`, ratios included).
    pub measures: usize,
}

impl Default for ContractLimits {
    fn default() -> Self {
        Self {
            fields: 256,
            key_fields: 8,
            dimensions: 32,
            measures: 64,
        }
    }
}

/// A contract over one of the [`ContractLimits`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the contract has {count} {part}; at most {limit} are allowed (setting {setting})")]
pub struct ContractTooLarge {
    /// The part of the contract (`fields`, `key`, `dimensions`, `measures`).
    pub part: &'static str,
    /// How many it has.
    pub count: usize,
    /// How many are allowed.
    pub limit: usize,
    /// The setting that allows them.
    pub setting: &'static str,
}

impl ContractLimits {
    /// Whether `contract` is within the limits.
    ///
    /// # Errors
    /// The first part over its limit.
    pub fn check(&self, contract: &super::Contract) -> Result<(), ContractTooLarge> {
        let spec = contract.spec();
        let parts = [
            (
                "fields",
                spec.fields.len(),
                self.fields,
                "max_contract_fields",
            ),
            (
                "key",
                spec.key.len(),
                self.key_fields,
                "max_contract_key_fields",
            ),
            (
                "dimensions",
                spec.dimensions.len(),
                self.dimensions,
                "max_contract_dimensions",
            ),
            (
                "measures",
                spec.measures.len(),
                self.measures,
                "max_contract_measures",
            ),
        ];
        for (part, count, limit, setting) in parts {
            if count > limit {
                return Err(ContractTooLarge {
                    part,
                    count,
                    limit,
                    setting,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Contract;

    fn contract(fields: usize) -> Contract {
        let fields: serde_json::Map<String, serde_json::Value> = (0..fields)
            .map(|i| {
                let spec = serde_json::json!({"path": format!("f{i}"), "type": "string", "required": true});
                (format!("f{i}"), spec)
            })
            .collect();
        let json = serde_json::json!({"format": "ndjson", "fields": fields, "key": ["f0"],
            "merge": "last_wins", "on_invalid": "skip_record"});
        Contract::parse(&json.to_string()).unwrap()
    }

    #[test]
    fn a_contract_over_a_limit_is_named_with_the_setting() {
        let limits = ContractLimits::default();
        assert_eq!(limits.check(&contract(256)), Ok(()));
        let e = limits.check(&contract(10_000)).unwrap_err();
        assert_eq!((e.part, e.count, e.limit), ("fields", 10_000, 256));
        assert_eq!(
            e.to_string(),
            "the contract has 10000 fields; at most 256 are allowed (setting max_contract_fields)"
        );
        let tight = ContractLimits {
            key_fields: 0,
            ..limits
        };
        assert_eq!(tight.check(&contract(1)).unwrap_err().part, "key");
    }
}
