use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::analytics::Aggregate;
use crate::model::{DatasetName, Record, Revision};

/// An aggregate question: one measure, grouped by a dimension, filtered by dimensions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnalyticsQuery {
    /// The dataset.
    pub dataset: DatasetName,
    /// The measure aggregated.
    pub measure: String,
    /// The dimension to group by (`None`: one group of everything).
    pub group_by: Option<String>,
    /// `dimension = value` filters.
    pub filters: BTreeMap<String, String>,
    /// Percentile fractions wanted.
    pub percentiles: Vec<f64>,
}

/// The aggregate of one group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupAggregate {
    /// The group's dimension value (`None` without grouping).
    pub group: Option<String>,
    /// The statistics; `None` when every record of the group was excluded.
    pub aggregate: Option<Aggregate>,
    /// Records of the group without this measure (an undefined ratio), left out.
    pub excluded: u64,
}

/// A top-k question.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopQuery {
    /// The dataset.
    pub dataset: DatasetName,
    /// The measure ranked.
    pub measure: String,
    /// The dimension to group by.
    pub group_by: String,
    /// `dimension = value` filters.
    pub filters: BTreeMap<String, String>,
    /// How many per group.
    pub k: u32,
}

/// One record of a top-k answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopRecord {
    /// The group.
    pub group: String,
    /// The measure's value.
    pub score: f64,
    /// The record.
    pub record: Record,
}

/// Errors of analytics.
#[derive(Debug, thiserror::Error)]
pub enum AnalyticsError {
    /// No such dataset.
    #[error("dataset not found")]
    NotFound,
    /// The measure or dimension is not in the dataset's contract.
    #[error("unknown measure or dimension: {0}")]
    Unknown(String),
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Aggregates and top-k over a dataset's latest state. Adapters MUST give the same
/// answers to 1e-9 (the maths of [`crate::analytics`] is the reference).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait::async_trait]
pub trait Analytics: Send + Sync {
    /// Aggregates per group, ordered by group value; empty groups do not appear.
    ///
    /// # Errors
    /// - `NotFound`, `Unknown` as above.
    async fn aggregate(
        &self,
        query: &AnalyticsQuery,
    ) -> Result<Vec<GroupAggregate>, AnalyticsError>;

    /// The top `k` records per group by measure, highest first; ties by canonical key.
    ///
    /// # Errors
    /// - `NotFound`, `Unknown` as above.
    async fn top(&self, query: &TopQuery) -> Result<Vec<TopRecord>, AnalyticsError>;
}

/// What a cached answer is filed under: the dataset's revision is part of it, so a
/// committed import makes new answers visible without a purge.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    /// The dataset.
    pub dataset: DatasetName,
    /// Its revision when the answer was computed.
    pub revision: Revision,
    /// A canonical text of the question.
    pub query: String,
}

impl std::fmt::Display for CacheKey {
    /// `dataset:revision:query`, the key adapters store under (after their prefix).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.dataset, self.revision.get(), self.query)
    }
}

/// A best-effort cache of serialized answers. Adapters own the size bound, expiry and
/// key prefix. It never fails a request: errors and timeouts are logged by the adapter
/// and surface as a miss (`None`) or a dropped write.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait::async_trait]
pub trait Cache: Send + Sync {
    /// The value stored under `key`, or `None` (a miss, or the cache is failing).
    async fn get(&self, key: &CacheKey) -> Option<Vec<u8>>;

    /// Stores a value under `key`, replacing any; failures are swallowed.
    async fn put(&self, key: &CacheKey, value: Vec<u8>);
}

/// A cache that keeps nothing: every read is a miss. For a service run with caching
/// off, and for tests of the engines alone.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoCache;

#[async_trait::async_trait]
impl Cache for NoCache {
    async fn get(&self, _: &CacheKey) -> Option<Vec<u8>> {
        None
    }

    async fn put(&self, _: &CacheKey, _: Vec<u8>) {}
}
