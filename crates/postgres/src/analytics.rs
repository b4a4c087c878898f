//! Aggregates and top-k computed in SQL (DESIGN §7) over the typed rows of migration
//! 0002. A question is read under one dimension: the one grouped by, else the first
//! one filtered on, else the pseudo dimension `''` that holds every record. Its facts
//! (one row per record and measure under that dimension) are one index-only scan on
//! `(dataset, dimension, measure, dim_value)`; filters on other dimensions are
//! `EXISTS` probes of `record_dimensions`, which also counts each group's records so
//! that those without the measure are reported as excluded. No JSON is parsed until
//! top-k reads its winners. Groups and ties sort bytewise, as the domain sorts text.

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

/// A statement's text and its arguments, numbered as they are added.
#[derive(Default)]
struct Statement<'a> {
    sql: String,
    args: Vec<Arg<'a>>,
}

enum Arg<'a> {
    Text(&'a str),
    Floats(&'a [f64]),
    Int(i64),
}

impl<'a> Statement<'a> {
    /// Appends `text`, with each `?` replaced by the next argument's `$n`.
    fn push(&mut self, text: &str, args: impl IntoIterator<Item = Arg<'a>>) -> &mut Self {
        let mut args = args.into_iter();
        for (i, part) in text.split('?').enumerate() {
            if i > 0 {
                if let Some(arg) = args.next() {
                    self.args.push(arg);
                }
                self.sql.push_str(&format!("${}", self.args.len()));
            }
            self.sql.push_str(part);
        }
        self
    }

    fn query(&self) -> Query<'_, sqlx::Postgres, PgArguments> {
        self.args
            .iter()
            .fold(sqlx::query(&self.sql), |q, arg| match arg {
                Arg::Text(t) => q.bind(*t),
                Arg::Floats(f) => q.bind(*f),
                Arg::Int(i) => q.bind(*i),
            })
    }
}

/// The dimension a question is read under, the value a filter fixes it to, and the
/// other filters.
struct Plan<'q> {
    dimension: &'q str,
    fixed: Option<&'q str>,
    others: Vec<(&'q str, &'q str)>,
}

impl<'q> Plan<'q> {
    fn new(group_by: Option<&'q str>, filters: &'q BTreeMap<String, String>) -> Self {
        let Some(dimension) = group_by.or_else(|| filters.keys().next().map(String::as_str)) else {
            return Self {
                dimension: "",
                fixed: None,
                others: Vec::new(),
            };
        };
        Self {
            dimension,
            fixed: filters.get(dimension).map(String::as_str),
            others: filters
                .iter()
                .filter(|(name, _)| name.as_str() != dimension)
                .map(|(name, value)| (name.as_str(), value.as_str()))
                .collect(),
        }
    }

    /// `AND …` for the fixed value (of column `value_column`) and the other filters, on
    /// the rows `g`.
    fn conditions(&self, statement: &mut Statement<'q>, value_column: &str) {
        if let Some(value) = self.fixed {
            statement.push(&format!(" AND g.{value_column} = ?"), [Arg::Text(value)]);
        }
        for (name, value) in &self.others {
            statement.push(
                " AND EXISTS (SELECT 1 FROM record_dimensions f WHERE f.dataset = g.dataset \
                 AND f.key = g.key AND f.dimension = ? AND f.value = ?)",
                [Arg::Text(name), Arg::Text(value)],
            );
        }
    }
}

fn failed(what: &'static str) -> impl Fn(sqlx::Error) -> AnalyticsError {
    move |e| AnalyticsError::Unexpected(anyhow::Error::new(e).context(what))
}

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

