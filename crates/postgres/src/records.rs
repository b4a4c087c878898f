//! Reading records, history and conflicts; opening an import's unit of work.

use intake_domain::ports::{
    HistoryEntries, HistoryPage, ImportWriter, Lease, RecordFilter, RecordOrder, RecordPage,
    RecordQuery, RecordScan, RecordStore, StoreError, StoredRecord,
};
use intake_domain::{Conflict, DatasetName, ImportId, Record, RecordKey};
use sqlx::Row as _;
use sqlx::postgres::PgRow;

use crate::layout::Kind;
use crate::rows::json;
use crate::writer::PgImportWriter;
use crate::{PgStore, unexpected};

fn stored(row: &PgRow, at: &str) -> Result<StoredRecord, StoreError> {
    let import: String = row.try_get("import_id").map_err(anyhow::Error::new)?;
    Ok(StoredRecord {
        record: crate::rows::record(row, "record")?,
        import: ImportId::parse(import).map_err(anyhow::Error::new)?,
        updated_at: row.try_get(at).map_err(anyhow::Error::new)?,
        // Only history rows have a kind; latest states are never deleted ones.
        deleted: row
            .try_get::<String, _>("kind")
            .is_ok_and(|kind| kind == "deleted"),
    })
}

/// The dimensions filtered on: a layout lacking one is read again.
fn dimensions(filters: &RecordFilter) -> Vec<(Kind, &str)> {
    filters
        .dimensions
        .keys()
        .map(|name| (Kind::Dimension, name.as_str()))
        .collect()
}

/// ` WHERE true AND <filters> AND key > $n` and the values to bind in order: the
/// filters' `conditions` and `values` (numbered from `$1`), then the key a page starts
/// after, if any. Written only when there is one: a generic plan of `($n IS NULL OR
/// key > $n)` (sqlx prepares statements; PostgreSQL goes generic after five runs)
/// cannot seek the primary key, and read every key before the cursor.
fn keyset(conditions: &str, mut values: Vec<String>, after: Option<&str>) -> (String, Vec<String>) {
    let mut selection = format!(" WHERE true{conditions}");
    if let Some(after) = after {
        values.push(after.to_owned());
        selection.push_str(&format!(" AND key > ${}", values.len()));
    }
    (selection, values)
}

#[async_trait::async_trait]
impl RecordStore for PgStore {
    async fn begin_apply(&self, lease: &Lease) -> Result<Box<dyn ImportWriter>, StoreError> {
        Ok(Box::new(
            PgImportWriter::begin(&self.pool, &self.layouts, lease).await?,
        ))
    }

    async fn get(
        &self,
        dataset: &DatasetName,
        key: &RecordKey,
    ) -> Result<StoredRecord, StoreError> {
        let layout = self
            .layout(dataset.as_str(), &[])
            .await
            .map_err(unexpected("reading a record"))?
            .ok_or(StoreError::NotFound)?;
        let row = sqlx::query(&format!(
            "SELECT record::text AS record, import_id, updated_at FROM {} WHERE key = $1",
            layout.table
        ))
        .bind(key.canonical())
        .fetch_optional(&self.pool)
        .await
        .map_err(unexpected("reading a record"))?;
        stored(&row.ok_or(StoreError::NotFound)?, "updated_at")
    }

