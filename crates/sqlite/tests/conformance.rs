//! The storage and ingestion conformance suites of `intake-domain`, on SQLite files in
//! temporary directories.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::sync::Arc;

use intake_domain::testkit::{Harness, Stores};
use intake_sqlite::{Settings, SqliteStore};

struct TempSqlite {
    store: SqliteStore,
    _dir: tempfile::TempDir,
}

async fn fresh() -> TempSqlite {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("intake.db").display());
    let settings = Settings {
        url,
        ..Settings::default()
    };
    let store = SqliteStore::connect(&settings).await.expect("connect");
    store.migrate().await.expect("migrate");
    TempSqlite { store, _dir: dir }
}

#[async_trait::async_trait]
impl Harness for TempSqlite {
    fn stores(&self) -> Stores {
        let decoder = Arc::new(intake_codecs::Codecs::default());
        Stores {
            // SQLite's own engine, checked against the suite's reference answers.
            analytics: Arc::new(self.store.clone()),
            ..Stores::new(Arc::new(self.store.clone()), decoder)
        }
    }

    async fn cleanup(self) {}
}

intake_domain::storage_conformance!(fresh());
