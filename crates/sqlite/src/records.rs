//! Reading records, history and conflicts; opening an import's unit of work.

use std::collections::BTreeMap;

use intake_domain::ports::{
    HistoryEntries, HistoryPage, ImportWriter, Lease, RecordPage, RecordQuery, RecordScan,
    RecordStore, StoreError, StoredRecord,
};
use intake_domain::{Conflict, DatasetName, ImportId, Record, RecordKey};
use sqlx::Row as _;
use sqlx::sqlite::SqliteRow;

use crate::rows::json;
use crate::writer::SqliteImportWriter;
use crate::{SqliteStore, from_micros, unexpected};

/// The columns [`stored`] reads, from `record_history h` joined to `imports i`.
const STORED: &str = "h.record, i.id AS import_id, h.at_us";

/// A record's latest state (`records r`) joined to the history row holding it and
/// that row's import.
const LATEST: &str = "records r JOIN record_history h ON h.seq = r.seq \
    JOIN imports i ON i.seq = h.import_seq";

fn stored(row: &SqliteRow) -> Result<StoredRecord, StoreError> {
    let import: String = row.try_get("import_id").map_err(anyhow::Error::new)?;
    let at: i64 = row.try_get("at_us").map_err(anyhow::Error::new)?;
    Ok(StoredRecord {
        record: crate::rows::record(row, "record")?,
        import: ImportId::parse(import).map_err(anyhow::Error::new)?,
        updated_at: from_micros(at)?,
    })
}

/// `AND <the dimension in the document h.record> = ?` per filter: `d` in the compact
/// form, `dimensions` in the serde form stored before it (ADR 22). Names are checked
/// identifiers, and values are bound.
fn filters(filters: &BTreeMap<String, String>) -> (String, Vec<String>) {
    let mut sql = String::new();
    let mut binds = Vec::new();
    for (name, value) in filters {
        sql.push_str(" AND coalesce(json_extract(h.record, ?), json_extract(h.record, ?)) = ?");
        let name = name.replace('"', "");
        binds.push(format!("$.d.\"{name}\""));
        binds.push(format!("$.dimensions.\"{name}\""));
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
        let row = sqlx::query(&format!(
            "SELECT {STORED} FROM {LATEST} WHERE r.dataset = ? AND r.key = ?"
        ))
        .bind(dataset.as_str())
        .bind(key.canonical())
        .fetch_optional(&self.pool)
        .await
        .map_err(unexpected("reading a record"))?;
        stored(&row.ok_or(StoreError::NotFound)?)
    }

    async fn list(
        &self,
        dataset: &DatasetName,
        query: &RecordQuery,
    ) -> Result<RecordPage, StoreError> {
        let (clause, binds) = filters(&query.filters);
        let count_sql = if clause.is_empty() {
            "SELECT COUNT(*) FROM records r WHERE r.dataset = ?".to_owned()
        } else {
            format!(
                "SELECT COUNT(*) FROM records r JOIN record_history h ON h.seq = r.seq \
                 WHERE r.dataset = ?{clause}"
            )
        };
        let mut count = sqlx::query_scalar::<_, i64>(&count_sql).bind(dataset.as_str());
        for b in &binds {
            count = count.bind(b);
        }
        let total = count
            .fetch_one(&self.pool)
            .await
            .map_err(unexpected("counting records"))?;
        let page_sql = format!(
            "SELECT {STORED} FROM {LATEST} WHERE r.dataset = ?{clause} \
             AND (? IS NULL OR r.key > ?) ORDER BY r.key LIMIT ? OFFSET ?"
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
            records: rows.iter().map(stored).collect::<Result<_, _>>()?,
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
            "SELECT h.record FROM records r JOIN record_history h ON h.seq = r.seq \
             WHERE r.dataset = ? AND (? IS NULL OR r.key > ?){clause} ORDER BY r.key LIMIT ?"
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
        page: &HistoryPage,
    ) -> Result<HistoryEntries, StoreError> {
        // One more than asked: whether there is a next page.
        let rows = sqlx::query(&format!(
            "SELECT {STORED}, h.seq AS seq FROM record_history h \
             JOIN imports i ON i.seq = h.import_seq \
             WHERE h.dataset = ? AND h.key = ? AND h.seq > ? ORDER BY h.seq LIMIT ?"
        ))
        .bind(dataset.as_str())
        .bind(key.canonical())
        .bind(page.after.unwrap_or(0))
        .bind(i64::from(page.limit) + 1)
        .fetch_all(&self.pool)
        .await
        .map_err(unexpected("reading history"))?;
        if rows.is_empty() && page.after.is_none() {
            return Err(StoreError::NotFound);
        }
        let rows = rows
            .iter()
            .map(|r| {
                let seq = r.try_get("seq").map_err(unexpected("reading history"))?;
                Ok((seq, stored(r)?))
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
