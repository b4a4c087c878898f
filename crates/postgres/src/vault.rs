//! The raw vault: an upload writes its chunks in its own transaction, and the import
//! row that queues it is inserted in the same transaction at commit; dropping the
//! writer rolls everything back.

use intake_domain::ports::{
    ImportSummary, ImportVault, NewImport, VaultError, VaultReader, VaultWriter,
};
use intake_domain::{DatasetName, ImportId};
use sqlx::{PgPool, Postgres, Transaction};

use crate::rows::{IMPORT_COLUMNS, import_row};
use crate::{PgStore, is_unique_violation, new_id, unexpected};

/// Bytes gathered before a chunk row is written.
const CHUNK: usize = 256 * 1024;

struct PgVaultWriter {
    pool: PgPool,
    tx: Transaction<'static, Postgres>,
    id: String,
    import: NewImport,
    buffer: Vec<u8>,
    chunks: i32,
    size: u64,
}

impl PgVaultWriter {
    async fn flush(&mut self) -> Result<(), VaultError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        sqlx::query("INSERT INTO vault_chunks (import_id, n, bytes) VALUES ($1, $2, $3)")
            .bind(&self.id)
            .bind(self.chunks)
            .bind(&self.buffer)
            .execute(&mut *self.tx)
            .await
            .map_err(unexpected("writing a vault chunk"))?;
        self.chunks += 1;
        self.buffer.clear();
        Ok(())
    }
}

#[async_trait::async_trait]
impl VaultWriter for PgVaultWriter {
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
        let inserted = sqlx::query(
            "INSERT INTO imports (id, dataset, contract, content_type, source, idempotency_key, \
             size, sha256, status) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'received')",
        )
        .bind(&self.id)
        .bind(self.import.dataset.as_str())
        .bind(i32::try_from(self.import.contract.get()).unwrap_or(i32::MAX))
        .bind(&self.import.content_type)
        .bind(&self.import.source)
        .bind(&self.import.idempotency_key)
        .bind(i64::try_from(self.size).unwrap_or(i64::MAX))
        .bind(sha256)
        .execute(&mut *self.tx)
        .await;
        let Self {
            pool,
            tx,
            id,
            import,
            ..
        } = *self;
        match inserted {
            Ok(_) => {
                tx.commit()
                    .await
                    .map_err(unexpected("committing an import"))?;
                let id = ImportId::parse(id).map_err(anyhow::Error::new)?;
                get(&pool, &id).await
            }
            Err(e) if is_unique_violation(&e) => {
                drop(tx); // rolls the chunks back
                let first = earlier(&pool, &import, Some(sha256)).await?;
                Err(first.map_or_else(|| VaultError::Unexpected(e.into()), already))
            }
            Err(e) => Err(unexpected("committing an import")(e).into()),
        }
    }
}

fn already(first: ImportSummary) -> VaultError {
    VaultError::AlreadyReceived(Box::new(first))
}

/// The dataset's import with the same idempotency key, or else the same body.
async fn earlier(
    pool: &PgPool,
    import: &NewImport,
    sha256: Option<&str>,
) -> Result<Option<ImportSummary>, VaultError> {
    let row = sqlx::query(&format!(
        "SELECT {IMPORT_COLUMNS} FROM imports WHERE dataset = $1 \
         AND (idempotency_key = $2 OR sha256 = $3) ORDER BY seq LIMIT 1"
    ))
    .bind(import.dataset.as_str())
    .bind(&import.idempotency_key)
    .bind(sha256)
    .fetch_optional(pool)
    .await
    .map_err(unexpected("looking up an earlier import"))?;
    Ok(row.as_ref().map(import_row).transpose()?)
}

pub(crate) async fn get(pool: &PgPool, id: &ImportId) -> Result<ImportSummary, VaultError> {
    let row = sqlx::query(&format!(
        "SELECT {IMPORT_COLUMNS} FROM imports WHERE id = $1"
    ))
    .bind(id.as_str())
    .fetch_optional(pool)
    .await
    .map_err(unexpected("reading an import"))?;
    Ok(import_row(&row.ok_or(VaultError::NotFound)?)?)
}

struct PgVaultReader {
    pool: PgPool,
    id: String,
    next: i32,
}

#[async_trait::async_trait]
impl VaultReader for PgVaultReader {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, VaultError> {
        let bytes: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT bytes FROM vault_chunks WHERE import_id = $1 AND n = $2")
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
impl ImportVault for PgStore {
    async fn begin(&self, import: &NewImport) -> Result<Box<dyn VaultWriter>, VaultError> {
        if import.idempotency_key.is_some()
            && let Some(first) = earlier(&self.pool, import, None).await?
        {
            return Err(already(first));
        }
        let tx = self
            .pool
            .begin()
            .await
            .map_err(unexpected("starting an upload"))?;
        Ok(Box::new(PgVaultWriter {
            pool: self.pool.clone(),
            tx,
            id: new_id(),
            import: import.clone(),
            buffer: Vec::with_capacity(CHUNK),
            chunks: 0,
            size: 0,
        }))
    }

    async fn open(&self, id: &ImportId) -> Result<Box<dyn VaultReader>, VaultError> {
        get(&self.pool, id).await?;
        Ok(Box::new(PgVaultReader {
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
        dataset: &DatasetName,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<ImportSummary>, VaultError> {
        let rows = sqlx::query(&format!(
            "SELECT {IMPORT_COLUMNS} FROM imports WHERE dataset = $1 ORDER BY seq DESC LIMIT $2 OFFSET $3"
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
        dataset: &DatasetName,
        before: &ImportId,
        limit: u32,
    ) -> Result<Vec<ImportSummary>, VaultError> {
        let rows = sqlx::query(&format!(
            "SELECT {IMPORT_COLUMNS} FROM imports WHERE dataset = $1 \
             AND seq < (SELECT seq FROM imports WHERE dataset = $1 AND id = $2) \
             ORDER BY seq DESC LIMIT $3"
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
