//! Aggregates and top-k over a dataset's latest state (DESIGN §7): the question is
//! checked against the current contract and answered by the [`Analytics`] engine.
//! Routes cache what they send ([`DatasetService::rendered`]) under the dataset's
//! revision and current contract, so a committed import makes new answers visible at
//! once, a cached answer is sent as the bytes it was, and a failing cache only costs
//! speed.

use serde::Serialize;

use super::flights::Turn;
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
        self.checked(
            &query.dataset,
            &query.measure,
            query.group_by.iter().chain(query.filters.keys()),
        )
        .await?;
        if query.filters.values().any(|v| v.contains('\0')) {
            return Ok(Vec::new());
        }
        self.ports
            .analytics
            .aggregate(query)
            .await
            .map_err(analytics)
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
        self.checked(&query.dataset, &query.measure, dimensions)
            .await?;
        if query.filters.values().any(|v| v.contains('\0')) {
            return Ok(Vec::new());
        }
        self.ports.analytics.top(query).await.map_err(analytics)
    }

    /// Whether the measure and dimensions are known to the dataset's current contract.
    pub(crate) async fn checked(
        &self,
        name: &DatasetName,
        measure: &str,
        mut dimensions: impl Iterator<Item = &String>,
    ) -> Result<(), DatasetError> {
        let (_, published) = self.current(name).await?;
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
        Ok(())
    }

    /// What a route sends for `question` about `name` (the whole request that shapes
    /// the answer), cached under `kind`, the dataset's revision and its current
    /// contract: the same question at the same revision is sent as the bytes it was,
    /// neither computed nor rendered again. `render` computes and renders it on a
    /// miss; what fails is not cached. Requests missing the same answer at once wait
    /// for the first one's (`flights`): it is computed once.
    ///
    /// # Errors
    /// `UnknownDataset`, and whatever `render` fails with.
    pub async fn rendered<E, F, Fut>(
        &self,
        name: &DatasetName,
        kind: &str,
        question: &impl Serialize,
        render: F,
    ) -> Result<Vec<u8>, E>
    where
        E: From<DatasetError>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<u8>, E>>,
    {
        let dataset = self.dataset(name).await?;
        let key = cache_key(&dataset, kind, question);
        if let Some(bytes) = self.ports.cache.get(&key).await {
            return Ok(bytes);
        }
        // One computation per answer at a time (see `flights`).
        let leader = match self.flights.board(&key) {
            Turn::Lead(leader) => Some(leader),
            Turn::Wait(flight) => match flight.landed().await {
                Some(bytes) => return Ok(bytes),
                None => None,
            },
        };
        let bytes = render().await?;
        if let Some(leader) = &leader {
            leader.answer(&bytes);
        }
        self.ports.cache.put(&key, bytes.clone()).await;
        Ok(bytes)
    }
}

fn analytics(e: AnalyticsError) -> DatasetError {
    match e {
        AnalyticsError::NotFound => DatasetError::UnknownDataset,
        AnalyticsError::Unknown(name) => DatasetError::InvalidQuery {
            field: name,
            message: "not in the dataset's contract".into(),
        },
        AnalyticsError::Unexpected(e) => DatasetError::Unexpected(e),
    }
}

/// `kind:`, when the dataset was created, its current contract, and the question as
/// JSON (maps are ordered, so equal questions give equal text), under the dataset's
/// revision. The creation time keeps a dataset created again under the same name (a
/// fresh database beside a shared cache) from meeting the old one's answers; the
/// contract, a question the new contract refuses from meeting an old answer.
fn cache_key(dataset: &Dataset, kind: &str, question: &impl Serialize) -> CacheKey {
    let text = serde_json::to_string(question).unwrap_or_default();
    let created = dataset.created_at.timestamp_micros();
    let contract = dataset.current_contract.get();
    CacheKey {
        dataset: dataset.name.clone(),
        revision: dataset.revision,
        query: format!("{kind}:{created}:{contract}:{text}"),
    }
}

#[cfg(test)]
mod tests;
