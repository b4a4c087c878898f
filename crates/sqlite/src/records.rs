//! Reading records, history and conflicts; opening an import's unit of work.

use std::collections::BTreeMap;

use intake_domain::ports::{
    ImportWriter, Lease, RecordPage, RecordQuery, RecordScan, RecordStore, StoreError, StoredRecord,
};
use intake_domain::{Conflict, DatasetName, ImportId, Record, RecordKey};
use sqlx::Row as _;
use sqlx::sqlite::SqliteRow;

use crate::rows::json;
use crate::writer::SqliteImportWriter;
use crate::{SqliteStore, parse_ts, unexpected};

fn stored(row: &SqliteRow, at: &str) -> Result<StoredRecord, StoreError> {
    let import: String = row.try_get("import_id").map_err(anyhow::Error::new)?;
    let at: String = row.try_get(at).map_err(anyhow::Error::new)?;
    Ok(StoredRecord {
        record: crate::rows::record(row, "record")?,
        import: ImportId::parse(import).map_err(anyhow::Error::new)?,
        updated_at: parse_ts(&at)?,
    })
}

/// `AND json_extract(dimensions, '$.name') = ?` per filter; names are checked
/// identifiers, and values are bound.
fn filters(filters: &BTreeMap<String, String>) -> (String, Vec<String>) {
    let mut sql = String::new();
    let mut binds = Vec::new();
    for (name, value) in filters {
        sql.push_str(" AND json_extract(dimensions, ?) = ?");
        binds.push(format!("$.\"{}\"", name.replace('"', "")));
        binds.push(value.clone());
    }
    (sql, binds)
}

#[async_trait::async_trait]
impl RecordStore for SqliteStore {
    async fn begin_apply(&self, lease: &Lease) -> Result<Box<dyn ImportWriter>, StoreError> {
        Ok(Box::new(
            SqliteImportWriter::begin(&self.pool, lease).await?,
        ))
    }

    async fn get(
        &self,
        dataset: &DatasetName,
        key: &RecordKey,
    ) -> Result<StoredRecord, StoreError> {
        let row = sqlx::query(
            "SELECT record, import_id, updated_at FROM records WHERE dataset = ? AND key = ?",
        )
        .bind(dataset.as_str())
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
        let (clause, binds) = filters(&query.filters);
        let count_sql = format!("SELECT COUNT(*) FROM records WHERE dataset = ?{clause}");
        let mut count = sqlx::query_scalar::<_, i64>(&count_sql).bind(dataset.as_str());
        for b in &binds {
            count = count.bind(b);
        }
        let total = count
            .fetch_one(&self.pool)
            .await
            .map_err(unexpected("counting records"))?;
        let page_sql = format!(
            "SELECT record, import_id, updated_at FROM records WHERE dataset = ?{clause} \
             AND (? IS NULL OR key > ?) ORDER BY key LIMIT ? OFFSET ?"
        );
        let mut page = sqlx::query(&page_sql).bind(dataset.as_str());
        for b in &binds {
            page = page.bind(b);
        }
        let rows = page
            .bind(query.after.as_deref())
            .bind(query.after.as_deref())
            .bind(i64::from(query.limit))
            .bind(i64::try_from(query.offset).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
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
        let (clause, binds) = filters(&scan.filters);
        // Keys are TEXT with the default BINARY collation: bytewise, like the domain's.
        let sql = format!(
            "SELECT record FROM records WHERE dataset = ? AND (? IS NULL OR key > ?){clause} \
             ORDER BY key LIMIT ?"
        );
        let mut page = sqlx::query(&sql)
            .bind(dataset.as_str())
            .bind(scan.after.as_deref())
            .bind(scan.after.as_deref());
        for b in &binds {
            page = page.bind(b);
        }
        let rows = page
            .bind(i64::from(scan.limit))
            .fetch_all(&self.pool)
            .await
            .map_err(unexpected("scanning records"))?;
        rows.iter()
            .map(|r| crate::rows::record(r, "record").map_err(StoreError::Unexpected))
            .collect()
    }

    async fn history(
        &self,
        dataset: &DatasetName,
        key: &RecordKey,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT record, import_id, created_at FROM record_history \
             WHERE dataset = ? AND key = ? ORDER BY seq",
        )
        .bind(dataset.as_str())
        .bind(key.canonical())
        .fetch_all(&self.pool)
        .await
        .map_err(unexpected("reading history"))?;
        if rows.is_empty() {
            return Err(StoreError::NotFound);
        }
        rows.iter().map(|r| stored(r, "created_at")).collect()
    }

    async fn conflicts(
        &self,
        dataset: &DatasetName,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<(ImportId, Conflict)>, StoreError> {
        let rows = sqlx::query(
            "SELECT import_id, conflict FROM conflicts WHERE dataset = ? ORDER BY seq LIMIT ? OFFSET ?",
        )
        .bind(dataset.as_str())
        .bind(i64::from(limit))
        .bind(i64::try_from(offset).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(unexpected("listing conflicts"))?;
        let read = |row: &SqliteRow| -> Result<(ImportId, Conflict), StoreError> {
            let import: String = row.try_get("import_id").map_err(anyhow::Error::new)?;
            Ok((
                ImportId::parse(import).map_err(anyhow::Error::new)?,
                json(row, "conflict")?,
            ))
        };
        rows.iter().map(read).collect()
    }
}
