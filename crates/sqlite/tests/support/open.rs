//! Opening a store on a database file, shared by the test files that need one.

use intake_sqlite::{Settings, SqliteStore};

/// The store on `path` (created when missing), migrated.
pub async fn open(path: &str) -> SqliteStore {
    let settings = Settings {
        url: format!("sqlite://{path}"),
        ..Settings::default()
    };
    let store = SqliteStore::connect(&settings).await.unwrap();
    store.migrate().await.unwrap();
    store
}
