//! Datasets and contracts.

use intake_domain::ports::{
    CatalogError, ContractStore, Dataset, DatasetStore, DeletedDataset, PublishedContract,
};
use intake_domain::{Contract, ContractVersion, DatasetName};

use crate::rows::{contract_row, dataset_row};
use crate::{SqliteStore, is_unique_violation, now, ts, unexpected};

#[async_trait::async_trait]
impl DatasetStore for SqliteStore {
    async fn create(
        &self,
        name: &DatasetName,
        contract: &Contract,
    ) -> Result<Dataset, CatalogError> {
        let created = ts(now());
        let mut tx = self
            .writes
            .begin()
            .await
            .map_err(unexpected("creating a dataset"))?;
        let inserted = sqlx::query(
            "INSERT INTO datasets (name, current_contract, revision, created_at) VALUES (?, 1, 0, ?)",
        )
        .bind(name.as_str())
        .bind(&created)
        .execute(&mut *tx)
        .await;
        match inserted {
            Err(e) if is_unique_violation(&e) => {
                let tombstone: Option<Option<String>> =
                    sqlx::query_scalar("SELECT deleted_at FROM datasets WHERE name = ?")
                        .bind(name.as_str())
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(unexpected("creating a dataset"))?;
                return Err(match tombstone {
                    Some(Some(_)) => CatalogError::Deleted,
                    _ => CatalogError::AlreadyExists,
                });
            }
            other => other.map_err(unexpected("creating a dataset"))?,
        };
        sqlx::query(
            "INSERT INTO contracts (dataset, version, body, published_at) VALUES (?, 1, ?, ?)",
        )
        .bind(name.as_str())
        .bind(contract.to_json().to_string())
        .bind(&created)
        .execute(&mut *tx)
        .await
        .map_err(unexpected("storing the first contract"))?;
        tx.commit()
            .await
            .map_err(unexpected("creating a dataset"))?;
        DatasetStore::get(self, name).await
    }

    async fn get(&self, name: &DatasetName) -> Result<Dataset, CatalogError> {
        let row = sqlx::query(
            "SELECT name, current_contract, revision, created_at FROM datasets \
             WHERE name = ? AND deleted_at IS NULL",
        )
        .bind(name.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(unexpected("reading a dataset"))?;
        Ok(dataset_row(&row.ok_or(CatalogError::NotFound)?)?)
    }

    async fn list(&self) -> Result<Vec<Dataset>, CatalogError> {
        let rows = sqlx::query(
            "SELECT name, current_contract, revision, created_at FROM datasets \
             WHERE deleted_at IS NULL ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(unexpected("listing datasets"))?;
        Ok(rows.iter().map(dataset_row).collect::<Result<_, _>>()?)
    }

    async fn delete(
        &self,
        name: &DatasetName,
        purge: bool,
    ) -> Result<DeletedDataset, CatalogError> {
        const DOING: &str = "deleting a dataset";
        let mut tx = self
            .writes
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(unexpected(DOING))?;
        let ds = name.as_str();
        let found: Option<(Option<String>, i64)> =
            sqlx::query_as("SELECT deleted_at, records FROM datasets WHERE name = ?")
                .bind(ds)
                .fetch_optional(&mut *tx)
                .await
                .map_err(unexpected(DOING))?;
        let records = match found {
            Some((None, records)) => records,
            Some((Some(_), _)) if purge => 0,
            _ => return Err(CatalogError::NotFound),
        };
        let (documents, busy): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), COUNT(*) FILTER (WHERE status IN ('received', 'processing')) \
             FROM imports WHERE dataset = ?",
        )
        .bind(ds)
        .fetch_one(&mut *tx)
        .await
        .map_err(unexpected(DOING))?;
        if busy > 0 {
            return Err(CatalogError::Busy(u64::try_from(busy).unwrap_or(0)));
        }
        let derived = [
            "DELETE FROM deliveries WHERE subscription_id IN \
               (SELECT id FROM subscriptions WHERE dataset = ?1)",
            "DELETE FROM subscriptions WHERE dataset = ?1",
            "DELETE FROM outbox WHERE dataset = ?1",
            "DELETE FROM callbacks WHERE dataset = ?1",
            "DELETE FROM sources WHERE dataset = ?1",
            "DELETE FROM job_checkpoints WHERE job_id IN (SELECT id FROM jobs WHERE dataset = ?1)",
            "DELETE FROM jobs WHERE dataset = ?1",
            "DELETE FROM rollup_points WHERE dataset = ?1",
            "DELETE FROM records WHERE dataset = ?1",
            "DELETE FROM record_history WHERE dataset = ?1",
            "DELETE FROM identities WHERE dataset = ?1",
            "DELETE FROM conflicts WHERE dataset = ?1",
        ];
        let kept = [
            "UPDATE datasets SET deleted_at = ?2, revision = revision + 1, records = 0 \
                     WHERE name = ?1",
        ];
        let purged = [
            "DELETE FROM vault_chunks WHERE import_id IN (SELECT id FROM imports WHERE dataset = ?1)",
            "DELETE FROM imports WHERE dataset = ?1",
            "DELETE FROM contracts WHERE dataset = ?1",
            "DELETE FROM datasets WHERE name = ?1",
        ];
        let last: &[&str] = if purge { &purged } else { &kept };
        let at = ts(now());
        for sql in derived.iter().chain(last) {
            sqlx::query(sql)
                .bind(ds)
                .bind(&at)
                .execute(&mut *tx)
                .await
                .map_err(unexpected(DOING))?;
        }
        tx.commit().await.map_err(unexpected(DOING))?;
        Ok(DeletedDataset {
            records: u64::try_from(records).unwrap_or(0),
            documents: u64::try_from(documents).unwrap_or(0),
            purged: purge,
        })
    }
}

