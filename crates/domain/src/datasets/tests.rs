//! The dataset use cases with mocked ports: how keys are read and errors named.

use chrono::Utc;

use super::*;
use crate::model::Revision;
use crate::ports::{
    HistoryPage, MockAnalytics, MockContractStore, MockDatasetStore, MockRecordStore, NoCache,
};

const TWO_PART_KEY: &str = r#"{
  "format": "csv",
  "fields": {"test": {"type": "string", "required": true},
             "student": {"type": "string", "required": true}},
  "key": ["test", "student"],
  "merge": "last_wins",
  "on_invalid": "skip_record"
}"#;

fn name() -> DatasetName {
    DatasetName::parse("exams").unwrap()
}

fn datasets(exists: bool) -> MockDatasetStore {
    let mut datasets = MockDatasetStore::new();
    datasets.expect_get().returning(move |name| {
        if !exists {
            return Err(CatalogError::NotFound);
        }
        Ok(Dataset {
            name: name.clone(),
            current_contract: ContractVersion::FIRST,
            revision: Revision::new(3),
            created_at: Utc::now(),
        })
    });
    datasets
}

fn contracts() -> MockContractStore {
    let mut contracts = MockContractStore::new();
    contracts.expect_get().returning(|dataset, version| {
        if version != ContractVersion::FIRST {
            return Err(CatalogError::NotFound);
        }
        Ok(PublishedContract {
            dataset: dataset.clone(),
            version,
            contract: Contract::parse(TWO_PART_KEY).unwrap(),
            published_at: Utc::now(),
        })
    });
    contracts
}

fn service(exists: bool, records: MockRecordStore) -> DatasetService {
    DatasetService::new(DatasetPorts {
        datasets: Arc::new(datasets(exists)),
        contracts: Arc::new(contracts()),
        records: Arc::new(records),
        analytics: Arc::new(MockAnalytics::new()),
        cache: Arc::new(NoCache),
    })
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    futures_lite::future::block_on(f)
}

#[test]
fn a_key_is_read_with_the_current_contracts_arity() {
    let mut records = MockRecordStore::new();
    records.expect_get().returning(|_, key| {
        assert_eq!(key.components(), ["9863", "002299"], "text, not numbers");
        Err(StoreError::NotFound)
    });
    let service = service(true, records);
    let found = block_on(service.record(&name(), "9863/002299"));
    assert!(matches!(found, Err(DatasetError::UnknownRecord)));
    let short = block_on(service.record(&name(), "9863"));
    assert!(
        matches!(
            short,
            Err(DatasetError::BadKey(KeyError::WrongArity { .. }))
        ),
        "{short:?}"
    );
}

#[test]
fn an_unknown_dataset_is_named_before_any_record_is_read() {
    let service = service(false, MockRecordStore::new());
    let listed = block_on(service.records(&name(), &RecordQuery::default()));
    assert!(matches!(listed, Err(DatasetError::UnknownDataset)));
    let history = block_on(service.history(&name(), "1/2", &HistoryPage::ALL));
    assert!(matches!(history, Err(DatasetError::UnknownDataset)));
}

#[test]
fn an_unknown_contract_version_is_not_an_unknown_dataset() {
    let service = service(true, MockRecordStore::new());
    let v2 = ContractVersion::try_new(2).unwrap();
    let found = block_on(service.contract(&name(), v2));
    assert!(matches!(found, Err(DatasetError::UnknownContract)));
}

#[test]
fn an_overview_counts_the_records() {
    let mut records = MockRecordStore::new();
    records.expect_list().returning(|_, query| {
        assert_eq!(query.limit, 0, "only the count is needed");
        Ok(RecordPage {
            records: Vec::<crate::ports::StoredRecord>::new(),
            total: 81,
        })
    });
    let overview = block_on(service(true, records).get(&name())).unwrap();
    assert_eq!(overview.records, 81);
    assert_eq!(overview.dataset.revision, Revision::new(3));
}

#[test]
fn a_filter_on_a_name_that_is_not_a_field_is_refused_naming_it() {
    let service = service(true, MockRecordStore::new());
    let mut query = RecordQuery::default();
    query
        .filters
        .dimensions
        .insert("tset_id".into(), vec!["9863".into()]);
    let listed = block_on(service.records(&name(), &query));
    assert!(
        matches!(&listed, Err(DatasetError::UnknownField { name, .. }) if name == "tset_id"),
        "{listed:?}"
    );
}

#[test]
fn a_catalog_entry_is_read_without_counting_records() {
    // No expectation on the records: counting them (every row, on each Markr import)
    // fails the test.
    let service = service(true, MockRecordStore::new());
    let dataset = block_on(service.dataset(&name())).unwrap();
    assert_eq!(dataset.revision, Revision::new(3));
    let missing = service_missing();
    assert!(matches!(
        block_on(missing.dataset(&name())),
        Err(DatasetError::UnknownDataset)
    ));
}

fn service_missing() -> DatasetService {
    service(false, MockRecordStore::new())
}
