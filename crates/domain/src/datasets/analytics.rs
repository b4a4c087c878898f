//! Aggregates and top-k over a dataset's latest state (DESIGN §7): the question is
//! checked against the current contract, answered by the [`Analytics`] engine, and
//! cached under the dataset's revision, so a committed import makes new answers
//! visible at once and a failing cache only costs speed.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{DatasetError, DatasetService};
use crate::model::DatasetName;
use crate::ports::{
    AnalyticsError, AnalyticsQuery, CacheKey, Dataset, GroupAggregate, TopQuery, TopRecord,
};

/// The largest `k` a top-k question may ask for.
pub const MAX_TOP_K: u32 = 1000;

impl DatasetService {
    /// Aggregates of a measure per group. Groups are ordered by value (bytewise); a
    /// group whose records all lack the measure (an undefined ratio) has no aggregate
    /// and counts them as excluded.
    ///
    /// # Errors
    /// `UnknownDataset`; `UnknownMeasure`, `UnknownDimension` for names that are not
    /// in the current contract; `InvalidQuery` for a percentile outside `[0, 1]`.
    pub async fn aggregate(
        &self,
        query: &AnalyticsQuery,
    ) -> Result<Vec<GroupAggregate>, DatasetError> {
        if let Some(bad) = query.percentiles.iter().find(|f| !(0.0..=1.0).contains(*f)) {
            return Err(DatasetError::InvalidQuery {
                field: "percentiles".into(),
                message: format!("percentile {bad} is outside [0, 1]"),
            });
        }
        let dataset = self
            .checked(
                &query.dataset,
                &query.measure,
                query.group_by.iter().chain(query.filters.keys()),
            )
            .await?;
        if query.filters.values().any(|v| v.contains('\0')) {
            return Ok(Vec::new());
        }
        let key = cache_key(&dataset, "aggregate", query);
        self.cached(key, || self.ports.analytics.aggregate(query))
            .await
    }

    /// The `k` records with the highest value of a measure in each group, highest
    /// first, ties by canonical key; records without the measure are left out.
    ///
    /// # Errors
    /// As [`DatasetService::aggregate`]; `InvalidQuery` for `k` outside
    /// `1..=`[`MAX_TOP_K`].
    pub async fn top(&self, query: &TopQuery) -> Result<Vec<TopRecord>, DatasetError> {
        if !(1..=MAX_TOP_K).contains(&query.k) {
            return Err(DatasetError::InvalidQuery {
                field: "k".into(),
                message: format!("k must be between 1 and {MAX_TOP_K}"),
            });
        }
        let dimensions = std::iter::once(&query.group_by).chain(query.filters.keys());
        let dataset = self
            .checked(&query.dataset, &query.measure, dimensions)
            .await?;
        if query.filters.values().any(|v| v.contains('\0')) {
            return Ok(Vec::new());
        }
        let key = cache_key(&dataset, "top", query);
        self.cached(key, || self.ports.analytics.top(query)).await
    }

    /// The dataset, once the measure and dimensions are known to its current contract.
    async fn checked(
        &self,
        name: &DatasetName,
        measure: &str,
        mut dimensions: impl Iterator<Item = &String>,
    ) -> Result<Dataset, DatasetError> {
        let (dataset, published) = self.current(name).await?;
        let contract = &published.contract;
        if !contract.measure_names().any(|m| m == measure) {
            return Err(DatasetError::UnknownMeasure {
                name: measure.to_owned(),
                measures: contract.measure_names().map(str::to_owned).collect(),
            });
        }
        let known = contract.dimensions();
        if let Some(unknown) = dimensions.find(|d| !known.contains(d)) {
            return Err(DatasetError::UnknownDimension {
                name: unknown.clone(),
                dimensions: known.to_vec(),
            });
        }
        Ok(dataset)
    }

    /// The cached answer under `key`, or the computed one, which is then cached. An
    /// entry that no longer reads is a miss.
    async fn cached<T, F>(
        &self,
        key: CacheKey,
        compute: impl FnOnce() -> F,
    ) -> Result<Vec<T>, DatasetError>
    where
        T: Serialize + DeserializeOwned,
        F: Future<Output = Result<Vec<T>, AnalyticsError>>,
    {
        if let Some(bytes) = self.ports.cache.get(&key).await {
            match serde_json::from_slice(&bytes) {
                Ok(answer) => return Ok(answer),
                Err(e) => {
                    tracing::warn!(key = %key, error = %e, "ignoring an unreadable cache entry")
                }
            }
        }
        let answer = compute().await.map_err(|e| match e {
            AnalyticsError::NotFound => DatasetError::UnknownDataset,
            AnalyticsError::Unknown(name) => DatasetError::InvalidQuery {
                field: name,
                message: "not in the dataset's contract".into(),
            },
            AnalyticsError::Unexpected(e) => DatasetError::Unexpected(e),
        })?;
        match serde_json::to_vec(&answer) {
            Ok(bytes) => self.ports.cache.put(&key, bytes).await,
            Err(e) => tracing::warn!(key = %key, error = %e, "not caching an answer"),
        }
        Ok(answer)
    }
}

/// `kind:`, when the dataset was created, and the question as JSON (maps are ordered,
/// so equal questions give equal text), under the dataset's revision. The creation
/// time keeps a dataset created again under the same name (a fresh database beside a
/// shared cache) from meeting the old one's answers.
fn cache_key(dataset: &Dataset, kind: &str, question: &impl Serialize) -> CacheKey {
    let text = serde_json::to_string(question).unwrap_or_default();
    let created = dataset.created_at.timestamp_micros();
    CacheKey {
        dataset: dataset.name.clone(),
        revision: dataset.revision,
        query: format!("{kind}:{created}:{text}"),
    }
}

#[cfg(test)]
mod tests;
