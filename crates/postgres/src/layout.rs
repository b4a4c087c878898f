//! Each dataset's latest state is its own typed table (ADR 22): `records_<id>` with the
//! canonical key as primary key, the record as `json`, and a column per dimension
//! (`d1`, `d2`, … `text`) and measure (`m1`, … `float8`) that any contract version of
//! the dataset declared. Columns are named by position because field names may be
//! longer than PostgreSQL identifiers; `dataset_fields` maps names to columns. Each
//! dimension has an index that includes every measure, so an aggregate or top-k by a
//! dimension is one index scan and never parses JSON.
//!
//! Columns are only ever added (a record imported under an older version keeps its
//! values), by a contract's publication or, should a record carry a field no version
//! declared, by the import that writes it. A [`Layout`] read once is cached: a name it
//! lacks makes the next lookup read the catalog again (a contract published since, by
//! this instance or another).

use std::collections::HashMap;

use intake_domain::ports::RecordFilter;
use std::sync::{Arc, RwLock};

use sqlx::{PgConnection, Row as _};

/// Measures an index includes beside its dimension (PostgreSQL allows 32 columns).
const MAX_INCLUDED: usize = 31;

/// What a field of a record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Dimension,
    Measure,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Dimension => "dimension",
            Kind::Measure => "measure",
        }
    }

    fn prefix(self) -> char {
        match self {
            Kind::Dimension => 'd',
            Kind::Measure => 'm',
        }
    }

    fn sql_type(self) -> &'static str {
        match self {
            Kind::Dimension => "text COLLATE \"C\"",
            Kind::Measure => "float8",
        }
    }
}

/// A dataset's typed table and its columns, in the order they were added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    /// `records_<id>`: ids are numbers, so the name needs no quoting.
    pub(crate) table: String,
    /// `(name, column)` per dimension.
    pub(crate) dimensions: Vec<(String, String)>,
    /// `(name, column)` per measure.
    pub(crate) measures: Vec<(String, String)>,
}

impl Layout {
    fn columns(&self, kind: Kind) -> &[(String, String)] {
        match kind {
            Kind::Dimension => &self.dimensions,
            Kind::Measure => &self.measures,
        }
    }

    fn column(&self, kind: Kind, name: &str) -> Option<&str> {
        self.columns(kind)
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, c)| c.as_str())
    }

    /// The column of a dimension, if any version declared it.
    pub(crate) fn dimension(&self, name: &str) -> Option<&str> {
        self.column(Kind::Dimension, name)
    }

    /// The column of a measure, if any version declared it.
    pub(crate) fn measure(&self, name: &str) -> Option<&str> {
        self.column(Kind::Measure, name)
    }

    pub(crate) fn has(&self, fields: &[(Kind, &str)]) -> bool {
        fields
            .iter()
            .all(|(kind, name)| self.column(*kind, name).is_some())
    }

    /// The statement that indexes a dimension's column with every measure included, up
    /// to PostgreSQL's 32 columns an index: measures past the 31st are read from the
    /// table.
    fn index_statement(&self, column: &str) -> String {
        let measures: Vec<&str> = self
            .measures
            .iter()
            .take(MAX_INCLUDED)
            .map(|(_, c)| c.as_str())
            .collect();
        let include = if measures.is_empty() {
            String::new()
        } else {
            format!(" INCLUDE ({})", measures.join(", "))
        };
        format!(
            "CREATE INDEX {t}_{column} ON {t} ({column}){include}",
            t = self.table
        )
    }
}

