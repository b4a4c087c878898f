//! The dataset use cases (DESIGN §4, §5): datasets with their contracts, and reading
//! the records, history and conflicts that imports left.
//!
//! A handler parses its request into domain types, calls one method here and maps
//! the result; the rules (a dataset's first contract, how a key is read from a URL,
//! what counts a dataset reports) live here, not in the API.

use std::sync::Arc;

use crate::contract::{Contract, ContractLimits, ContractTooLarge};
use crate::model::{Conflict, ContractVersion, DatasetName, ImportId, KeyError, RecordKey};
use crate::ports::{
    Analytics, Cache, CatalogError, ContractStore, Dataset, DatasetStore, DeletedDataset,
    HistoryEntries, HistoryPage, PublishedContract, RecordFilter, RecordOrder, RecordPage,
    RecordQuery, RecordStore, StoreError, StoredRecord,
};

mod analytics;
mod flights;
mod known;
mod marks;
mod selection;

pub use analytics::MAX_TOP_K;
pub use known::KnownDatasets;
use selection::Selection;

/// The ports the dataset use cases work through.
#[derive(Clone)]
pub struct DatasetPorts {
    /// Datasets.
    pub datasets: Arc<dyn DatasetStore>,
    /// Published contracts.
    pub contracts: Arc<dyn ContractStore>,
    /// Latest state, history and conflicts.
    pub records: Arc<dyn RecordStore>,
    /// Aggregates and top-k.
    pub analytics: Arc<dyn Analytics>,
    /// Where analytics answers are cached.
    pub cache: Arc<dyn Cache>,
}

/// A dataset with what it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetOverview {
    /// The dataset.
    pub dataset: Dataset,
    /// Records (keys) in its latest state.
    pub records: u64,
}

