//! Opening a store on a database file, and the contract most tests import through,
//! shared by the test files that need them.

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

/// `id,group,value` rows keyed by id, grouped by group, measuring value.
#[allow(dead_code, reason = "not every test file that opens a store uses it")]
pub const CONTRACT: &str = r#"{"format": "csv",
  "fields": {"id": {"type": "string", "required": true},
             "group": {"type": "string", "required": true},
             "value": {"type": "number", "required": true}},
  "key": ["id"], "dimensions": ["group"], "measures": {"value": "value"},
  "merge": "last_wins", "on_invalid": "skip_record"}"#;
