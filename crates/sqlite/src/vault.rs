//! The raw vault: chunks are written as they arrive (so an upload does not hold the
//! single write lock), and the import row that makes them visible is inserted at
//! commit. A writer dropped before commit deletes its chunks in the background.

use intake_domain::ImportId;
use intake_domain::ports::{
    ImportSummary, ImportVault, NewImport, VaultError, VaultReader, VaultWriter,
};
use sqlx::SqlitePool;

use crate::rows::{IMPORT_COLUMNS, import_row};
use crate::{SqliteStore, is_unique_violation, new_id, now, ts, unexpected};

/// Bytes gathered before a chunk row is written.
const CHUNK: usize = 256 * 1024;

struct SqliteVaultWriter {
    pool: SqlitePool,
    /// The store's one writing connection (see [`SqliteStore`]).
    writes: SqlitePool,
    id: String,
    import: NewImport,
    buffer: Vec<u8>,
    chunks: i64,
    size: u64,
    committed: bool,
    committing: bool,
}

impl SqliteVaultWriter {
    async fn flush(&mut self) -> Result<(), VaultError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        sqlx::query("INSERT INTO vault_chunks (import_id, n, bytes) VALUES (?, ?, ?)")
            .bind(&self.id)
            .bind(self.chunks)
            .bind(&self.buffer)
            .execute(&self.writes)
            .await
            .map_err(unexpected("writing a vault chunk"))?;
        self.chunks += 1;
        self.buffer.clear();
        Ok(())
    }
}

#[async_trait::async_trait]
impl VaultWriter for SqliteVaultWriter {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), VaultError> {
        self.size += chunk.len() as u64;
        for piece in chunk.chunks(CHUNK) {
            self.buffer.extend_from_slice(piece);
            if self.buffer.len() >= CHUNK {
                self.flush().await?;
            }
        }
        Ok(())
    }

    async fn commit(mut self: Box<Self>, sha256: &str) -> Result<ImportSummary, VaultError> {
        self.flush().await?;
        // From here the import row may commit even if this future is dropped (a
        // deadline, a client gone): its chunks are then left to the sweep, which
        // deletes them only when no import row names them.
        self.committing = true;
        let inserted = sqlx::query(
            "INSERT INTO imports (id, dataset, contract, content_type, source, idempotency_key, \
             size, sha256, received_at, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'received')",
        )
        .bind(&self.id)
        .bind(self.import.dataset.as_str())
        .bind(i64::from(self.import.contract.get()))
        .bind(&self.import.content_type)
        .bind(&self.import.source)
        .bind(&self.import.idempotency_key)
        .bind(i64::try_from(self.size).unwrap_or(i64::MAX))
        .bind(sha256)
        .bind(ts(now()))
        .execute(&self.writes)
        .await;
        match inserted {
            Ok(_) => {
                self.committed = true;
                let id = ImportId::parse(self.id.clone()).map_err(anyhow::Error::new)?;
                get(&self.pool, &id).await
            }
            Err(e) if is_unique_violation(&e) => {
                self.committing = false; // refused: nothing committed, drop deletes the chunks
                let first = earlier(&self.pool, &self.import, Some(sha256)).await?;
                Err(first.map_or_else(|| VaultError::Unexpected(e.into()), already))
            }
            Err(e) => Err(unexpected("committing an import")(e).into()),
        }
    }
}

impl Drop for SqliteVaultWriter {
    fn drop(&mut self) {
        if self.committed || self.committing || self.chunks == 0 {
            return;
        }
        let (pool, id) = (self.writes.clone(), self.id.clone());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let deleted = sqlx::query("DELETE FROM vault_chunks WHERE import_id = ?")
                    .bind(&id)
                    .execute(&pool)
                    .await;
                if let Err(e) = deleted {
                    tracing::warn!(upload = %id, error = %e, "could not delete an abandoned upload");
                }
            });
        }
    }
}

fn already(first: ImportSummary) -> VaultError {
    VaultError::AlreadyReceived(Box::new(first))
}

/// The dataset's import with the same idempotency key, or else the same body.
async fn earlier(
    pool: &SqlitePool,
    import: &NewImport,
    sha256: Option<&str>,
) -> Result<Option<ImportSummary>, VaultError> {
    let row = sqlx::query(&format!(
        "SELECT {IMPORT_COLUMNS} FROM imports WHERE dataset = ? \
         AND (idempotency_key = ? OR sha256 = ?) ORDER BY seq LIMIT 1"
    ))
    .bind(import.dataset.as_str())
    .bind(&import.idempotency_key)
    .bind(sha256)
    .fetch_optional(pool)
    .await
    .map_err(unexpected("looking up an earlier import"))?;
    Ok(row.as_ref().map(import_row).transpose()?)
}