#[async_trait::async_trait]
impl Analytics for PgStore {
    async fn aggregate(
        &self,
        query: &AnalyticsQuery,
    ) -> Result<Vec<GroupAggregate>, AnalyticsError> {
        let plan = Plan::new(query.group_by.as_deref(), &query.filters);
        let dataset = query.dataset.as_str();

        let mut facts = Statement::default();
        facts.push(
            "SELECT g.dim_value AS grp, count(*) AS n, sum(g.value) AS sum, \
             avg(g.value) AS mean, stddev_pop(g.value) AS stddev, min(g.value) AS min, \
             max(g.value) AS max, \
             percentile_cont(?::float8[]) WITHIN GROUP (ORDER BY g.value) AS pct \
             FROM record_facts g WHERE g.dataset = ? AND g.dimension = ? AND g.measure = ?",
            [
                Arg::Floats(&query.percentiles),
                Arg::Text(dataset),
                Arg::Text(plan.dimension),
                Arg::Text(&query.measure),
            ],
        );
        plan.conditions(&mut facts, "dim_value");
        facts.push(" GROUP BY g.dim_value", []);

        let mut records = Statement::default();
        if plan.dimension.is_empty() {
            records.push(
                "SELECT '' AS grp, count(*) AS total FROM records g WHERE g.dataset = ?",
                [Arg::Text(dataset)],
            );
        } else {
            records.push(
                "SELECT g.value AS grp, count(*) AS total FROM record_dimensions g \
                 WHERE g.dataset = ? AND g.dimension = ?",
                [Arg::Text(dataset), Arg::Text(plan.dimension)],
            );
            plan.conditions(&mut records, "value");
            records.push(" GROUP BY g.value", []);
        }

        let (facts, records) = futures_lite::future::zip(
            self.fetch_all_bounded(facts.query()),
            self.fetch_all_bounded(records.query()),
        )
        .await;
        let facts = facts.map_err(failed("aggregating"))?;
        let records = records.map_err(failed("counting a group's records"))?;
        let mut stats: BTreeMap<String, Aggregate> = BTreeMap::new();
        for row in &facts {
            let group: String = row.try_get("grp").map_err(failed("reading an aggregate"))?;
            let aggregate =
                statistics(row, &query.percentiles).map_err(failed("reading an aggregate"))?;
            stats.insert(group, aggregate);
        }
        let mut totals: BTreeMap<String, u64> = BTreeMap::new();
        for row in &records {
            let group: String = row.try_get("grp").map_err(failed("reading a count"))?;
            let total: i64 = row.try_get("total").map_err(failed("reading a count"))?;
            totals.insert(group, u64::try_from(total).unwrap_or(0));
        }
        Ok(totals
            .into_iter()
            .filter(|(_, total)| *total > 0)
            .map(|(group, total)| {
                let aggregate = stats.remove(&group);
                let counted = aggregate.as_ref().map_or(0, |a| a.count);
                GroupAggregate {
                    group: query.group_by.as_ref().map(|_| group),
                    excluded: total.saturating_sub(counted),
                    aggregate,
                }
            })
            .collect())
    }

    async fn top(&self, query: &TopQuery) -> Result<Vec<TopRecord>, AnalyticsError> {
        let plan = Plan::new(Some(&query.group_by), &query.filters);
        let mut ranked = Statement::default();
        ranked.push(
            "SELECT t.grp, t.value, r.record::text AS record FROM ( \
               SELECT g.dim_value AS grp, g.value, g.key, row_number() OVER ( \
                 PARTITION BY g.dim_value ORDER BY g.value DESC, g.key COLLATE \"C\") AS rank \
               FROM record_facts g \
               WHERE g.dataset = ? AND g.dimension = ? AND g.measure = ?",
            [
                Arg::Text(query.dataset.as_str()),
                Arg::Text(plan.dimension),
                Arg::Text(&query.measure),
            ],
        );
        plan.conditions(&mut ranked, "dim_value");
        ranked.push(
            ") t JOIN records r ON r.dataset = $1 AND r.key = t.key \
             WHERE t.rank <= ? ORDER BY t.grp COLLATE \"C\", t.rank",
            [Arg::Int(i64::from(query.k))],
        );
        let rows = self
            .fetch_all_bounded(ranked.query())
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