    async fn list(
        &self,
        dataset: &DatasetName,
        query: &RecordQuery,
    ) -> Result<RecordPage, StoreError> {
        let Some(layout) = self
            .layout(dataset.as_str(), &dimensions(&query.filters))
            .await
            .map_err(unexpected("listing records"))?
        else {
            return Ok(RecordPage {
                records: Vec::new(),
                total: 0,
            });
        };
        let (conditions, values) = layout.filters(&query.filters, 1);
        let total: i64 = if query.filters.is_empty() {
            // Kept by the imports (migration 0012): counting a million rows took
            // longer than the page.
            sqlx::query_scalar("SELECT records FROM datasets WHERE name = $1")
                .bind(dataset.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(unexpected("counting records"))?
                .unwrap_or(0)
        } else {
            let count = format!(
                "SELECT COUNT(*) FROM {} WHERE true{conditions}",
                layout.table
            );
            values
                .iter()
                .fold(sqlx::query_scalar(&count), |q, v| q.bind(v.as_str()))
                .fetch_one(&self.pool)
                .await
                .map_err(unexpected("counting records"))?
        };
        let (selection, binds) = keyset(&conditions, values, query.after.as_deref());
        let n = binds.len();
        let by_measure = match &query.order {
            RecordOrder::Key => None,
            // A measure no version declared: no record has it, key order remains.
            RecordOrder::Measure { name, descending } => Some((
                layout.measure(name).unwrap_or("NULL::float8"),
                if *descending { "DESC" } else { "ASC" },
            )),
        };
        let sql = if let Some((column, direction)) = by_measure {
            format!(
                "SELECT record::text AS record, import_id, updated_at FROM {t}{selection} \
                 ORDER BY {column} {direction} NULLS LAST, key LIMIT ${l} OFFSET ${o}",
                t = layout.table,
                l = n + 1,
                o = n + 2,
            )
        } else if query.offset == 0 {
            format!(
                "SELECT record::text AS record, import_id, updated_at FROM {t}{selection} \
                 ORDER BY key LIMIT ${l}",
                t = layout.table,
                l = n + 1,
            )
        } else {
            // An offset is skipped on the primary key alone (an index-only scan once the
            // table is vacuumed), not by reading and dropping each skipped row.
            format!(
                "SELECT record::text AS record, import_id, updated_at FROM {t} \
                 WHERE key >= (SELECT key FROM {t}{selection} ORDER BY key OFFSET ${o} LIMIT 1)\
                 {conditions} ORDER BY key LIMIT ${l}",
                t = layout.table,
                l = n + 1,
                o = n + 2,
            )
        };
        let page = binds
            .iter()
            .fold(sqlx::query(&sql), |q, v| q.bind(v.as_str()))
            .bind(i64::from(query.limit))
            .bind(i64::try_from(query.offset).unwrap_or(i64::MAX));
        let rows = self
            .fetch_all_bounded(page)
            .await
            .map_err(unexpected("listing records"))?;
        Ok(RecordPage {
            records: rows
                .iter()
                .map(|r| stored(r, "updated_at"))
                .collect::<Result<_, _>>()?,
            total: u64::try_from(total).unwrap_or(0),
        })
    }

    async fn scan(
        &self,
        dataset: &DatasetName,
        scan: &RecordScan,
    ) -> Result<Vec<Record>, StoreError> {
        // Bytewise order, like the domain's: the key column's collation is "C".
        // The SQL analytics engine does not scan; the in-process one does on SQLite.
        let Some(layout) = self
            .layout(dataset.as_str(), &dimensions(&scan.filters))
            .await
            .map_err(unexpected("scanning records"))?
        else {
            return Ok(Vec::new());
        };
        let (conditions, values) = layout.filters(&scan.filters, 1);
        let (selection, binds) = keyset(&conditions, values, scan.after.as_deref());
        let sql = format!(
            "SELECT record::text AS record FROM {}{selection} ORDER BY key LIMIT ${}",
            layout.table,
            binds.len() + 1,
        );
        let rows = binds
            .iter()
            .fold(sqlx::query(&sql), |q, v| q.bind(v.as_str()))
            .bind(i64::from(scan.limit));
        let rows = self
            .fetch_all_bounded(rows)
            .await
            .map_err(unexpected("scanning records"))?;
        rows.iter()
            .map(|r| crate::rows::record(r, "record").map_err(StoreError::Unexpected))
            .collect()
    }

    async fn marks(
        &self,
        dataset: &DatasetName,
        filters: &RecordFilter,
        every: u64,
    ) -> Result<Vec<String>, StoreError> {
        let Some(layout) = self
            .layout(dataset.as_str(), &dimensions(filters))
            .await
            .map_err(unexpected("marking records"))?
        else {
            return Ok(Vec::new());
        };
        let (conditions, values) = layout.filters(filters, 1);
        // One pass over the primary key (or a dimension's index), numbering the keys.
        let sql = format!(
            "SELECT key FROM (SELECT key, row_number() OVER (ORDER BY key) AS n \
               FROM {} WHERE true{conditions}) numbered \
             WHERE n % ${} = 0 ORDER BY key",
            layout.table,
            values.len() + 1,
        );
        let marks: Vec<String> = values
            .iter()
            .fold(sqlx::query_scalar(&sql), |q, v| q.bind(v.as_str()))
            .bind(i64::try_from(every.max(1)).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(unexpected("marking records"))?;
        Ok(marks)
    }

    async fn history(
        &self,
        dataset: &DatasetName,
        key: &RecordKey,
        page: &HistoryPage,
    ) -> Result<HistoryEntries, StoreError> {
        // One more than asked: whether there is a next page.
        let rows = sqlx::query(
            "SELECT record::text AS record, import_id, created_at, seq, kind FROM record_history \
             WHERE dataset = $1 AND key = $2 AND seq > $3 ORDER BY seq LIMIT $4",
        )
        .bind(dataset.as_str())
        .bind(key.canonical())
        .bind(page.after.unwrap_or(0))
        .bind(i64::from(page.limit) + 1)
        .fetch_all(&self.pool)
        .await
        .map_err(unexpected("reading history"))?;
        if rows.is_empty() {
            // Past the last entry, or a key that never had a record.
            let known: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM record_history WHERE dataset = $1 AND key = $2)",
            )
            .bind(dataset.as_str())
            .bind(key.canonical())
            .fetch_one(&self.pool)
            .await
            .map_err(unexpected("reading history"))?;
            if !known {
                return Err(StoreError::NotFound);
            }
        }
        let rows = rows
            .iter()
            .map(|r| {
                let seq = r.try_get("seq").map_err(unexpected("reading history"))?;
                Ok((seq, stored(r, "created_at")?))
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(HistoryEntries::from_rows(rows, page))
    }

    async fn conflicts(
        &self,
        dataset: &DatasetName,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<(ImportId, Conflict)>, StoreError> {
        let rows = sqlx::query(
            "SELECT import_id, conflict::text AS conflict FROM conflicts WHERE dataset = $1 \
             ORDER BY seq LIMIT $2 OFFSET $3",
        )
        .bind(dataset.as_str())
        .bind(i64::from(limit))
        .bind(i64::try_from(offset).unwrap_or(i64::MAX));
        let rows = self
            .fetch_all_bounded(rows)
            .await
            .map_err(unexpected("listing conflicts"))?;
        let read = |row: &PgRow| -> Result<(ImportId, Conflict), StoreError> {
            let import: String = row.try_get("import_id").map_err(anyhow::Error::new)?;
            Ok((
                ImportId::parse(import).map_err(anyhow::Error::new)?,
                json(row, "conflict")?,
            ))
        };
        rows.iter().map(read).collect()
    }
}
