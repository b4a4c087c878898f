//! The in-process analytics engine: pages through a dataset's latest state with the
//! record store's keyset scan and computes with the maths of this module. It is the
//! engine of stores without one of their own (SQLite's top-k) and the reference the
//! SQL engines are checked against.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{Aggregate, TopK};
use crate::model::{DatasetName, Record};
use crate::ports::{
    Analytics, AnalyticsError, AnalyticsQuery, GroupAggregate, RecordScan, RecordStore, StoreError,
    TopQuery, TopRecord,
};

/// Records read per page of the scan.
const PAGE: u32 = 2_000;

/// Analytics computed in Rust over a [`RecordStore`]. Memory: one `f64` per value of
/// each group for aggregates (exact percentiles need them all), `k` records per group
/// for top-k, plus one page of records.
pub struct InProcessAnalytics {
    records: Arc<dyn RecordStore>,
}

impl InProcessAnalytics {
    /// An engine over this store.
    pub fn new(records: Arc<dyn RecordStore>) -> Self {
        Self { records }
    }

    /// Calls `visit` with every record matching `filters`, a page at a time.
    async fn each(
        &self,
        dataset: &DatasetName,
        filters: &BTreeMap<String, String>,
        mut visit: impl FnMut(Record),
    ) -> Result<(), AnalyticsError> {
        let mut scan = RecordScan {
            filters: crate::ports::RecordFilter::equal_to(filters),
            after: None,
            limit: PAGE,
        };
        loop {
            let page = self
                .records
                .scan(dataset, &scan)
                .await
                .map_err(|e| match e {
                    StoreError::Unexpected(e) => AnalyticsError::Unexpected(e),
                    other => AnalyticsError::Unexpected(anyhow::Error::new(other)),
                })?;
            let full = page.len() == PAGE as usize;
            scan.after = page.last().map(|r| r.key.canonical());
            page.into_iter().for_each(&mut visit);
            if !full {
                return Ok(());
            }
        }
    }
}

/// The group a record falls in: `Some(None)` without grouping, `None` when the record
/// lacks the grouping dimension (it belongs to no group).
fn group_of(record: &Record, group_by: Option<&str>) -> Option<Option<String>> {
    match group_by {
        None => Some(None),
        Some(dimension) => record.dimensions.get(dimension).map(|v| Some(v.to_owned())),
    }
}

#[async_trait::async_trait]
impl Analytics for InProcessAnalytics {
    async fn aggregate(
        &self,
        query: &AnalyticsQuery,
    ) -> Result<Vec<GroupAggregate>, AnalyticsError> {
        let mut groups: BTreeMap<Option<String>, (Vec<f64>, u64)> = BTreeMap::new();
        self.each(&query.dataset, &query.filters, |record| {
            let Some(group) = group_of(&record, query.group_by.as_deref()) else {
                return;
            };
            let (values, excluded) = groups.entry(group).or_default();
            match record.measures.get(&query.measure) {
                Some(value) => values.push(value),
                None => *excluded += 1,
            }
        })
        .await?;
        groups
            .into_iter()
            .map(|(group, (values, excluded))| {
                let aggregate = Aggregate::compute(values, &query.percentiles)
                    .map_err(|e| AnalyticsError::Unexpected(anyhow::Error::new(e)))?;
                Ok(GroupAggregate {
                    group,
                    aggregate,
                    excluded,
                })
            })
            .collect()
    }

    async fn top(&self, query: &TopQuery) -> Result<Vec<TopRecord>, AnalyticsError> {
        let k = usize::try_from(query.k).unwrap_or(usize::MAX);
        let mut groups: BTreeMap<String, TopK<Record>> = BTreeMap::new();
        self.each(&query.dataset, &query.filters, |record| {
            let Some(Some(group)) = group_of(&record, Some(&query.group_by)) else {
                return;
            };
            let Some(score) = record.measures.get(&query.measure) else {
                return;
            };
            let tie = record.key.canonical();
            groups
                .entry(group)
                .or_insert_with(|| TopK::new(k))
                .push(score, tie, record);
        })
        .await?;
        Ok(groups
            .into_iter()
            .flat_map(|(group, top)| {
                top.into_sorted()
                    .into_iter()
                    .map(move |(score, record)| TopRecord {
                        group: group.clone(),
                        score,
                        record,
                    })
            })
            .collect())
    }
}
