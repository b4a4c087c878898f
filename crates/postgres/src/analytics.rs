//! Aggregates and top-k computed in SQL (DESIGN §7) over the dataset's typed table
//! (ADR 22): grouped by a dimension's column, whose index includes every measure, so
//! a question is one index scan and no JSON is parsed until top-k reads its winners.
//! A record without the measure counts towards its group's total and is reported as
//! excluded. Groups and ties sort bytewise (the columns' collation is "C"), as the
//! domain sorts text.

use intake_domain::analytics::Aggregate;
use intake_domain::ports::{
    Analytics, AnalyticsError, AnalyticsQuery, GroupAggregate, RecordFilter, TopQuery, TopRecord,
};
use sqlx::Row as _;
use sqlx::postgres::PgRow;

use std::sync::Arc;

use intake_domain::DatasetName;

use crate::PgStore;
use crate::layout::{Kind, Layout};

fn failed(what: &'static str) -> impl Fn(sqlx::Error) -> AnalyticsError {
    move |e| AnalyticsError::Unexpected(anyhow::Error::new(e).context(what))
}

/// The statistics of a row with at least one value (`n > 0`).
fn statistics(row: &PgRow, fractions: &[f64]) -> Result<Aggregate, sqlx::Error> {
    let count: i64 = row.try_get("n")?;
    let percentiles: Option<Vec<f64>> = row.try_get("pct")?;
    Ok(Aggregate {
        count: u64::try_from(count).unwrap_or(0),
        sum: row.try_get("sum")?,
        mean: row.try_get("mean")?,
        stddev: row.try_get::<Option<f64>, _>("stddev")?.unwrap_or(0.0),
        min: row.try_get("min")?,
        max: row.try_get("max")?,
        percentiles: fractions
            .iter()
            .copied()
            .zip(percentiles.unwrap_or_default())
            .collect(),
    })
}

/// The dataset's layout for a question (`None`: no such dataset), read again when
/// the cached one lacks a field it names.
async fn layout<'q>(
    store: &PgStore,
    dataset: &DatasetName,
    measure: &'q str,
    group_by: Option<&'q str>,
    filters: impl Iterator<Item = &'q String>,
) -> Result<Option<Arc<Layout>>, AnalyticsError> {
    let dimensions = group_by
        .into_iter()
        .chain(filters.map(String::as_str))
        .map(|d| (Kind::Dimension, d));
    let named: Vec<(Kind, &str)> = std::iter::once((Kind::Measure, measure))
        .chain(dimensions)
        .collect();
    store
        .layout(dataset.as_str(), &named)
        .await
        .map_err(failed("reading the dataset's columns"))
}

#[async_trait::async_trait]
impl Analytics for PgStore {
    async fn aggregate(
        &self,
        query: &AnalyticsQuery,
    ) -> Result<Vec<GroupAggregate>, AnalyticsError> {
        let found = layout(
            self,
            &query.dataset,
            &query.measure,
            query.group_by.as_deref(),
            query.filters.keys(),
        );
        let Some(layout) = found.await? else {
            return Ok(Vec::new());
        };
        // A dimension no version declared has no value in any record: no group.
        let group = match &query.group_by {
            None => None,
            Some(name) => match layout.dimension(name) {
                Some(column) => Some(column),
                None => return Ok(Vec::new()),
            },
        };
        let value = layout.measure(&query.measure).unwrap_or("NULL::float8");
        let (conditions, values) = layout.filters(&RecordFilter::equal_to(&query.filters), 2);
        let sql = format!(
            "SELECT {grp} AS grp, count(*) AS total, count({value}) AS n, sum({value}) AS sum, \
             avg({value}) AS mean, stddev_pop({value}) AS stddev, min({value}) AS min, \
             max({value}) AS max, \
             percentile_cont($1::float8[]) WITHIN GROUP (ORDER BY {value}) AS pct \
             FROM {table} WHERE {present}{conditions} GROUP BY 1",
            grp = group.unwrap_or("''::text"),
            table = layout.table,
            present = group.map_or("true".to_owned(), |g| format!("{g} IS NOT NULL")),
        );
        let statement = values
            .iter()
            .fold(sqlx::query(&sql).bind(&query.percentiles), |q, v| {
                q.bind(v.as_str())
            });
        let rows = self
            .fetch_all_bounded(statement)
            .await
            .map_err(failed("aggregating"))?;
        let mut groups = rows
            .iter()
            .map(|row| {
                let name: String = row.try_get("grp")?;
                let total: i64 = row.try_get("total")?;
                let n: i64 = row.try_get("n")?;
                let aggregate = if n > 0 {
                    Some(statistics(row, &query.percentiles)?)
                } else {
                    None
                };
                Ok(GroupAggregate {
                    group: query.group_by.as_ref().map(|_| name),
                    excluded: u64::try_from(total - n).unwrap_or(0),
                    aggregate,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(failed("reading an aggregate"))?;
        groups.sort_by(|a, b| a.group.cmp(&b.group));
        Ok(groups)
    }

    async fn top(&self, query: &TopQuery) -> Result<Vec<TopRecord>, AnalyticsError> {
        let found = layout(
            self,
            &query.dataset,
            &query.measure,
            Some(&query.group_by),
            query.filters.keys(),
        );
        let Some(layout) = found.await? else {
            return Ok(Vec::new());
        };
        let (Some(group), Some(value)) = (
            layout.dimension(&query.group_by),
            layout.measure(&query.measure),
        ) else {
            return Ok(Vec::new());
        };
        let (conditions, values) = layout.filters(&RecordFilter::equal_to(&query.filters), 1);
        let sql = format!(
            "SELECT t.grp, t.value, r.record::text AS record FROM ( \
               SELECT {group} AS grp, {value} AS value, key, row_number() OVER ( \
                 PARTITION BY {group} ORDER BY {value} DESC, key) AS rank \
               FROM {table} \
               WHERE {group} IS NOT NULL AND {value} IS NOT NULL{conditions} \
             ) t JOIN {table} r ON r.key = t.key \
             WHERE t.rank <= ${k} ORDER BY t.grp, t.rank",
            table = layout.table,
            k = values.len() + 1,
        );
        let statement = values
            .iter()
            .fold(sqlx::query(&sql), |q, v| q.bind(v.as_str()))
            .bind(i64::from(query.k));
        let rows = self
            .fetch_all_bounded(statement)
            .await
            .map_err(failed("ranking"))?;
        rows.iter()
            .map(|row| {
                Ok(TopRecord {
                    group: row.try_get("grp").map_err(failed("reading a ranking"))?,
                    score: row.try_get("value").map_err(failed("reading a ranking"))?,
                    record: crate::rows::record(row, "record")
                        .map_err(AnalyticsError::Unexpected)?,
                })
            })
            .collect()
    }
}