#[async_trait::async_trait]
impl ContractStore for SqliteStore {
    async fn publish(
        &self,
        dataset: &DatasetName,
        contract: &Contract,
    ) -> Result<PublishedContract, CatalogError> {
        let mut tx = self
            .writes
            .begin()
            .await
            .map_err(unexpected("publishing a contract"))?;
        // The current contract is always the highest version; incrementing it in place
        // takes the write lock, so concurrent publishers number one after another.
        let version: Option<i64> = sqlx::query_scalar(
            "UPDATE datasets SET current_contract = current_contract + 1 \
             WHERE name = ? AND deleted_at IS NULL RETURNING current_contract",
        )
        .bind(dataset.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(unexpected("numbering a contract"))?;
        let version = version.ok_or(CatalogError::NotFound)?;
        sqlx::query(
            "INSERT INTO contracts (dataset, version, body, published_at) VALUES (?, ?, ?, ?)",
        )
        .bind(dataset.as_str())
        .bind(version)
        .bind(contract.to_json().to_string())
        .bind(ts(now()))
        .execute(&mut *tx)
        .await
        .map_err(unexpected("storing a contract"))?;
        tx.commit()
            .await
            .map_err(unexpected("publishing a contract"))?;
        let version = u32::try_from(version)
            .ok()
            .and_then(|v| ContractVersion::try_new(v).ok());
        let version = version.ok_or(CatalogError::Corrupt("bad version".into()))?;
        ContractStore::get(self, dataset, version).await
    }

    async fn get(
        &self,
        dataset: &DatasetName,
        version: ContractVersion,
    ) -> Result<PublishedContract, CatalogError> {
        let row = sqlx::query(
            "SELECT dataset, version, body, published_at FROM contracts WHERE dataset = ? AND version = ?",
        )
        .bind(dataset.as_str())
        .bind(i64::from(version.get()))
        .fetch_optional(&self.pool)
        .await
        .map_err(unexpected("reading a contract"))?;
        contract_row(&row.ok_or(CatalogError::NotFound)?)
    }

    async fn list(&self, dataset: &DatasetName) -> Result<Vec<PublishedContract>, CatalogError> {
        DatasetStore::get(self, dataset).await?;
        let rows = sqlx::query(
            "SELECT dataset, version, body, published_at FROM contracts WHERE dataset = ? ORDER BY version",
        )
        .bind(dataset.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(unexpected("listing contracts"))?;
        rows.iter().map(contract_row).collect()
    }
}
