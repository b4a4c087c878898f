//! `receive` with mocked ports: what reaches the vault, and what never does.

use std::sync::{Arc, Mutex};

use chrono::Utc;

use super::*;
use crate::ImportStatus;
use crate::ports::{
    Dataset, MockClock, MockContractStore, MockDatasetStore, MockDocumentDecoder, MockImportQueue,
    MockImportVault, MockRecordStore, VaultWriter,
};

/// What a fake vault writer saw.
#[derive(Default)]
struct Seen {
    bytes: Vec<u8>,
    committed_with: Option<String>,
}

struct FakeWriter(Arc<Mutex<Seen>>);

#[async_trait::async_trait]
impl VaultWriter for FakeWriter {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), VaultError> {
        self.0.lock().unwrap().bytes.extend_from_slice(chunk);
        Ok(())
    }

    async fn commit(self: Box<Self>, sha256: &str) -> Result<ImportSummary, VaultError> {
        self.0.lock().unwrap().committed_with = Some(sha256.to_owned());
        Err(VaultError::Unexpected(anyhow::anyhow!(
            "the fake stops here"
        )))
    }
}

fn dataset_exists(exists: bool) -> MockDatasetStore {
    let mut datasets = MockDatasetStore::new();
    datasets.expect_get().returning(move |name| {
        if !exists {
            return Err(CatalogError::NotFound);
        }
        Ok(Dataset {
            name: name.clone(),
            current_contract: ContractVersion::FIRST,
            revision: crate::Revision::new(0),
            created_at: Utc::now(),
        })
    });
    datasets
}

/// Every dataset reads CSV.
fn csv_contracts() -> MockContractStore {
    let mut contracts = MockContractStore::new();
    contracts.expect_get().returning(|dataset, version| {
        let json = r#"{"format": "csv", "fields": {"id": {"type": "string", "required": true}},
                       "key": ["id"], "merge": "last_wins", "on_invalid": "skip_record"}"#;
        Ok(crate::ports::PublishedContract {
            dataset: dataset.clone(),
            version,
            contract: crate::Contract::parse(json).unwrap(),
            published_at: Utc::now(),
        })
    });
    contracts
}

fn service(datasets: MockDatasetStore, vault: MockImportVault, max: u64) -> ImportService {
    let ports = IngestPorts {
        datasets: Arc::new(datasets),
        contracts: Arc::new(csv_contracts()),
        vault: Arc::new(vault),
        queue: Arc::new(MockImportQueue::new()),
        records: Arc::new(MockRecordStore::new()),
        decoder: Arc::new(MockDocumentDecoder::new()),
        clock: Arc::new(MockClock::new()),
    };
    let settings = IngestSettings {
        max_document_bytes: max,
        ..IngestSettings::default()
    };
    ImportService::new(ports, settings)
}

fn vault_seeing(seen: &Arc<Mutex<Seen>>) -> MockImportVault {
    let mut vault = MockImportVault::new();
    let seen = seen.clone();
    vault
        .expect_begin()
        .returning(move |_| Ok(Box::new(FakeWriter(seen.clone()))));
    vault
}

fn body(
    parts: Vec<Result<&'static str, &'static str>>,
) -> impl Stream<Item = Result<&'static str, &'static str>> + Unpin + Send {
    futures_lite::stream::iter(parts)
}

async fn receive(
    service: &ImportService,
    parts: Vec<Result<&'static str, &'static str>>,
) -> Result<Received, ReceiveError> {
    receive_as(service, "text/csv", parts).await
}

async fn receive_as(
    service: &ImportService,
    content_type: &str,
    parts: Vec<Result<&'static str, &'static str>>,
) -> Result<Received, ReceiveError> {
    let ds = DatasetName::parse("ds").unwrap();
    service
        .receive(&ds, content_type, "test", None, body(parts))
        .await
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    futures_lite::future::block_on(f)
}

#[test]
fn an_unknown_dataset_is_refused_before_the_vault_is_touched() {
    let mut vault = MockImportVault::new();
    vault.expect_begin().never();
    let service = service(dataset_exists(false), vault, 100);
    let result = block_on(receive(&service, vec![Ok("a")]));
    assert!(
        matches!(result, Err(ReceiveError::UnknownDataset)),
        "{result:?}"
    );
}

