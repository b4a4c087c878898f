//! Backups of a SQLite file: made while the database is open, verified, listed newest
//! first and pruned to the number kept; a damaged file never counts; a restore refuses
//! while the database is in use, then puts the backup in place and keeps what it
//! replaced.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use intake_domain::ports::{Backups, DatasetStore};
use intake_domain::{Contract, DatasetName};
use intake_sqlite::{SqliteBackups, restore, verify};

#[path = "support/store.rs"]
mod support;
use support::{CONTRACT, open};

async fn create(store: &intake_sqlite::SqliteStore, name: &str) {
    let contract = Contract::parse(CONTRACT).unwrap();
    store
        .create(&DatasetName::parse(name).unwrap(), &contract)
        .await
        .unwrap();
}

#[tokio::test]
async fn backups_are_verified_listed_and_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("intake.db");
    let store = open(db.to_str().unwrap()).await;
    let backups = SqliteBackups::new(store.clone(), dir.path().join("backups"), 2);
    assert_eq!(backups.list().await.unwrap(), []);
    create(&store, "one").await;
    let first = backups.make().await.unwrap();
    assert_eq!((first.contents.datasets, first.contents.records), (1, 0));
    create(&store, "two").await;
    let second = backups.make().await.unwrap();
    assert_eq!(second.contents.datasets, 2);
    let third = backups.make().await.unwrap();
    let kept = backups.list().await.unwrap();
    assert_eq!(
        kept,
        [third.clone(), second.clone()],
        "newest first, two kept"
    );
    assert!(
        !dir.path().join("backups").join(&first.name).exists(),
        "pruned"
    );
    let file = dir.path().join("backups").join(&second.name);
    assert_eq!(verify(&file).await.unwrap(), second.contents);
    assert_eq!(std::fs::metadata(&file).unwrap().len(), second.bytes);

    // A damaged copy does not verify, naming the file.
    let damaged = dir.path().join("damaged.db");
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes.truncate(middle);
    std::fs::write(&damaged, bytes).unwrap();
    let error = format!("{:#}", verify(&damaged).await.unwrap_err());
    assert!(error.contains("damaged.db"), "{error}");
    let error = format!(
        "{:#}",
        verify(&db.with_extension("none")).await.unwrap_err()
    );
    assert!(error.contains("intake.none"), "{error}");
}

#[tokio::test]
async fn a_restore_waits_for_the_database_to_be_free_and_keeps_what_it_replaces() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("intake.db");
    let url = format!("sqlite://{}", db.display());
    let store = open(db.to_str().unwrap()).await;
    create(&store, "before").await;
    let backups = SqliteBackups::new(store.clone(), dir.path().join("backups"), 3);
    let backup = backups.make().await.unwrap();
    let file = dir.path().join("backups").join(&backup.name);
    create(&store, "after").await;

    let error = format!(
        "{:#}",
        restore(&file, &url, chrono::Utc::now()).await.unwrap_err()
    );
    assert!(error.contains("in use by another process"), "{error}");
    assert_eq!(store.list().await.unwrap().len(), 2, "nothing changed");
    store.close().await;
    drop((store, backups));

    let restored = restore(&file, &url, chrono::Utc::now()).await.unwrap();
    assert_eq!(restored.contents, backup.contents);
    let replaced = restored.replaced.expect("the old file is kept");
    assert_eq!(
        verify(&replaced).await.unwrap().datasets,
        2,
        "the replaced file is whole"
    );
    let store = open(db.to_str().unwrap()).await;
    let names: Vec<_> = store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.name.to_string())
        .collect();
    assert_eq!(names, ["before"]);
}

/// Processes started together on a fresh file (a service and its replicas, or `intake
/// import` beside a starting server) all open and migrate it: one migrates, the others
/// wait for it and find nothing left to do.
#[tokio::test]
async fn stores_opened_together_on_a_fresh_file_all_migrate_it() {
    for _ in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("intake.db").to_str().unwrap().to_owned();
        let opening: Vec<_> = (0..4)
            .map(|_| {
                let path = path.clone();
                tokio::spawn(async move { open(&path).await })
            })
            .collect();
        for store in opening {
            let store = store.await.expect("every store opens and migrates");
            assert_eq!(store.list().await.unwrap(), []);
        }
    }
}