/// Why a dataset use case failed.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// No such dataset.
    #[error("no such dataset")]
    UnknownDataset,
    /// A dataset with this name exists already.
    #[error("a dataset with this name exists already")]
    AlreadyExists,
    /// A deleted dataset of this name keeps its documents in the vault.
    #[error(
        "a deleted dataset of this name keeps its documents in the vault; deleting it \
         again with ?purge=true removes them and frees the name"
    )]
    Deleted,
    /// Imports of the dataset are waiting or being processed.
    #[error(
        "{0} imports of this dataset are waiting or being processed; delete it when they \
         have finished"
    )]
    Busy(u64),
    /// The dataset has no such contract version.
    #[error("no such contract version")]
    UnknownContract,
    /// The dataset has no record with this key.
    #[error("no such record")]
    UnknownRecord,
    /// A filter names something that is not a dimension of the current contract.
    #[error("{name:?} is not a dimension of this dataset (its dimensions: {})", dimensions.join(", "))]
    UnknownDimension {
        /// The name filtered on.
        name: String,
        /// The current contract's dimensions.
        dimensions: Vec<String>,
    },
    /// A record filter names something that is not a field (nor a measure) of the
    /// current contract.
    #[error("{name:?} is not a field of this dataset (its fields: {})", fields.join(", "))]
    UnknownField {
        /// The name filtered on.
        name: String,
        /// The fields and measures a filter may name.
        fields: Vec<String>,
    },
    /// A measure that is not in the current contract.
    #[error("{name:?} is not a measure of this dataset (its measures: {})", measures.join(", "))]
    UnknownMeasure {
        /// The name asked for.
        name: String,
        /// The current contract's measures.
        measures: Vec<String>,
    },
    /// A question that cannot be answered as asked (a percentile outside `[0, 1]`, …).
    #[error("{field}: {message}")]
    InvalidQuery {
        /// The parameter at fault.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// The key text does not fit the dataset's key.
    #[error(transparent)]
    BadKey(#[from] KeyError),
    /// The contract is larger than the settings allow; nothing was stored.
    #[error(transparent)]
    ContractTooLarge(#[from] ContractTooLarge),
    /// Anything else (a store unreachable, a stored contract unreadable).
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// The dataset use cases.
pub struct DatasetService {
    ports: DatasetPorts,
    contract_limits: ContractLimits,
    known: KnownDatasets,
    marks: marks::Marks,
    flights: flights::Flights,
}

impl DatasetService {
    /// A service over these ports, with the default [`ContractLimits`].
    pub fn new(ports: DatasetPorts) -> Self {
        Self {
            ports,
            contract_limits: ContractLimits::default(),
            known: KnownDatasets::default(),
            marks: marks::Marks::default(),
            flights: flights::Flights::default(),
        }
    }

    /// The same service, answering from what `known` holds instead of asking the store
    /// each time (shared with the import service and the store's relay, which tell it
    /// of changes: ADR 25).
    pub fn knowing(mut self, known: KnownDatasets) -> Self {
        self.known = known;
        self
    }

    /// The same service, refusing contracts over `limits`.
    pub fn with_contract_limits(mut self, limits: ContractLimits) -> Self {
        self.contract_limits = limits;
        self
    }

    /// Creates a dataset with its first contract (version 1).
    ///
    /// # Errors
    /// `AlreadyExists` when the name is taken; `ContractTooLarge` over the limits.
    #[tracing::instrument(skip_all, fields(dataset = %name), err(level = "debug"))]
    pub async fn create(
        &self,
        name: &DatasetName,
        contract: &Contract,
    ) -> Result<Dataset, DatasetError> {
        self.contract_limits.check(contract)?;
        let dataset = self
            .ports
            .datasets
            .create(name, contract)
            .await
            .map_err(catalog)?;
        tracing::info!("dataset created");
        Ok(dataset)
    }

    /// Deletes a dataset and what it derived (ADR 37); its documents stay in the vault,
    /// keeping the name taken, unless `purge`.
    ///
    /// # Errors
    /// `UnknownDataset`; `Busy` while imports of it are waiting or being processed.
    #[tracing::instrument(skip_all, fields(dataset = %name, purge), err(level = "debug"))]
    pub async fn delete(
        &self,
        name: &DatasetName,
        purge: bool,
    ) -> Result<DeletedDataset, DatasetError> {
        let deleted = self
            .ports
            .datasets
            .delete(name, purge)
            .await
            .map_err(catalog)?;
        self.known.changed(name);
        let documents = if purge {
            "removed"
        } else {
            "kept in the vault"
        };
        tracing::info!(
            records = deleted.records,
            documents = deleted.documents,
            "dataset {name} deleted: {} records gone, its {} documents {documents}",
            deleted.records,
            deleted.documents
        );
        Ok(deleted)
    }

    /// Every dataset, by name.
    ///
    /// # Errors
    /// `Unexpected` only.
    pub async fn list(&self) -> Result<Vec<Dataset>, DatasetError> {
        self.ports.datasets.list().await.map_err(catalog)
    }

    /// One dataset's catalog entry, remembered in memory (ADR 25): for a caller that
    /// only needs to know it exists, its revision or its contract.
    ///
    /// # Errors
    /// `UnknownDataset`.
    pub async fn dataset(&self, name: &DatasetName) -> Result<Dataset, DatasetError> {
        if let Some(dataset) = self.known.dataset(name) {
            return Ok(dataset);
        }
        let epoch = self.known.epoch();
        let dataset = self.ports.datasets.get(name).await.map_err(catalog)?;
        self.known.remember(&dataset, epoch);
        Ok(dataset)
    }

    /// One dataset and how many records it holds (a count the imports keep: no
    /// record is read).
    ///
    /// # Errors
    /// `UnknownDataset`.
    pub async fn get(&self, name: &DatasetName) -> Result<DatasetOverview, DatasetError> {
        let dataset = self.ports.datasets.get(name).await.map_err(catalog)?;
        let query = RecordQuery {
            limit: 0,
            ..RecordQuery::default()
        };
        let page = self.ports.records.list(name, &query).await.map_err(store)?;
        Ok(DatasetOverview {
            dataset,
            records: page.total,
        })
    }

    /// Publishes the next contract version, which new imports are processed with.
    ///
    /// # Errors
    /// `UnknownDataset`; `ContractTooLarge` over the limits.
    #[tracing::instrument(skip_all, fields(dataset = %name), err(level = "debug"))]
    pub async fn publish(
        &self,
        name: &DatasetName,
        contract: &Contract,
    ) -> Result<PublishedContract, DatasetError> {
        self.contract_limits.check(contract)?;
        let published = self
            .ports
            .contracts
            .publish(name, contract)
            .await
            .map_err(catalog)?;
        self.known.changed(name);
        tracing::info!(version = published.version.get(), "contract published");
        Ok(published)
    }

    /// One contract version.
    ///
    /// # Errors
    /// `UnknownDataset` or `UnknownContract`.
    pub async fn contract(
        &self,
        name: &DatasetName,
        version: ContractVersion,
    ) -> Result<PublishedContract, DatasetError> {
        let dataset = self.dataset(name).await?;
        Ok(self.published(&dataset, version).await?.as_ref().clone())
    }

    /// A contract version of `dataset`, read from the store once.
    async fn published(
        &self,
        dataset: &Dataset,
        version: ContractVersion,
    ) -> Result<Arc<PublishedContract>, DatasetError> {
        if let Some(known) = self.known.contract(dataset, version) {
            return Ok(known);
        }
        let published = match self.ports.contracts.get(&dataset.name, version).await {
            Err(CatalogError::NotFound) => return Err(DatasetError::UnknownContract),
            other => Arc::new(other.map_err(catalog)?),
        };
        self.known.remember_contract(dataset, published.clone());
        Ok(published)
    }

    /// Every contract version of a dataset, oldest first.
    ///
    /// # Errors
    /// `UnknownDataset`.
    pub async fn contracts(
        &self,
        name: &DatasetName,
    ) -> Result<Vec<PublishedContract>, DatasetError> {
        self.ports.contracts.list(name).await.map_err(catalog)
    }

    /// The columns an export of `name` has: its current contract's dimensions and
    /// measures, in the contract's order.
    ///
    /// # Errors
    /// `UnknownDataset`.
    pub async fn columns(
        &self,
        name: &DatasetName,
    ) -> Result<(Vec<String>, Vec<String>), DatasetError> {
        let (_, published) = self.current(name).await?;
        let contract = &published.contract;
        Ok((
            contract.dimensions().to_vec(),
            contract.measure_names().map(str::to_owned).collect(),
        ))
    }

    /// The next page of an export: the records matching `filter` among at most
    /// `limit` whose canonical keys sort after `after`, in key order, and where the
    /// following page starts (`None`: this was the last). A page may hold fewer
    /// records than it read, none even, when a filter on a field other than a dimension
    /// is checked here (ADR 39). It costs the same wherever it starts.
    ///
    /// # Errors
    /// `UnknownDataset`; `UnknownField` for a filter on a name that is not a field of
    /// the current contract.
    pub async fn scan(
        &self,
        name: &DatasetName,
        filter: &RecordFilter,
        after: Option<String>,
        limit: u32,
    ) -> Result<(Vec<crate::model::Record>, Option<String>), DatasetError> {
        let (_, published) = self.current(name).await?;
        let selection = Selection::new(&published.contract, filter)?;
        if selection.matches_nothing() {
            return Ok((Vec::new(), None));
        }
        let scan = crate::ports::RecordScan {
            filters: selection.store.clone(),
            after,
            limit,
        };
        let mut page = self.ports.records.scan(name, &scan).await.map_err(store)?;
        let next = (page.len() == limit as usize)
            .then(|| page.last().map(|r| r.key.canonical()))
            .flatten();
        page.retain(|r| selection.keeps(r));
        Ok((page, next))
    }

    /// Records matching a filter, a page at a time: any of several values per
    /// dimension, `updated_since`, and any other field the contract declares. A
    /// filter value holding a NUL character matches nothing (no stored text holds
    /// one). A page at a deep offset starts after a mark (ADR 28): it costs about what
    /// the first page costs, once the marks of the dataset's revision are made. A
    /// filter on a field other than a dimension reads every record the rest of the
    /// filter keeps, to count them (ADR 39).
    ///
    /// # Errors
    /// `UnknownDataset`; `UnknownField` for a filter on a name that is not a field of
    /// the current contract.
    pub async fn records(
        &self,
        name: &DatasetName,
        query: &RecordQuery,
    ) -> Result<RecordPage, DatasetError> {
        let (dataset, published) = self.current(name).await?;
        let selection = Selection::new(&published.contract, &query.filters)?;
        if selection.matches_nothing() {
            return Ok(RecordPage {
                records: Vec::new(),
                total: 0,
            });
        }
        if let RecordOrder::Measure { name: measure, .. } = &query.order {
            let contract = &published.contract;
            if !contract.measure_names().any(|m| m == measure) {
                let measures: Vec<&str> = contract.measure_names().collect();
                return Err(DatasetError::InvalidQuery {
                    field: "sort".into(),
                    message: format!(
                        "{measure:?} is not a measure of this dataset (its measures: {})",
                        measures.join(", ")
                    ),
                });
            }
            if query.after.is_some() {
                return Err(DatasetError::InvalidQuery {
                    field: "sort".into(),
                    message: "a list sorted by a measure is paged by offset, not by cursor".into(),
                });
            }
        }
        let query = RecordQuery {
            filters: selection.store.clone(),
            ..query.clone()
        };
        if !selection.is_stored() {
            return self.records_checked(name, &selection, &query).await;
        }
        if query.offset < marks::EVERY || query.after.is_some() || query.order != RecordOrder::Key {
            return self.ports.records.list(name, &query).await.map_err(store);
        }
        let marks = self.marks(&dataset, &query.filters).await?;
        let Some((mark, offset)) = marks::start(&marks, query.offset) else {
            return self.ports.records.list(name, &query).await.map_err(store);
        };
        let from_mark = RecordQuery {
            after: Some(mark.to_owned()),
            offset,
            ..query.clone()
        };
        self.ports
            .records
            .list(name, &from_mark)
            .await
            .map_err(store)
    }

    /// A page of the records a field filter checked here keeps: every record the
    /// store's part of the filter keeps is read, a page at a time, to count them; the
    /// page's own are then read with where and when they came from.
    async fn records_checked(
        &self,
        name: &DatasetName,
        selection: &Selection<'_>,
        query: &RecordQuery,
    ) -> Result<RecordPage, DatasetError> {
        const READ: u32 = 1000;
        let mut scan = crate::ports::RecordScan {
            filters: query.filters.clone(),
            after: query.after.clone(),
            limit: READ,
        };
        let (mut total, mut keys) = (0_u64, Vec::new());
        // By a measure: every match's value and key, sorted once all are read.
        let mut ranked: Vec<(Option<f64>, RecordKey)> = Vec::new();
        loop {
            let page = self.ports.records.scan(name, &scan).await.map_err(store)?;
            for record in page.iter().filter(|r| selection.keeps(r)) {
                if let RecordOrder::Measure { name, .. } = &query.order {
                    ranked.push((record.measures.get(name), record.key.clone()));
                } else if total >= query.offset && keys.len() < query.limit as usize {
                    keys.push(record.key.clone());
                }
                total += 1;
            }
            if page.len() < READ as usize {
                break;
            }
            scan.after = page.last().map(|r| r.key.canonical());
        }
        if let RecordOrder::Measure { descending, .. } = &query.order {
            ranked.sort_by(|(a, ka), (b, kb)| {
                let by_value = match (a, b) {
                    (Some(a), Some(b)) if *descending => b.total_cmp(a),
                    (Some(a), Some(b)) => a.total_cmp(b),
                    (Some(_), None) => std::cmp::Ordering::Less,
                    (None, Some(_)) => std::cmp::Ordering::Greater,
                    (None, None) => std::cmp::Ordering::Equal,
                };
                by_value.then_with(|| ka.canonical().cmp(&kb.canonical()))
            });
            let start = usize::try_from(query.offset).unwrap_or(usize::MAX);
            keys = ranked
                .into_iter()
                .skip(start)
                .take(query.limit as usize)
                .map(|(_, key)| key)
                .collect();
        }
        let mut records = Vec::with_capacity(keys.len());
        for key in &keys {
            match self.ports.records.get(name, key).await {
                Ok(record) => records.push(record),
                // Gone since it was read (a deletion); the page is one shorter.
                Err(StoreError::NotFound) => {}
                Err(e) => return Err(store(e)),
            }
        }
        Ok(RecordPage { records, total })
    }

    /// The marks of `dataset` at its revision: kept, or made and kept unless an import
    /// committed while they were made (they may then count its keys).
    async fn marks(
        &self,
        dataset: &Dataset,
        filters: &RecordFilter,
    ) -> Result<Arc<Vec<String>>, DatasetError> {
        if let Some(kept) = self.marks.get(dataset, filters) {
            return Ok(kept);
        }
        let made = self
            .ports
            .records
            .marks(&dataset.name, filters, marks::EVERY)
            .await
            .map_err(store)?;
        let made = Arc::new(made);
        if self.dataset(&dataset.name).await?.revision == dataset.revision {
            self.marks.keep(dataset, filters, made.clone());
        }
        Ok(made)
    }

    /// One record's latest state, by the canonical text of its key (`9863/002299`).
    ///
    /// # Errors
    /// `UnknownDataset`, `BadKey` or `UnknownRecord`.
    pub async fn record(
        &self,
        name: &DatasetName,
        key: &str,
    ) -> Result<StoredRecord, DatasetError> {
        let key = self.key(name, key).await?;
        self.ports.records.get(name, &key).await.map_err(store)
    }

    /// A page of one record's accepted states, oldest first.
    ///
    /// # Errors
    /// `UnknownDataset`, `BadKey` or `UnknownRecord`.
    pub async fn history(
        &self,
        name: &DatasetName,
        key: &str,
        page: &HistoryPage,
    ) -> Result<HistoryEntries, DatasetError> {
        let key = self.key(name, key).await?;
        self.ports
            .records
            .history(name, &key, page)
            .await
            .map_err(store)
    }

    /// A dataset's conflicts, oldest first, with the import that reported each.
    ///
    /// # Errors
    /// `UnknownDataset`.
    pub async fn conflicts(
        &self,
        name: &DatasetName,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<(ImportId, Conflict)>, DatasetError> {
        self.dataset(name).await?;
        let store_conflicts = self.ports.records.conflicts(name, limit, offset);
        store_conflicts.await.map_err(store)
    }

    /// The dataset and its current contract.
    async fn current(
        &self,
        name: &DatasetName,
    ) -> Result<(Dataset, Arc<PublishedContract>), DatasetError> {
        let dataset = self.dataset(name).await?;
        let published = self.published(&dataset, dataset.current_contract).await?;
        Ok((dataset, published))
    }

    /// Reads a key with as many components as the current contract's key has.
    async fn key(&self, name: &DatasetName, text: &str) -> Result<RecordKey, DatasetError> {
        let arity = self.current(name).await?.1.contract.key_fields().len();
        Ok(RecordKey::parse(text, arity)?)
    }
}

/// Store errors as the dataset use cases see them; `NotFound` from the catalog is an
/// unknown dataset (contract look-ups map it themselves).
fn catalog(e: CatalogError) -> DatasetError {
    match e {
        CatalogError::NotFound => DatasetError::UnknownDataset,
        CatalogError::AlreadyExists => DatasetError::AlreadyExists,
        CatalogError::Deleted => DatasetError::Deleted,
        CatalogError::Busy(n) => DatasetError::Busy(n),
        e @ CatalogError::Corrupt(_) => DatasetError::Unexpected(anyhow::Error::new(e)),
        CatalogError::Unexpected(e) => DatasetError::Unexpected(e),
    }
}

fn store(e: StoreError) -> DatasetError {
    match e {
        StoreError::NotFound => DatasetError::UnknownRecord,
        e @ StoreError::LeaseLost => DatasetError::Unexpected(anyhow::Error::new(e)),
        StoreError::Unexpected(e) => DatasetError::Unexpected(e),
    }
}

#[cfg(test)]
mod tests;
