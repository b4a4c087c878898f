//! Datasets and contracts.

use intake_domain::ports::{
    CatalogError, ContractStore, Dataset, DatasetStore, DeletedDataset, PublishedContract,
};
use intake_domain::{Contract, ContractVersion, DatasetName};

use crate::layout::{self, Kind};
use crate::rows::{contract_row, dataset_row};
use crate::{PgStore, is_unique_violation, unexpected};

/// The dimensions and measures a contract declares: each needs a column.
fn fields(contract: &Contract) -> Vec<(Kind, &str)> {
    let dimensions = contract
        .dimensions()
        .iter()
        .map(|d| (Kind::Dimension, d.as_str()));
    let measures = contract.measure_names().map(|m| (Kind::Measure, m));
    dimensions.chain(measures).collect()
}

const CONTRACT_COLUMNS: &str = "dataset, version, body::text AS body, published_at";

#[async_trait::async_trait]
impl DatasetStore for PgStore {
    async fn create(
        &self,
        name: &DatasetName,
        contract: &Contract,
    ) -> Result<Dataset, CatalogError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(unexpected("creating a dataset"))?;
        let inserted = sqlx::query("INSERT INTO datasets (name, current_contract) VALUES ($1, 1)")
            .bind(name.as_str())
            .execute(&mut *tx)
            .await;
        match inserted {
            Err(e) if is_unique_violation(&e) => {
                drop(tx);
                let tombstone: Option<Option<chrono::DateTime<chrono::Utc>>> =
                    sqlx::query_scalar("SELECT deleted_at FROM datasets WHERE name = $1")
                        .bind(name.as_str())
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(unexpected("creating a dataset"))?;
                return Err(match tombstone {
                    Some(Some(_)) => CatalogError::Deleted,
                    _ => CatalogError::AlreadyExists,
                });
            }
            other => other.map_err(unexpected("creating a dataset"))?,
        };
        sqlx::query("INSERT INTO contracts (dataset, version, body) VALUES ($1, 1, $2::jsonb)")
            .bind(name.as_str())
            .bind(contract.to_json().to_string())
            .execute(&mut *tx)
            .await
            .map_err(unexpected("storing the first contract"))?;
        layout::create(&mut tx, name.as_str())
            .await
            .map_err(unexpected("creating the dataset's table"))?;
        layout::ensure(&mut tx, name.as_str(), &fields(contract))
            .await
            .map_err(unexpected("creating the dataset's table"))?;
        tx.commit()
            .await
            .map_err(unexpected("creating a dataset"))?;
        DatasetStore::get(self, name).await
    }

    async fn get(&self, name: &DatasetName) -> Result<Dataset, CatalogError> {
        let row = sqlx::query(
            "SELECT name, current_contract, revision, created_at FROM datasets \
             WHERE name = $1 AND deleted_at IS NULL",
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
        let mut tx = self.pool.begin().await.map_err(unexpected(DOING))?;
        let ds = name.as_str();
        // The row locked: an upload or a source page inserting an import of it (whose
        // foreign key check shares the row) commits first and is counted below.
        let found: Option<(i64, bool, i64)> = sqlx::query_as(
            "SELECT id, deleted_at IS NOT NULL, records FROM datasets WHERE name = $1 FOR UPDATE",
        )
        .bind(ds)
        .fetch_optional(&mut *tx)
        .await
        .map_err(unexpected(DOING))?;
        let (id, records) = match found {
            Some((id, false, records)) => (id, records),
            Some((id, true, _)) if purge => (id, 0),
            _ => return Err(CatalogError::NotFound),
        };
        let (documents, busy): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), COUNT(*) FILTER (WHERE status IN ('received', 'processing')) \
             FROM imports WHERE dataset = $1",
        )
        .bind(ds)
        .fetch_one(&mut *tx)
        .await
        .map_err(unexpected(DOING))?;
        if busy > 0 {
            return Err(CatalogError::Busy(u64::try_from(busy).unwrap_or(0)));
        }
        // `records_<id>`: a number, no quoting needed.
        let drop_table = format!("DROP TABLE IF EXISTS records_{id}");
        let derived = [
            "DELETE FROM deliveries WHERE subscription_id IN \
               (SELECT id FROM subscriptions WHERE dataset = $1)",
            "DELETE FROM subscriptions WHERE dataset = $1",
            "DELETE FROM outbox WHERE dataset = $1",
            "DELETE FROM callbacks WHERE dataset = $1",
            "DELETE FROM sources WHERE dataset = $1",
            "DELETE FROM jobs WHERE dataset = $1",
            "DELETE FROM rollup_points WHERE dataset = $1",
            drop_table.as_str(),
            "DELETE FROM dataset_fields WHERE dataset = $1",
            "DELETE FROM record_history WHERE dataset = $1",
            "DELETE FROM identities WHERE dataset = $1",
            "DELETE FROM conflicts WHERE dataset = $1",
        ];
        let kept = [
            "UPDATE datasets SET deleted_at = now(), revision = revision + 1, records = 0 \
                     WHERE name = $1",
        ];
        let purged = [
            "DELETE FROM vault_chunks WHERE import_id IN (SELECT id FROM imports WHERE dataset = $1)",
            "DELETE FROM import_leases WHERE import_id IN (SELECT id FROM imports WHERE dataset = $1)",
            "DELETE FROM imports WHERE dataset = $1",
            "DELETE FROM contracts WHERE dataset = $1",
            "DELETE FROM datasets WHERE name = $1",
        ];
        let last: &[&str] = if purge { &purged } else { &kept };
        for sql in derived.iter().copied().chain(last.iter().copied()) {
            let query = sqlx::query(sql);
            let query = if sql.contains("$1") {
                query.bind(ds)
            } else {
                query
            };
            query.execute(&mut *tx).await.map_err(unexpected(DOING))?;
        }
        tx.commit().await.map_err(unexpected(DOING))?;
        self.layouts.forget(ds);
        Ok(DeletedDataset {
            records: u64::try_from(records).unwrap_or(0),
            documents: u64::try_from(documents).unwrap_or(0),
            purged: purge,
        })
    }
}

