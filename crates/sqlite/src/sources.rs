//! Pull sources (ADR 30): a row per source with its declaration, its state and its
//! lease. SQLite has one writer at a time, so a claim (one `UPDATE … RETURNING`) is
//! atomic across threads and processes; a page's import (its row and its chunks) and
//! the source's progress commit in one `BEGIN IMMEDIATE` transaction.

use std::time::Duration;

use chrono::{DateTime, Utc};
use intake_domain::DatasetName;
use intake_domain::ports::{
    ImportSummary, PageSaved, PageToSave, Progress, Source, SourceClaim, SourceLease, SourceState,
    SourceStore, SourceStoreError, Validators,
};
use intake_domain::sources::SourceSpec;
use sqlx::Row as _;
use sqlx::sqlite::SqliteRow;

use crate::rows::{IMPORT_COLUMNS, import_row};
use crate::{SqliteStore, is_unique_violation, new_id, now, parse_ts, ts, unexpected};

const COLUMNS: &str = "dataset, name, spec, created_at, cursor, watermark, run_watermark, \
    etag, last_modified, next_run_at, last_run_at, last_success_at, pages, records, failures, \
    degraded, last_error, worker, lease_expires_at";

/// Vault chunks of a page, as the streaming writer cuts them.
const CHUNK: usize = 256 * 1024;

fn source_row(row: &SqliteRow) -> anyhow::Result<Source> {
    let spec: String = row.try_get("spec")?;
    let spec: SourceSpec = serde_json::from_str(&spec)?;
    let count = |c: &str| -> anyhow::Result<u64> { Ok(u64::try_from(row.try_get::<i64, _>(c)?)?) };
    let time = |c: &str| -> anyhow::Result<Option<DateTime<Utc>>> {
        row.try_get::<Option<String>, _>(c)?
            .map(|t| parse_ts(&t))
            .transpose()
    };
    let held = time("lease_expires_at")?.is_some_and(|at| at > now());
    Ok(Source {
        dataset: DatasetName::parse(row.try_get::<String, _>("dataset")?)?,
        spec,
        created_at: parse_ts(row.try_get("created_at")?)?,
        state: SourceState {
            cursor: row.try_get("cursor")?,
            watermark: row.try_get("watermark")?,
            run_watermark: row.try_get("run_watermark")?,
            validators: Validators {
                etag: row.try_get("etag")?,
                last_modified: row.try_get("last_modified")?,
            },
            next_run_at: parse_ts(row.try_get("next_run_at")?)?,
            last_run_at: time("last_run_at")?,
            last_success_at: time("last_success_at")?,
            pages: count("pages")?,
            records: count("records")?,
            failures: u32::try_from(row.try_get::<i64, _>("failures")?)?,
            degraded: row.try_get("degraded")?,
            last_error: row.try_get("last_error")?,
            held_by: if held { row.try_get("worker")? } else { None },
        },
    })
}

fn spec_json(spec: &SourceSpec) -> Result<String, SourceStoreError> {
    Ok(serde_json::to_string(spec).map_err(anyhow::Error::new)?)
}

fn lease_end(from: DateTime<Utc>, lease: Duration) -> DateTime<Utc> {
    from + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX)
}

impl SqliteStore {
    async fn source_or_not_found(
        &self,
        row: Result<Option<SqliteRow>, sqlx::Error>,
        doing: &'static str,
    ) -> Result<Source, SourceStoreError> {
        let row = row.map_err(unexpected(doing))?;
        Ok(source_row(&row.ok_or(SourceStoreError::NotFound)?)?)
    }
}

