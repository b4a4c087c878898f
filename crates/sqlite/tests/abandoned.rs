//! Chunks of an upload whose process died before commit are swept; committed
//! documents and uploads still in progress are not.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::time::Duration;

use intake_domain::ports::{DatasetStore, ImportVault, NewImport};
use intake_domain::{Contract, ContractVersion, DatasetName};
use intake_sqlite::{Settings, SqliteStore};

fn upload(ds: &DatasetName) -> NewImport {
    NewImport {
        dataset: ds.clone(),
        contract: ContractVersion::FIRST,
        content_type: "text/csv".into(),
        source: "test".into(),
        idempotency_key: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_of_uploads_abandoned_by_a_crash_are_swept() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("intake.db").display());
    let store = SqliteStore::connect(&Settings {
        url,
        ..Settings::default()
    })
    .await
    .unwrap();
    store.migrate().await.unwrap();
    let ds = DatasetName::parse("sweep").unwrap();
    let contract = r#"{"format": "csv", "fields": {"id": {"type": "string", "required": true}},
        "key": ["id"], "merge": "last_wins", "on_invalid": "skip_record"}"#;
    store
        .create(&ds, &Contract::parse(contract).unwrap())
        .await
        .unwrap();
    let big = vec![b'x'; 600 * 1024]; // several chunks reach the table before commit

    let mut kept = store.begin(&upload(&ds)).await.unwrap();
    kept.write(&big).await.unwrap();
    let kept = kept.commit("sha-kept").await.unwrap();
    let mut crashed = store.begin(&upload(&ds)).await.unwrap();
    crashed.write(&big).await.unwrap();
    std::mem::forget(crashed); // as if the process died: no drop, no cleanup

    assert_eq!(
        store
            .sweep_abandoned_uploads(Duration::from_secs(3600))
            .await
            .unwrap(),
        0,
        "too recent to call abandoned"
    );
    assert_eq!(
        store.sweep_abandoned_uploads(Duration::ZERO).await.unwrap(),
        1
    );
    assert_eq!(
        store.sweep_abandoned_uploads(Duration::ZERO).await.unwrap(),
        0
    );
    let mut reader = store.open(&kept.id).await.unwrap();
    let mut read = 0;
    while let Some(chunk) = reader.next_chunk().await.unwrap() {
        read += chunk.len();
    }
    assert_eq!(read, big.len(), "the committed document is untouched");
}