#[test]
fn the_vault_commits_the_streamed_bytes_with_their_sha256() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let service = service(dataset_exists(true), vault_seeing(&seen), 100);
    let _ = block_on(receive(&service, vec![Ok("hel"), Ok("lo")]));
    let seen = seen.lock().unwrap();
    assert_eq!(seen.bytes, b"hello");
    let sha = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
    assert_eq!(seen.committed_with.as_deref(), Some(sha));
}

#[test]
fn a_body_over_the_limit_is_refused_and_never_committed() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let service = service(dataset_exists(true), vault_seeing(&seen), 4);
    let result = block_on(receive(&service, vec![Ok("abc"), Ok("de")]));
    assert!(
        matches!(result, Err(ReceiveError::TooLarge { limit: 4 })),
        "{result:?}"
    );
    assert_eq!(seen.lock().unwrap().committed_with, None);
}

#[test]
fn a_body_that_breaks_off_is_never_committed() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let service = service(dataset_exists(true), vault_seeing(&seen), 100);
    let result = block_on(receive(&service, vec![Ok("abc"), Err("connection reset")]));
    assert!(
        matches!(&result, Err(ReceiveError::Body(m)) if m == "connection reset"),
        "{result:?}"
    );
    assert_eq!(seen.lock().unwrap().committed_with, None);
}

#[test]
fn a_media_type_the_contract_cannot_read_is_refused_before_the_vault_is_touched() {
    let mut vault = MockImportVault::new();
    vault.expect_begin().never();
    let service = service(dataset_exists(true), vault, 100);
    let form = "application/x-www-form-urlencoded";
    let result = block_on(receive_as(&service, form, vec![Ok("a")]));
    assert!(
        matches!(&result, Err(ReceiveError::UnsupportedMediaType { sent, expected: "text/csv" }) if sent == form),
        "{result:?}"
    );
}

/// A clock that never ends a sleep: only a finish notification can end a wait.
struct Frozen;

#[async_trait::async_trait]
impl Clock for Frozen {
    fn now(&self) -> chrono::DateTime<Utc> {
        chrono::DateTime::parse_from_rfc3339("2026-12-04T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    async fn sleep(&self, _: std::time::Duration) {
        futures_lite::future::pending::<()>().await;
    }
}

#[test]
fn a_waiter_is_woken_when_its_import_finishes_not_by_polling() {
    let finished = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut vault = MockImportVault::new();
    vault.expect_get().returning({
        let finished = finished.clone();
        move |id| {
            let done = finished.load(std::sync::atomic::Ordering::SeqCst);
            Ok(ImportSummary {
                id: id.clone(),
                import: crate::ports::NewImport {
                    dataset: DatasetName::parse("ds").unwrap(),
                    contract: ContractVersion::FIRST,
                    content_type: "text/csv".into(),
                    source: "test".into(),
                    idempotency_key: None,
                },
                size: 1,
                sha256: String::new(),
                received_at: Utc::now(),
                status: if done {
                    ImportStatus::Completed
                } else {
                    ImportStatus::Processing
                },
                report: None,
            })
        }
    });
    let ports = IngestPorts {
        datasets: Arc::new(dataset_exists(true)),
        contracts: Arc::new(csv_contracts()),
        vault: Arc::new(vault),
        queue: Arc::new(MockImportQueue::new()),
        records: Arc::new(MockRecordStore::new()),
        decoder: Arc::new(MockDocumentDecoder::new()),
        clock: Arc::new(Frozen),
    };
    let service = ImportService::new(ports, IngestSettings::default());
    let (ds, id) = (
        DatasetName::parse("ds").unwrap(),
        ImportId::parse("imp-1").unwrap(),
    );
    let waiting = async {
        Some(
            service
                .wait(&ds, &id, std::time::Duration::from_secs(30))
                .await
                .unwrap(),
        )
    };
    // Once the waiter sleeps, the import finishes (as `process` tells it); then the
    // waiter has a few turns to notice before the test gives up on it.
    let finishing = async {
        futures_lite::future::yield_now().await;
        finished.store(true, std::sync::atomic::Ordering::SeqCst);
        service
            .wakeups()
            .import_finished(&ImportId::parse("other").unwrap());
        service.wakeups().import_finished(&id);
        for _ in 0..100 {
            futures_lite::future::yield_now().await;
        }
        None
    };
    let import = block_on(futures_lite::future::or(waiting, finishing));
    assert_eq!(
        import.map(|i| i.status),
        Some(ImportStatus::Completed),
        "the waiter was not woken by the finish"
    );
}
