//! SQLite has one writer: while an import holds the write lock longer than the busy
//! timeout, other workers' claims find nothing instead of failing.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::time::Duration;

use intake_domain::ports::{DatasetStore, ImportQueue, ImportVault, NewImport, RecordStore};
use intake_domain::{Contract, ContractVersion, DatasetName};
use intake_sqlite::{Settings, SqliteStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_while_an_import_holds_the_write_lock_finds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("intake.db").display());
    let busy_timeout = Duration::from_millis(200);
    let store = SqliteStore::connect(&Settings {
        url,
        busy_timeout,
        ..Settings::default()
    })
    .await
    .unwrap();
    store.migrate().await.unwrap();
    let ds = DatasetName::parse("busy").unwrap();
    let contract = r#"{"format": "csv", "fields": {"id": {"type": "string", "required": true}},
        "key": ["id"], "merge": "last_wins", "on_invalid": "skip_record"}"#;
    store
        .create(&ds, &Contract::parse(contract).unwrap())
        .await
        .unwrap();
    for body in [&b"one"[..], b"two"] {
        let import = NewImport {
            dataset: ds.clone(),
            contract: ContractVersion::FIRST,
            content_type: "text/csv".into(),
            source: "test".into(),
            idempotency_key: None,
        };
        let mut writer = store.begin(&import).await.unwrap();
        writer.write(body).await.unwrap();
        writer.commit(&format!("{body:?}")).await.unwrap();
    }
    let lease = store
        .claim("holder", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    let unit_of_work = store.begin_apply(&lease).await.unwrap();

    let claimed = store.claim("other", Duration::from_secs(30)).await;
    assert!(matches!(claimed, Ok(None)), "{claimed:?}");

    drop(unit_of_work);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let claimed = store.claim("other", Duration::from_secs(30)).await.unwrap();
    assert!(
        claimed.is_some(),
        "the second import is claimable once the lock is free"
    );
}
