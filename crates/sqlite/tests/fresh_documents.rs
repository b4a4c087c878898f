//! A document this process has just received is processed from memory, not read back
//! from the vault (ADR 23); one received by another process (or too large to keep) is
//! read from the vault. Shown by removing the vault's copy before processing.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::sync::Arc;

use intake_domain::ingest::{ImportService, IngestSettings};
use intake_domain::ports::DatasetStore;
use intake_domain::testkit::{Stores, SystemClock};
use intake_domain::{Contract, DatasetName, ImportId};
use intake_sqlite::SqliteStore;

#[path = "support/store.rs"]
mod support;
use sqlx::Connection as _;
use support::open;

const CONTRACT: &str = r#"{"format": "csv",
  "fields": {"id": {"type": "string", "required": true},
             "value": {"type": "number", "required": true}},
  "key": ["id"], "measures": {"value": "value"},
  "merge": "last_wins", "on_invalid": "reject_document"}"#;

fn service(store: &SqliteStore, fresh_budget_bytes: usize) -> ImportService {
    let decoder = Arc::new(intake_codecs::Codecs::default());
    let stores = Stores::new(Arc::new(store.clone()), decoder);
    let settings = IngestSettings {
        fresh_budget_bytes,
        ..IngestSettings::default()
    };
    ImportService::new(stores.ingest_ports(Arc::new(SystemClock)), settings)
}

fn ds() -> DatasetName {
    DatasetName::parse("items").unwrap()
}

async fn receive(service: &ImportService, doc: &str) -> ImportId {
    let body = futures_lite::stream::iter([Ok::<_, std::io::Error>(doc.as_bytes().to_vec())]);
    let received = service
        .receive(&ds(), "text/csv", "test", None, body)
        .await
        .unwrap();
    received.import.id
}

/// Removes the vault's copy of `import`, behind the store's back.
async fn drop_vault_copy(path: &str, import: &ImportId) {
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{path}"))
        .await
        .unwrap();
    let removed = sqlx::query("DELETE FROM vault_chunks WHERE import_id = ?")
        .bind(import.as_str())
        .execute(&mut conn)
        .await
        .unwrap();
    assert!(removed.rows_affected() > 0);
}

#[tokio::test]
async fn a_document_just_received_is_processed_without_reading_the_vault() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("intake.db").display().to_string();
    let store = open(&path).await;
    store
        .create(&ds(), &Contract::parse(CONTRACT).unwrap())
        .await
        .unwrap();

    // Received and processed by the same service: its copy in memory is read.
    let here = service(&store, IngestSettings::default().fresh_budget_bytes);
    let id = receive(&here, "id,value\na,1\nb,2\nc,3\n").await;
    drop_vault_copy(&path, &id).await;
    let lease = here.claim("w").await.unwrap().unwrap();
    assert_eq!(lease.import, id);
    let processed = here.process(&lease).await.unwrap();
    assert_eq!(processed.report.inserted, 3);

    // Processed by another service (another process): the vault is read, and it no
    // longer holds the document.
    let id = receive(&here, "id,value\nd,4\n").await;
    drop_vault_copy(&path, &id).await;
    let elsewhere = service(&store, IngestSettings::default().fresh_budget_bytes);
    let lease = elsewhere.claim("w").await.unwrap().unwrap();
    assert_eq!(lease.import, id);
    let processed = elsewhere.process(&lease).await.unwrap();
    assert_eq!(processed.report.inserted, 0, "the vault's copy is gone");

    // A service that keeps nothing reads its own imports from the vault too.
    let none = service(&store, 0);
    let id = receive(&none, "id,value\ne,5\n").await;
    drop_vault_copy(&path, &id).await;
    let lease = none.claim("w").await.unwrap().unwrap();
    assert_eq!(lease.import, id);
    let processed = none.process(&lease).await.unwrap();
    assert_eq!(processed.report.inserted, 0, "the vault's copy is gone");
}
