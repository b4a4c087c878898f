//! Reading records, history and conflicts; opening an import's unit of work.

use intake_domain::ports::{
    HistoryEntries, HistoryPage, ImportWriter, Lease, RecordFilter, RecordOrder, RecordPage,
    RecordQuery, RecordScan, RecordStore, StoreError, StoredRecord,
};
use intake_domain::{Conflict, DatasetName, ImportId, Record, RecordKey};
use sqlx::Row as _;
use sqlx::sqlite::SqliteRow;

use crate::rows::json;
use crate::writer::LazyImportWriter;
use crate::{SqliteStore, from_micros, unexpected};

/// The columns [`stored`] reads, from `record_history h` joined to `imports i`.
const STORED: &str = "h.record, i.id AS import_id, h.at_us, h.kind";

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
        deleted: row
            .try_get::<String, _>("kind")
            .is_ok_and(|kind| kind == "deleted"),
    })
}

/// `AND <the dimension in the document h.record> IN (?, …)` per dimension filtered on:
/// `d` in the compact form, `dimensions` in the serde form stored before it (ADR 22);
/// `AND h.at_us >= ?` for `updated_since`. Names are checked identifiers, and values
/// are bound.
pub(crate) fn filters(filter: &RecordFilter) -> (String, Vec<String>) {
    let mut sql = String::new();
    let mut binds = Vec::new();
    for (name, values) in &filter.dimensions {
        if values.is_empty() {
            sql.push_str(" AND false");
            continue;
        }
        let params = vec!["?"; values.len()].join(", ");
        sql.push_str(&format!(
            " AND coalesce(json_extract(h.record, ?), json_extract(h.record, ?)) IN ({params})"
        ));
        let (compact, serde) = member(name, "d", "dimensions");
        binds.push(compact);
        binds.push(serde);
        binds.extend(values.iter().cloned());
    }
    if let Some(since) = filter.updated_since {
        sql.push_str(" AND h.at_us >= CAST(? AS INTEGER)");
        binds.push(since.timestamp_micros().to_string());
    }
    (sql, binds)
}

/// The JSON paths of a named member of a stored record: in the compact form's map
/// `compact` (`$.d."name"`) and in the serde form's `serde` (`$.dimensions."name"`).
/// Names are checked identifiers; a quote could not end the path early anyway.
pub(crate) fn member(name: &str, compact: &str, serde: &str) -> (String, String) {
    let name = name.replace('"', "");
    (
        format!("$.{compact}.\"{name}\""),
        format!("$.{serde}.\"{name}\""),
    )
}