#[async_trait::async_trait]
impl ContractStore for PgStore {
    async fn publish(
        &self,
        dataset: &DatasetName,
        contract: &Contract,
    ) -> Result<PublishedContract, CatalogError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(unexpected("publishing a contract"))?;
        // Columns first: adding one waits for the imports writing the dataset, which
        // lock the dataset row when they finish (the other order could deadlock).
        if layout::ensure(&mut tx, dataset.as_str(), &fields(contract))
            .await
            .map_err(unexpected("adding the contract's columns"))?
            .is_none()
        {
            return Err(CatalogError::NotFound);
        }
        // The current contract is always the highest version; incrementing it in place
        // locks the dataset row, so concurrent publishers number one after another.
        let version: Option<i32> = sqlx::query_scalar(
            "UPDATE datasets SET current_contract = current_contract + 1 \
             WHERE name = $1 AND deleted_at IS NULL RETURNING current_contract",
        )
        .bind(dataset.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(unexpected("numbering a contract"))?;
        let version = version.ok_or(CatalogError::NotFound)?;
        sqlx::query("INSERT INTO contracts (dataset, version, body) VALUES ($1, $2, $3::jsonb)")
            .bind(dataset.as_str())
            .bind(version)
            .bind(contract.to_json().to_string())
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
        let row = sqlx::query(&format!(
            "SELECT {CONTRACT_COLUMNS} FROM contracts WHERE dataset = $1 AND version = $2"
        ))
        .bind(dataset.as_str())
        .bind(i32::try_from(version.get()).unwrap_or(i32::MAX))
        .fetch_optional(&self.pool)
        .await
        .map_err(unexpected("reading a contract"))?;
        contract_row(&row.ok_or(CatalogError::NotFound)?)
    }

    async fn list(&self, dataset: &DatasetName) -> Result<Vec<PublishedContract>, CatalogError> {
        DatasetStore::get(self, dataset).await?;
        let rows = sqlx::query(&format!(
            "SELECT {CONTRACT_COLUMNS} FROM contracts WHERE dataset = $1 ORDER BY version"
        ))
        .bind(dataset.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(unexpected("listing contracts"))?;
        rows.iter().map(contract_row).collect()
    }
}