impl Layout {
    /// `AND col IN ($n, …) …` for the filter's dimensions and `AND updated_at >= $n`
    /// for its time, numbering parameters from `first`, and the values to bind in order
    /// (the time as RFC 3339 text, cast in SQL). A dimension no version declared
    /// matches nothing, as no record has it.
    pub(crate) fn filters(&self, filter: &RecordFilter, first: usize) -> (String, Vec<String>) {
        let mut sql = String::new();
        let mut values: Vec<String> = Vec::new();
        for (name, accepted) in &filter.dimensions {
            match self.dimension(name) {
                Some(column) if !accepted.is_empty() => {
                    let mut params = Vec::with_capacity(accepted.len());
                    for value in accepted {
                        values.push(value.clone());
                        params.push(format!("${}", first + values.len() - 1));
                    }
                    sql.push_str(&format!(" AND {column} IN ({})", params.join(", ")));
                }
                _ => sql.push_str(" AND false"),
            }
        }
        if let Some(since) = filter.updated_since {
            values.push(since.to_rfc3339());
            sql.push_str(&format!(
                " AND updated_at >= ${}::timestamptz",
                first + values.len() - 1
            ));
        }
        (sql, values)
    }
}

/// Reads a dataset's layout; `None` when there is no such dataset (or it was deleted:
/// its table is gone).
async fn read(conn: &mut PgConnection, dataset: &str) -> Result<Option<Layout>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT d.id, f.kind, f.name, f.col FROM datasets d \
         LEFT JOIN dataset_fields f ON f.dataset = d.name \
         WHERE d.name = $1 AND d.deleted_at IS NULL ORDER BY f.kind, length(f.col), f.col",
    )
    .bind(dataset)
    .fetch_all(conn)
    .await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let id: i64 = first.try_get("id")?;
    let mut layout = Layout {
        table: format!("records_{id}"),
        dimensions: Vec::new(),
        measures: Vec::new(),
    };
    for row in &rows {
        let kind: Option<String> = row.try_get("kind")?;
        let name: Option<String> = row.try_get("name")?;
        let column: Option<String> = row.try_get("col")?;
        let (Some(kind), Some(name), Some(column)) = (kind, name, column) else {
            continue;
        };
        match kind.as_str() {
            "dimension" => layout.dimensions.push((name, column)),
            _ => layout.measures.push((name, column)),
        }
    }
    Ok(Some(layout))
}

/// Creates a new dataset's (empty) typed table; [`ensure`] then adds its columns.
pub(crate) async fn create(conn: &mut PgConnection, dataset: &str) -> Result<(), sqlx::Error> {
    let id: i64 = sqlx::query_scalar("SELECT id FROM datasets WHERE name = $1")
        .bind(dataset)
        .fetch_one(&mut *conn)
        .await?;
    sqlx::query(&format!(
        "CREATE TABLE records_{id} (key text COLLATE \"C\" PRIMARY KEY, record json NOT NULL, \
         import_id text NOT NULL, updated_at timestamptz NOT NULL DEFAULT now())"
    ))
    .execute(conn)
    .await?;
    Ok(())
}

/// Gives the dataset a column for each of `fields` it lacks, in the caller's
/// transaction, and returns the layout as that transaction sees it (`None`: no such
/// dataset). Adding takes the table's exclusive lock first, so concurrent callers
/// number their columns one after another; it waits for imports writing the dataset.
pub(crate) async fn ensure(
    conn: &mut PgConnection,
    dataset: &str,
    fields: &[(Kind, &str)],
) -> Result<Option<Layout>, sqlx::Error> {
    let Some(layout) = read(conn, dataset).await? else {
        return Ok(None);
    };
    if layout.has(fields) {
        return Ok(Some(layout));
    }
    sqlx::query(&format!(
        "LOCK TABLE {} IN ACCESS EXCLUSIVE MODE",
        layout.table
    ))
    .execute(&mut *conn)
    .await?;
    let Some(mut layout) = read(conn, dataset).await? else {
        return Ok(None);
    };
    let mut measure_added = false;
    let mut new_dimensions = Vec::new();
    for &(kind, name) in fields {
        if layout.column(kind, name).is_some() {
            continue;
        }
        let column = format!("{}{}", kind.prefix(), layout.columns(kind).len() + 1);
        sqlx::query(
            "INSERT INTO dataset_fields (dataset, kind, name, col) VALUES ($1, $2, $3, $4)",
        )
        .bind(dataset)
        .bind(kind.as_str())
        .bind(name)
        .bind(&column)
        .execute(&mut *conn)
        .await?;
        sqlx::query(&format!(
            "ALTER TABLE {} ADD COLUMN {column} {}",
            layout.table,
            kind.sql_type()
        ))
        .execute(&mut *conn)
        .await?;
        match kind {
            Kind::Dimension => {
                new_dimensions.push(column.clone());
                layout.dimensions.push((name.to_owned(), column));
            }
            Kind::Measure => {
                measure_added |= layout.measures.len() < MAX_INCLUDED;
                layout.measures.push((name.to_owned(), column));
            }
        }
    }
    // An index includes every measure: a new measure rebuilds them all.
    let rebuilt: Vec<String> = if measure_added {
        layout.dimensions.iter().map(|(_, c)| c.clone()).collect()
    } else {
        new_dimensions
    };
    for column in &rebuilt {
        sqlx::query(&format!("DROP INDEX IF EXISTS {}_{column}", layout.table))
            .execute(&mut *conn)
            .await?;
        sqlx::query(&layout.index_statement(column))
            .execute(&mut *conn)
            .await?;
    }
    Ok(Some(layout))
}

