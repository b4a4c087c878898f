//! Datasets and contracts.

use intake_domain::ports::{CatalogError, ContractStore, Dataset, DatasetStore, PublishedContract};
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
            Err(e) if is_unique_violation(&e) => return Err(CatalogError::AlreadyExists),
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
            "SELECT name, current_contract, revision, created_at FROM datasets WHERE name = $1",
        )
        .bind(name.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(unexpected("reading a dataset"))?;
        Ok(dataset_row(&row.ok_or(CatalogError::NotFound)?)?)
    }

    async fn list(&self) -> Result<Vec<Dataset>, CatalogError> {
        let rows = sqlx::query(
            "SELECT name, current_contract, revision, created_at FROM datasets ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(unexpected("listing datasets"))?;
        Ok(rows.iter().map(dataset_row).collect::<Result<_, _>>()?)
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
             WHERE name = $1 RETURNING current_contract",
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
