//! The WAL is copied into the database file beside the writers, not in their commits
//! (ADR 42): what is written reaches the database file within moments, although no
//! commit checkpoints.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::time::{Duration, Instant};

use intake_domain::ports::{DatasetStore, ImportVault, NewImport};
use intake_domain::{Contract, ContractVersion, DatasetName};
use intake_sqlite::{Settings, SqliteStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_is_written_reaches_the_database_file_without_a_commit_checkpointing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("intake.db");
    let store = SqliteStore::connect(&Settings {
        url: format!("sqlite://{}", file.display()),
        ..Settings::default()
    })
    .await
    .unwrap();
    store.migrate().await.unwrap();
    let ds = DatasetName::parse("wal").unwrap();
    let contract = Contract::parse(
        r#"{"format": "csv", "fields": {"id": {"type": "string", "required": true}},
        "key": ["id"], "merge": "last_wins", "on_invalid": "skip_record"}"#,
    )
    .unwrap();
    store.create(&ds, &contract).await.unwrap();
    let before = std::fs::metadata(&file).unwrap().len();

    // 8 MiB of a document that does not compress, in the vault: 32 commits of a chunk.
    let mut writer = store
        .begin(&NewImport {
            dataset: ds.clone(),
            contract: ContractVersion::FIRST,
            content_type: "text/csv".into(),
            source: "test".into(),
            idempotency_key: None,
        })
        .await
        .unwrap();
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let body: Vec<u8> = (0..8 << 20)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect();
    for piece in body.chunks(64 << 10) {
        writer.write(piece).await.unwrap();
    }
    writer.commit("random").await.unwrap();

    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let size = std::fs::metadata(&file).unwrap().len();
        if size >= before + (8 << 20) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the database file holds {size} bytes 5 s after 8 MiB were committed: the WAL was not checkpointed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    store.close().await;
}
