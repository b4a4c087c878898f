//! Helpers shared by the suites.

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::{Stores, SystemClock};
use crate::ingest::{ImportService, IngestSettings, Processed};
use crate::merge::{Batch, Change, ChangeKind};
use crate::model::{
    Attributes, DatasetName, Dimensions, FieldValue, Location, Measures, Record, RecordKey,
};
use crate::ports::{ImportSummary, NewImport, VaultError};
use crate::{Contract, ContractVersion};

/// A CSV contract: `id,group,value`, keyed by `id`, grouped by `group`, last wins.
pub(super) const SIMPLE: &str = r#"{
  "format": "csv",
  "fields": {
    "id": {"type": "string", "required": true},
    "group": {"type": "string", "required": true},
    "value": {"type": "number", "required": true},
    "note": {"type": "string"}
  },
  "key": ["id"],
  "dimensions": ["group"],
  "measures": {"value": "value"},
  "merge": "last_wins",
  "on_invalid": "skip_record"
}"#;

pub(super) fn name(text: &str) -> DatasetName {
    DatasetName::parse(text).expect("a valid dataset name")
}

pub(super) fn contract(json: &str) -> Contract {
    Contract::parse(json).expect("a valid contract")
}

/// Creates a dataset with its first contract.
pub(super) async fn dataset(s: &Stores, text: &str, json: &str) -> DatasetName {
    let ds = name(text);
    s.datasets
        .create(&ds, &contract(json))
        .await
        .expect("created");
    ds
}

pub(super) fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub(super) fn new_import(dataset: &DatasetName, key: Option<&str>) -> NewImport {
    NewImport {
        dataset: dataset.clone(),
        contract: ContractVersion::FIRST,
        content_type: "text/csv".into(),
        source: "test".into(),
        idempotency_key: key.map(str::to_owned),
    }
}

/// Stores a document through the vault port, in 64 KiB chunks.
pub(super) async fn store(
    s: &Stores,
    dataset: &DatasetName,
    body: &[u8],
    key: Option<&str>,
) -> Result<ImportSummary, VaultError> {
    let mut writer = s.vault.begin(&new_import(dataset, key)).await?;
    for chunk in body.chunks(64 * 1024) {
        writer.write(chunk).await?;
    }
    writer.commit(&sha256_hex(body)).await
}

/// Reads a stored document back whole.
pub(super) async fn read_back(s: &Stores, import: &ImportSummary) -> Vec<u8> {
    let mut reader = s.vault.open(&import.id).await.expect("opened");
    let mut bytes = Vec::new();
    while let Some(chunk) = reader.next_chunk().await.expect("read") {
        bytes.extend_from_slice(&chunk);
    }
    bytes
}

/// The ingestion service over these stores, with small batches so that every
/// document spans several.
pub(super) fn service(s: &Stores, batch_size: usize) -> Arc<ImportService> {
    let ports = s.ingest_ports(Arc::new(SystemClock));
    let settings = IngestSettings {
        batch_size,
        lease: Duration::from_secs(30),
        renew_every: Duration::from_millis(200),
        idle_poll: Duration::from_millis(20),
        ..IngestSettings::default()
    };
    Arc::new(ImportService::new(ports, settings))
}

/// Receives a document through the service.
pub(super) async fn receive(
    service: &ImportService,
    dataset: &DatasetName,
    body: &[u8],
    key: Option<&str>,
) -> ImportSummary {
    let chunks = body.chunks(7 * 1024).map(Ok::<_, std::io::Error>);
    let stream = futures_lite::stream::iter(chunks);
    let received = service
        .receive(
            dataset,
            "application/octet-stream",
            "test",
            key.map(str::to_owned),
            stream,
        )
        .await
        .expect("received");
    received.import
}

/// Claims and processes imports until the queue is empty.
pub(super) async fn drain(service: &ImportService) -> Vec<Processed> {
    let mut done = Vec::new();
    while let Some(lease) = service.claim("test-worker").await.expect("claim") {
        done.push(service.process(&lease).await.expect("processed"));
    }
    done
}

/// A record of the [`SIMPLE`] contract.
pub(super) fn record(id: &str, group: &str, value: f64) -> Record {
    let mut dimensions = Dimensions::default();
    dimensions.insert("group", group.into()).expect("name");
    let mut measures = Measures::default();
    measures.insert("value", value).expect("finite");
    Record {
        key: RecordKey::try_new(vec![id.into()]).expect("key"),
        version: None,
        dimensions,
        measures,
        attributes: Attributes::default(),
    }
}

pub(super) fn with_note(mut record: Record, note: String) -> Record {
    let mut attributes = Attributes::default();
    attributes
        .insert("note", FieldValue::Text(note))
        .expect("name");
    record.attributes = attributes;
    record
}

/// A batch creating these records.
pub(super) fn batch(records: Vec<Record>) -> Batch {
    let changes = records.into_iter().map(|record| Change {
        kind: ChangeKind::Created,
        record,
        location: Location::default(),
        callback_after: None,
    });
    Batch {
        changes: changes.collect(),
        ..Batch::default()
    }
}
