use chrono::{DateTime, Utc};

use crate::contract::Contract;
use crate::model::{ContractVersion, DatasetName, Revision};

/// A dataset as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Its name.
    pub name: DatasetName,
    /// The contract new imports are processed with.
    pub current_contract: ContractVersion,
    /// Increases with every committed import.
    pub revision: Revision,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// A published contract.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishedContract {
    /// Its dataset.
    pub dataset: DatasetName,
    /// Its number.
    pub version: ContractVersion,
    /// The compiled contract.
    pub contract: Contract,
    /// When it was published.
    pub published_at: DateTime<Utc>,
}

/// Errors of the dataset and contract stores.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The dataset (or contract version) does not exist.
    #[error("not found")]
    NotFound,
    /// A dataset with this name already exists.
    #[error("already exists")]
    AlreadyExists,
    /// A deleted dataset's documents keep this name taken until they are purged.
    #[error("a deleted dataset of this name keeps its documents")]
    Deleted,
    /// Imports of the dataset are waiting or being processed (this many).
    #[error("{0} imports are waiting or being processed")]
    Busy(u64),
    /// A stored contract no longer compiles (it was written by another version).
    #[error("stored contract is unreadable: {0}")]
    Corrupt(String),
    /// Anything else (the store is unreachable, …).
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// What deleting a dataset removed (ADR 37).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeletedDataset {
    /// Records its latest state held.
    pub records: u64,
    /// Documents (imports) it had in the vault: kept, or removed when `purged`.
    pub documents: u64,
    /// Whether its documents and name went too.
    pub purged: bool,
}

/// Datasets.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait::async_trait]
pub trait DatasetStore: Send + Sync {
    /// Creates a dataset with its first contract (version 1) atomically.
    ///
    /// # Errors
    /// - `AlreadyExists` when the name is taken (MUST be detected, also under races);
    /// - `Deleted` when a deleted dataset's tombstone holds it.
    async fn create(
        &self,
        name: &DatasetName,
        contract: &Contract,
    ) -> Result<Dataset, CatalogError>;

    /// One dataset.
    ///
    /// # Errors
    /// - `NotFound` when there is no such dataset.
    async fn get(&self, name: &DatasetName) -> Result<Dataset, CatalogError>;

    /// All datasets, ordered by name.
    ///
    /// # Errors
    /// - `Unexpected` only.
    async fn list(&self) -> Result<Vec<Dataset>, CatalogError>;

    /// Deletes a dataset in one transaction (ADR 37): its latest state, history,
    /// identities, conflicts, outbox events and their deliveries, callbacks,
    /// subscriptions, sources, jobs and rollup points. Without `purge` its contracts
    /// and documents (imports and their raw bytes) stay under a tombstone that keeps
    /// the name taken ([`DatasetStore::create`] then answers `Deleted`) and that no
    /// other method sees; with `purge` they go too, and the name is free. A tombstone
    /// can be purged.
    ///
    /// # Errors
    /// - `NotFound` when there is no such dataset (nor, with `purge`, a tombstone);
    /// - `Busy` when imports of it are waiting or being processed: nothing is deleted.
    async fn delete(&self, name: &DatasetName, purge: bool)
    -> Result<DeletedDataset, CatalogError>;
}

/// Contracts: immutable once published, numbered 1, 2, 3… per dataset.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait::async_trait]
pub trait ContractStore: Send + Sync {
    /// Publishes the next version and makes it the dataset's current contract.
    /// Numbers MUST be gap-free and unique under concurrent publishers.
    ///
    /// # Errors
    /// - `NotFound` when the dataset does not exist.
    async fn publish(
        &self,
        dataset: &DatasetName,
        contract: &Contract,
    ) -> Result<PublishedContract, CatalogError>;

    /// One version.
    ///
    /// # Errors
    /// - `NotFound` when the dataset or version does not exist; `Corrupt` as above.
    async fn get(
        &self,
        dataset: &DatasetName,
        version: ContractVersion,
    ) -> Result<PublishedContract, CatalogError>;

    /// All versions of a dataset, oldest first.
    ///
    /// # Errors
    /// - `NotFound` when the dataset does not exist.
    async fn list(&self, dataset: &DatasetName) -> Result<Vec<PublishedContract>, CatalogError>;
}