pub(crate) async fn get(pool: &SqlitePool, id: &ImportId) -> Result<ImportSummary, VaultError> {
    let row = sqlx::query(&format!(
        "SELECT {IMPORT_COLUMNS} FROM imports WHERE id = ?"
    ))
    .bind(id.as_str())
    .fetch_optional(pool)
    .await
    .map_err(unexpected("reading an import"))?;
    Ok(import_row(&row.ok_or(VaultError::NotFound)?)?)
}

struct SqliteVaultReader {
    pool: SqlitePool,
    id: String,
    next: i64,
}

#[async_trait::async_trait]
impl VaultReader for SqliteVaultReader {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, VaultError> {
        let bytes: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT bytes FROM vault_chunks WHERE import_id = ? AND n = ?")
                .bind(&self.id)
                .bind(self.next)
                .fetch_optional(&self.pool)
                .await
                .map_err(unexpected("reading a vault chunk"))?;
        self.next += 1;
        Ok(bytes)
    }
}

#[async_trait::async_trait]
impl ImportVault for SqliteStore {
    async fn begin(&self, import: &NewImport) -> Result<Box<dyn VaultWriter>, VaultError> {
        if import.idempotency_key.is_some()
            && let Some(first) = earlier(&self.pool, import, None).await?
        {
            return Err(already(first));
        }
        Ok(Box::new(SqliteVaultWriter {
            pool: self.pool.clone(),
            writes: self.writes.clone(),
            id: new_id(),
            import: import.clone(),
            buffer: Vec::with_capacity(CHUNK),
            chunks: 0,
            size: 0,
            committed: false,
            committing: false,
        }))
    }

    async fn open(&self, id: &ImportId) -> Result<Box<dyn VaultReader>, VaultError> {
        get(&self.pool, id).await?;
        Ok(Box::new(SqliteVaultReader {
            pool: self.pool.clone(),
            id: id.as_str().to_owned(),
            next: 0,
        }))
    }

    async fn get(&self, id: &ImportId) -> Result<ImportSummary, VaultError> {
        get(&self.pool, id).await
    }

    async fn list(
        &self,
        dataset: &intake_domain::DatasetName,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<ImportSummary>, VaultError> {
        let rows = sqlx::query(&format!(
            "SELECT {IMPORT_COLUMNS} FROM imports WHERE dataset = ? ORDER BY seq DESC LIMIT ? OFFSET ?"
        ))
        .bind(dataset.as_str())
        .bind(i64::from(limit))
        .bind(i64::try_from(offset).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(unexpected("listing imports"))?;
        Ok(rows.iter().map(import_row).collect::<Result<_, _>>()?)
    }

    async fn list_before(
        &self,
        dataset: &intake_domain::DatasetName,
        before: &ImportId,
        limit: u32,
    ) -> Result<Vec<ImportSummary>, VaultError> {
        let rows = sqlx::query(&format!(
            "SELECT {IMPORT_COLUMNS} FROM imports WHERE dataset = ?1 \
             AND seq < (SELECT seq FROM imports WHERE dataset = ?1 AND id = ?2) \
             ORDER BY seq DESC LIMIT ?3"
        ))
        .bind(dataset.as_str())
        .bind(before.as_str())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(unexpected("listing imports"))?;
        Ok(rows.iter().map(import_row).collect::<Result<_, _>>()?)
    }
}

/// See [`crate::SqliteStore::sweep_abandoned_uploads`]. Upload ids are UUIDv7, so
/// their start time is in the id.
pub(crate) async fn sweep_abandoned_uploads(
    pool: &SqlitePool,
    older_than: std::time::Duration,
) -> anyhow::Result<u64> {
    let orphans: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT import_id FROM vault_chunks \
         WHERE import_id NOT IN (SELECT id FROM imports)",
    )
    .fetch_all(pool)
    .await
    .map_err(unexpected("listing abandoned uploads"))?;
    let cutoff = std::time::SystemTime::now() - older_than;
    let mut swept = 0;
    for id in orphans {
        let started = uuid::Uuid::try_parse(&id)
            .ok()
            .and_then(|u| u.get_timestamp())
            .map(|t| t.to_unix())
            .map(|(secs, nanos)| std::time::UNIX_EPOCH + std::time::Duration::new(secs, nanos));
        if started.is_some_and(|at| at > cutoff) {
            continue; // maybe still uploading
        }
        let deleted = sqlx::query(
            "DELETE FROM vault_chunks WHERE import_id = ?1 \
             AND NOT EXISTS (SELECT 1 FROM imports WHERE id = ?1)",
        )
        .bind(&id)
        .execute(pool)
        .await
        .map_err(unexpected("deleting an abandoned upload"))?;
        swept += u64::from(deleted.rows_affected() > 0);
    }
    Ok(swept)
}