#[async_trait::async_trait]
impl SourceStore for SqliteStore {
    async fn create(
        &self,
        dataset: &DatasetName,
        spec: &SourceSpec,
        first_run: DateTime<Utc>,
    ) -> Result<Source, SourceStoreError> {
        let created = sqlx::query(&format!(
            "INSERT INTO sources (dataset, name, spec, paused, next_run_at, created_at) \
             SELECT ?1, ?2, ?3, ?4, ?5, ?6 WHERE EXISTS (SELECT 1 FROM datasets WHERE name = ?1 AND deleted_at IS NULL) \
             RETURNING {COLUMNS}"
        ))
        .bind(dataset.as_str())
        .bind(&spec.name)
        .bind(spec_json(spec)?)
        .bind(spec.paused)
        .bind(ts(first_run))
        .bind(ts(now()))
        .fetch_optional(&self.writes)
        .await;
        match created {
            Ok(Some(row)) => Ok(source_row(&row)?),
            Ok(None) => Err(SourceStoreError::NotFound),
            Err(e) if is_unique_violation(&e) => Err(SourceStoreError::Taken),
            Err(e) => Err(unexpected("creating a source")(e).into()),
        }
    }

    async fn list(&self, dataset: &DatasetName) -> Result<Vec<Source>, SourceStoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM sources WHERE dataset = ?1 ORDER BY name"
        ))
        .bind(dataset.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(unexpected("listing sources"))?;
        Ok(rows.iter().map(source_row).collect::<anyhow::Result<_>>()?)
    }

    async fn get(&self, dataset: &DatasetName, name: &str) -> Result<Source, SourceStoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM sources WHERE dataset = ?1 AND name = ?2"
        ))
        .bind(dataset.as_str())
        .bind(name)
        .fetch_optional(&self.pool)
        .await;
        self.source_or_not_found(row, "reading a source").await
    }

    async fn update(
        &self,
        dataset: &DatasetName,
        spec: &SourceSpec,
        restart: bool,
    ) -> Result<Source, SourceStoreError> {
        let row = sqlx::query(&format!(
            "UPDATE sources SET spec = ?3, paused = ?4, \
               cursor = CASE WHEN ?5 THEN NULL ELSE cursor END, \
               run_watermark = CASE WHEN ?5 THEN NULL ELSE run_watermark END, \
               worker = CASE WHEN ?5 THEN NULL ELSE worker END, \
               lease_token = CASE WHEN ?5 THEN NULL ELSE lease_token END, \
               lease_expires_at = CASE WHEN ?5 THEN NULL ELSE lease_expires_at END \
             WHERE dataset = ?1 AND name = ?2 RETURNING {COLUMNS}"
        ))
        .bind(dataset.as_str())
        .bind(&spec.name)
        .bind(spec_json(spec)?)
        .bind(spec.paused)
        .bind(restart)
        .fetch_optional(&self.writes)
        .await;
        self.source_or_not_found(row, "changing a source").await
    }

    async fn delete(&self, dataset: &DatasetName, name: &str) -> Result<(), SourceStoreError> {
        let deleted = sqlx::query("DELETE FROM sources WHERE dataset = ?1 AND name = ?2")
            .bind(dataset.as_str())
            .bind(name)
            .execute(&self.writes)
            .await
            .map_err(unexpected("deleting a source"))?;
        if deleted.rows_affected() == 0 {
            return Err(SourceStoreError::NotFound);
        }
        Ok(())
    }

    async fn schedule(
        &self,
        dataset: &DatasetName,
        name: &str,
        at: DateTime<Utc>,
        reset: bool,
    ) -> Result<Source, SourceStoreError> {
        let reset_columns = if reset {
            ", cursor = NULL, watermark = NULL, run_watermark = NULL, etag = NULL, \
             last_modified = NULL, failures = 0, degraded = 0, last_error = NULL, \
             worker = NULL, lease_token = NULL, lease_expires_at = NULL"
        } else {
            ""
        };
        let row = sqlx::query(&format!(
            "UPDATE sources SET next_run_at = ?3{reset_columns} \
             WHERE dataset = ?1 AND name = ?2 RETURNING {COLUMNS}"
        ))
        .bind(dataset.as_str())
        .bind(name)
        .bind(ts(at))
        .fetch_optional(&self.writes)
        .await;
        self.source_or_not_found(row, "scheduling a source").await
    }

    async fn claim(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<SourceClaim, SourceStoreError> {
        let token = new_id();
        let claimed = sqlx::query(&format!(
            "UPDATE sources SET worker = ?2, lease_token = ?3, lease_expires_at = ?4, \
               last_run_at = ?1 \
             WHERE rowid = (SELECT rowid FROM sources WHERE NOT paused AND next_run_at <= ?1 \
               AND (lease_expires_at IS NULL OR lease_expires_at <= ?1) \
               ORDER BY next_run_at LIMIT 1) \
             RETURNING {COLUMNS}"
        ))
        .bind(ts(now))
        .bind(worker)
        .bind(&token)
        .bind(ts(lease_end(now, lease)))
        .fetch_optional(&self.writes)
        .await;
        let row = match claimed {
            // An import holds the single write lock: nothing can be claimed now.
            Err(e) if crate::is_busy(&e) => return Ok(SourceClaim::Nothing { next_due: None }),
            other => other.map_err(unexpected("claiming a source"))?,
        };
        if let Some(row) = row {
            let source = source_row(&row)?;
            let attempt = source.state.failures.saturating_add(1);
            return Ok(SourceClaim::Claimed(Box::new(SourceLease {
                source,
                token,
                attempt,
            })));
        }
        let next_due: Option<String> = sqlx::query_scalar(
            "SELECT MIN(MAX(next_run_at, COALESCE(lease_expires_at, next_run_at))) \
             FROM sources WHERE NOT paused",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(unexpected("finding the next source due"))?;
        Ok(SourceClaim::Nothing {
            next_due: next_due.map(|t| parse_ts(&t)).transpose()?,
        })
    }

    async fn save_page(
        &self,
        lease: &SourceLease,
        page: Option<PageToSave>,
        progress: &Progress,
    ) -> Result<Option<PageSaved>, SourceStoreError> {
        let mut tx = self
            .writes
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(unexpected("saving a page"))?;
        let complete = progress.cursor.is_none();
        let at = now();
        let moved = sqlx::query(
            "UPDATE sources SET cursor = ?4, \
               watermark = CASE WHEN ?5 THEN COALESCE(?6, watermark) ELSE watermark END, \
               run_watermark = CASE WHEN ?5 THEN NULL ELSE ?6 END, \
               etag = ?7, last_modified = ?8, \
               pages = pages + ?9, records = records + ?10, \
               failures = 0, degraded = 0, last_error = NULL, \
               last_success_at = CASE WHEN ?5 THEN ?13 ELSE last_success_at END, \
               next_run_at = CASE WHEN ?5 THEN ?11 ELSE next_run_at END, \
               worker = CASE WHEN ?5 THEN NULL ELSE worker END, \
               lease_token = CASE WHEN ?5 THEN NULL ELSE lease_token END, \
               lease_expires_at = CASE WHEN ?5 THEN NULL ELSE ?12 END \
             WHERE dataset = ?1 AND name = ?2 AND lease_token = ?3 AND lease_expires_at > ?13",
        )
        .bind(lease.source.dataset.as_str())
        .bind(&lease.source.spec.name)
        .bind(&lease.token)
        .bind(&progress.cursor)
        .bind(complete)
        .bind(&progress.run_watermark)
        .bind(&progress.validators.etag)
        .bind(&progress.validators.last_modified)
        .bind(i64::from(page.is_some()))
        .bind(i64::try_from(progress.records).unwrap_or(i64::MAX))
        .bind(ts(progress.next_run_at))
        .bind(ts(progress.lease_until))
        .bind(ts(at))
        .execute(&mut *tx)
        .await
        .map_err(unexpected("saving a source's progress"))?;
        if moved.rows_affected() == 0 {
            return Err(SourceStoreError::LeaseLost);
        }
        let Some(page) = page else {
            tx.commit().await.map_err(unexpected("saving a page"))?;
            return Ok(None);
        };
        let id = new_id();
        let import = &page.import;
        let inserted: Option<String> = sqlx::query_scalar(
            "INSERT INTO imports (id, dataset, contract, content_type, source, idempotency_key, \
             size, sha256, received_at, status) VALUES (?1, ?2, ?3, ?4, ?5, NULL, ?6, ?7, ?8, 'received') \
             ON CONFLICT (dataset, sha256) DO NOTHING RETURNING id",
        )
        .bind(&id)
        .bind(import.dataset.as_str())
        .bind(i64::from(import.contract.get()))
        .bind(&import.content_type)
        .bind(&import.source)
        .bind(i64::try_from(page.body.len()).unwrap_or(i64::MAX))
        .bind(&page.sha256)
        .bind(ts(at))
        .fetch_optional(&mut *tx)
        .await
        .map_err(unexpected("saving a page's import"))?;
        let saved_id = if inserted.is_some() {
            for (n, piece) in page.body.chunks(CHUNK).enumerate() {
                sqlx::query("INSERT INTO vault_chunks (import_id, n, bytes) VALUES (?1, ?2, ?3)")
                    .bind(&id)
                    .bind(i64::try_from(n).unwrap_or(i64::MAX))
                    .bind(piece)
                    .execute(&mut *tx)
                    .await
                    .map_err(unexpected("saving a page's bytes"))?;
            }
            id
        } else {
            sqlx::query_scalar("SELECT id FROM imports WHERE dataset = ?1 AND sha256 = ?2")
                .bind(import.dataset.as_str())
                .bind(&page.sha256)
                .fetch_one(&mut *tx)
                .await
                .map_err(unexpected("finding a page's earlier import"))?
        };
        let row = sqlx::query(&format!(
            "SELECT {IMPORT_COLUMNS} FROM imports WHERE id = ?1"
        ))
        .bind(&saved_id)
        .fetch_one(&mut *tx)
        .await
        .map_err(unexpected("reading a page's import"))?;
        let summary: ImportSummary = import_row(&row)?;
        tx.commit().await.map_err(unexpected("saving a page"))?;
        Ok(Some(if inserted.is_some() {
            PageSaved::New(summary)
        } else {
            PageSaved::Duplicate(summary)
        }))
    }

    async fn fail(
        &self,
        lease: &SourceLease,
        retry_at: DateTime<Utc>,
        reason: &str,
        degraded: bool,
    ) -> Result<(), SourceStoreError> {
        let failed = sqlx::query(
            "UPDATE sources SET failures = failures + 1, last_error = ?4, next_run_at = ?5, \
               degraded = ?6, worker = NULL, lease_token = NULL, lease_expires_at = NULL \
             WHERE dataset = ?1 AND name = ?2 AND lease_token = ?3",
        )
        .bind(lease.source.dataset.as_str())
        .bind(&lease.source.spec.name)
        .bind(&lease.token)
        .bind(reason)
        .bind(ts(retry_at))
        .bind(degraded)
        .execute(&self.writes)
        .await
        .map_err(unexpected("recording a source's failure"))?;
        if failed.rows_affected() == 0 {
            return Err(SourceStoreError::LeaseLost);
        }
        Ok(())
    }

    async fn release(&self, lease: &SourceLease) -> Result<(), SourceStoreError> {
        let released = sqlx::query(
            "UPDATE sources SET worker = NULL, lease_token = NULL, lease_expires_at = NULL \
             WHERE dataset = ?1 AND name = ?2 AND lease_token = ?3",
        )
        .bind(lease.source.dataset.as_str())
        .bind(&lease.source.spec.name)
        .bind(&lease.token)
        .execute(&self.writes)
        .await
        .map_err(unexpected("releasing a source"))?;
        if released.rows_affected() == 0 {
            return Err(SourceStoreError::LeaseLost);
        }
        Ok(())
    }

    async fn faulty_imports(
        &self,
        dataset: &DatasetName,
        label: &str,
        limit: u32,
    ) -> Result<Vec<ImportSummary>, SourceStoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {IMPORT_COLUMNS} FROM imports WHERE dataset = ?1 AND source = ?2 \
             AND (status = 'failed' OR (status = 'completed' \
               AND json_extract(report, '$.invalid') > 0)) \
             ORDER BY seq LIMIT ?3"
        ))
        .bind(dataset.as_str())
        .bind(label)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(unexpected("listing a source's faulty imports"))?;
        Ok(rows.iter().map(import_row).collect::<anyhow::Result<_>>()?)
    }
}