#[async_trait::async_trait]
impl RecordStore for SqliteStore {
    async fn begin_apply(&self, lease: &Lease) -> Result<Box<dyn ImportWriter>, StoreError> {
        // A lease already lost is refused at once; the transaction checks it again
        // when it opens (it is the one that counts).
        let held: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM imports WHERE id = ? AND lease_token = ? AND status = 'processing'",
        )
        .bind(lease.import.as_str())
        .bind(&lease.token)
        .fetch_optional(&self.pool)
        .await
        .map_err(unexpected("checking an import's lease"))?;
        if held.is_none() {
            return Err(StoreError::LeaseLost);
        }
        Ok(Box::new(LazyImportWriter::new(&self.writes, lease)))
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
        let total = if clause.is_empty() {
            // Kept by the imports (migration 0007): counting a million keys took
            // longer than the page.
            sqlx::query_scalar::<_, i64>("SELECT records FROM datasets WHERE name = ?")
                .bind(dataset.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(unexpected("counting records"))?
                .unwrap_or(0)
        } else {
            let count_sql = format!(
                "SELECT COUNT(*) FROM records r JOIN record_history h ON h.seq = r.seq \
                 WHERE r.dataset = ?{clause}"
            );
            let mut count = sqlx::query_scalar::<_, i64>(&count_sql).bind(dataset.as_str());
            for b in &binds {
                count = count.bind(b);
            }
            count
                .fetch_one(&self.pool)
                .await
                .map_err(unexpected("counting records"))?
        };
        // `r.key > ?` only when there is a cursor: SQLite cannot seek the primary key
        // for `(? IS NULL OR r.key > ?)`, and read every key before the cursor.
        let after = if query.after.is_some() {
            " AND r.key > ?"
        } else {
            ""
        };
        // By a measure: its value in the compact form (`m`) or the serde form, records
        // without it last, then by key.
        let (order, order_binds) = match &query.order {
            RecordOrder::Key => ("r.key".to_owned(), None),
            RecordOrder::Measure { name, descending } => {
                let direction = if *descending { "DESC" } else { "ASC" };
                (
                    format!(
                        "coalesce(json_extract(h.record, ?), json_extract(h.record, ?)) \
                         {direction} NULLS LAST, r.key"
                    ),
                    Some(member(name, "m", "measures")),
                )
            }
        };
        let skips_keys = clause.is_empty() && query.offset > 0 && order_binds.is_none();
        let page_sql = if skips_keys {
            // An offset is skipped on the keys alone, not by joining each skipped key
            // to its document.
            format!(
                "SELECT {STORED} FROM {LATEST} WHERE r.dataset = ? \
                 AND r.key >= (SELECT r.key FROM records r WHERE r.dataset = ?{after} \
                   ORDER BY r.key LIMIT 1 OFFSET ?) \
                 ORDER BY r.key LIMIT ?"
            )
        } else {
            format!(
                "SELECT {STORED} FROM {LATEST} WHERE r.dataset = ?{clause}{after} \
                 ORDER BY {order} LIMIT ? OFFSET ?"
            )
        };
        // Anonymous parameters only: sqlx numbers a `?` after a `?1` from the first
        // argument again.
        let mut page = sqlx::query(&page_sql).bind(dataset.as_str());
        if skips_keys {
            page = page.bind(dataset.as_str());
        }
        for b in &binds {
            page = page.bind(b);
        }
        if let Some(after) = &query.after {
            page = page.bind(after);
        }
        if let Some((compact, serde)) = &order_binds {
            page = page.bind(compact).bind(serde);
        }
        let (first, second) = if skips_keys {
            (
                i64::try_from(query.offset).unwrap_or(i64::MAX),
                i64::from(query.limit),
            )
        } else {
            (
                i64::from(query.limit),
                i64::try_from(query.offset).unwrap_or(i64::MAX),
            )
        };
        let rows = page
            .bind(first)
            .bind(second)
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
        // `r.key > ?` only when there is a cursor, which SQLite then seeks (see list).
        let after = if scan.after.is_some() {
            " AND r.key > ?"
        } else {
            ""
        };
        let sql = format!(
            "SELECT h.record FROM records r JOIN record_history h ON h.seq = r.seq \
             WHERE r.dataset = ?{clause}{after} ORDER BY r.key LIMIT ?"
        );
        let mut page = sqlx::query(&sql).bind(dataset.as_str());
        for b in &binds {
            page = page.bind(b);
        }
        if let Some(after) = &scan.after {
            page = page.bind(after);
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

    async fn marks(
        &self,
        dataset: &DatasetName,
        filters: &RecordFilter,
        every: u64,
    ) -> Result<Vec<String>, StoreError> {
        let (clause, binds) = self::filters(filters);
        // One pass over the keys (joined to documents only to filter), numbering them.
        let from = if clause.is_empty() {
            "records r"
        } else {
            "records r JOIN record_history h ON h.seq = r.seq"
        };
        let sql = format!(
            "SELECT key FROM (SELECT r.key AS key, row_number() OVER (ORDER BY r.key) AS n \
               FROM {from} WHERE r.dataset = ?{clause}) \
             WHERE n % ? = 0 ORDER BY key"
        );
        let mut query = sqlx::query_scalar(&sql).bind(dataset.as_str());
        for b in &binds {
            query = query.bind(b);
        }
        let marks: Vec<String> = query
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
        if rows.is_empty() {
            // Past the last entry, or a key that never had a record.
            let known: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM record_history WHERE dataset = ? AND key = ?)",
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
