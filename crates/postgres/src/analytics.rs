//! Aggregates and top-k computed in SQL (DESIGN §7) over the typed rows of
//! `record_measures` and `record_dimensions` (migration 0002): grouping reads the
//! `(dataset, dimension, value)` index, each record's measure is one primary-key
//! look-up, and no JSON is parsed until top-k returns its few records. Groups and ties
//! are ordered bytewise (`COLLATE "C"`), as the domain orders text.

use std::collections::BTreeMap;

use intake_domain::analytics::Aggregate;
use intake_domain::ports::{
    Analytics, AnalyticsError, AnalyticsQuery, GroupAggregate, TopQuery, TopRecord,
};
use sqlx::Row as _;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;

use crate::PgStore;
use crate::rows::json;

/// `AND EXISTS (…)` per filter on the record `g.key`; names and values are bound from
/// parameter `$first` on.
fn filter_sql(filters: &BTreeMap<String, String>, first: usize) -> String {
    (0..filters.len())
        .map(|i| {
            let (name, value) = (first + 2 * i, first + 2 * i + 1);
            format!(
                " AND EXISTS (SELECT 1 FROM record_dimensions f WHERE f.dataset = g.dataset \
                 AND f.key = g.key AND f.dimension = ${name} AND f.value = ${value})"
            )
        })
        .collect()
}

fn bind_filters<'q>(
    mut query: Query<'q, sqlx::Postgres, PgArguments>,
    filters: &'q BTreeMap<String, String>,
) -> Query<'q, sqlx::Postgres, PgArguments> {
    for (name, value) in filters {
        query = query.bind(name).bind(value);
    }
    query
}

fn failed(what: &'static str) -> impl Fn(sqlx::Error) -> AnalyticsError {
    move |e| AnalyticsError::Unexpected(anyhow::Error::new(e).context(what))
}

fn group_row(row: &PgRow, fractions: &[f64]) -> Result<GroupAggregate, sqlx::Error> {
    let count: i64 = row.try_get("n")?;
    let excluded: i64 = row.try_get("excluded")?;
    let aggregate = if count == 0 {
        None
    } else {
        let percentiles: Option<Vec<f64>> = row.try_get("pct")?;
        let mean: f64 = row.try_get("mean")?;
        Some(Aggregate {
            count: u64::try_from(count).unwrap_or(0),
            sum: row.try_get("sum")?,
            mean,
            stddev: row.try_get::<Option<f64>, _>("stddev")?.unwrap_or(0.0),
            min: row.try_get("min")?,
            max: row.try_get("max")?,
            percentiles: fractions
                .iter()
                .copied()
                .zip(percentiles.unwrap_or_default())
                .collect(),
        })
    };
    Ok(GroupAggregate {
        group: row.try_get("grp")?,
        aggregate,
        excluded: u64::try_from(excluded).unwrap_or(0),
    })
}

#[async_trait::async_trait]
impl Analytics for PgStore {
    async fn aggregate(
        &self,
        query: &AnalyticsQuery,
    ) -> Result<Vec<GroupAggregate>, AnalyticsError> {
        // $1 dataset, $2 measure, $3 fractions, [$4 group dimension], then filters.
        let statistics = "count(m.value) AS n, count(*) - count(m.value) AS excluded, \
             sum(m.value) AS sum, avg(m.value) AS mean, stddev_pop(m.value) AS stddev, \
             min(m.value) AS min, max(m.value) AS max, \
             percentile_cont($3::float8[]) WITHIN GROUP (ORDER BY m.value) AS pct";
        let join = "LEFT JOIN record_measures m \
             ON m.dataset = g.dataset AND m.key = g.key AND m.measure = $2";
        let sql = match &query.group_by {
            Some(_) => format!(
                "SELECT g.value AS grp, {statistics} FROM record_dimensions g {join} \
                 WHERE g.dataset = $1 AND g.dimension = $4{} \
                 GROUP BY g.value ORDER BY g.value COLLATE \"C\"",
                filter_sql(&query.filters, 5)
            ),
            None => format!(
                "SELECT NULL::text AS grp, {statistics} FROM records g {join} \
                 WHERE g.dataset = $1{} HAVING count(*) > 0",
                filter_sql(&query.filters, 4)
            ),
        };
        let mut statement = sqlx::query(&sql)
            .bind(query.dataset.as_str())
            .bind(&query.measure)
            .bind(&query.percentiles);
        if let Some(group_by) = &query.group_by {
            statement = statement.bind(group_by);
        }
        let rows = bind_filters(statement, &query.filters)
            .fetch_all(&self.pool)
            .await
            .map_err(failed("aggregating"))?;
        rows.iter()
            .map(|row| group_row(row, &query.percentiles))
            .collect::<Result<_, _>>()
            .map_err(failed("reading an aggregate"))
    }

    async fn top(&self, query: &TopQuery) -> Result<Vec<TopRecord>, AnalyticsError> {
        let sql = format!(
            "SELECT t.grp, t.value, r.record::text AS record FROM ( \
               SELECT g.value AS grp, m.value, g.key, row_number() OVER ( \
                 PARTITION BY g.value ORDER BY m.value DESC, g.key COLLATE \"C\") AS rank \
               FROM record_dimensions g JOIN record_measures m \
                 ON m.dataset = g.dataset AND m.key = g.key AND m.measure = $2 \
               WHERE g.dataset = $1 AND g.dimension = $3{} \
             ) t JOIN records r ON r.dataset = $1 AND r.key = t.key \
             WHERE t.rank <= $4 ORDER BY t.grp COLLATE \"C\", t.rank",
            filter_sql(&query.filters, 5)
        );
        let statement = sqlx::query(&sql)
            .bind(query.dataset.as_str())
            .bind(&query.measure)
            .bind(&query.group_by)
            .bind(i64::from(query.k));
        let rows = bind_filters(statement, &query.filters)
            .fetch_all(&self.pool)
            .await
            .map_err(failed("ranking"))?;
        rows.iter()
            .map(|row| {
                Ok(TopRecord {
                    group: row.try_get("grp").map_err(failed("reading a ranking"))?,
                    score: row.try_get("value").map_err(failed("reading a ranking"))?,
                    record: json(row, "record").map_err(AnalyticsError::Unexpected)?,
                })
            })
            .collect()
    }
}