/// The layouts read so far, shared by every clone of the store.
#[derive(Debug, Clone, Default)]
pub(crate) struct Layouts(Arc<RwLock<HashMap<String, Arc<Layout>>>>);

impl Layouts {
    /// Locks the dataset's table for writing (`ROW EXCLUSIVE`: imports write side by
    /// side, but no column can be added until this transaction ends), then reads its
    /// layout from the catalog, so the caller writes every column the table has: one
    /// a cached layout lacked would keep a stale value in an upserted row.
    pub(crate) async fn lock(
        &self,
        conn: &mut PgConnection,
        dataset: &str,
    ) -> Result<Option<Arc<Layout>>, sqlx::Error> {
        let Some(cached) = self.get(conn, dataset, &[]).await? else {
            return Ok(None);
        };
        sqlx::query(&format!(
            "LOCK TABLE {} IN ROW EXCLUSIVE MODE",
            cached.table
        ))
        .execute(&mut *conn)
        .await?;
        let Some(layout) = read(conn, dataset).await? else {
            return Ok(None);
        };
        Ok(Some(self.remember(dataset, layout)))
    }

    /// The dataset's layout, read from the catalog when none is cached or the cached
    /// one lacks one of `fields`; `None` when there is no such dataset. Only committed
    /// layouts are cached: call it outside a transaction that added columns.
    pub(crate) async fn get(
        &self,
        conn: &mut PgConnection,
        dataset: &str,
        fields: &[(Kind, &str)],
    ) -> Result<Option<Arc<Layout>>, sqlx::Error> {
        let cached = self
            .0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(dataset)
            .cloned();
        if let Some(layout) = cached.filter(|l| l.has(fields)) {
            return Ok(Some(layout));
        }
        let Some(layout) = read(conn, dataset).await? else {
            return Ok(None);
        };
        Ok(Some(self.remember(dataset, layout)))
    }
}

impl Layouts {
    /// Forgets a dataset's layout: it was deleted, and a dataset created again under
    /// its name has a table of its own.
    pub(crate) fn forget(&self, dataset: &str) {
        self.0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(dataset);
    }

    /// Caches a layout read from the catalog.
    fn remember(&self, dataset: &str, layout: Layout) -> Arc<Layout> {
        let layout = Arc::new(layout);
        self.0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(dataset.to_owned(), Arc::clone(&layout));
        layout
    }
}

impl crate::PgStore {
    /// The dataset's layout (see [`Layouts::get`]), on a pooled connection.
    pub(crate) async fn layout(
        &self,
        dataset: &str,
        fields: &[(Kind, &str)],
    ) -> Result<Option<Arc<Layout>>, sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        self.layouts.get(&mut conn, dataset, fields).await
    }
}
