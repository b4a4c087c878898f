//! Where `intake serve` processes of a test keep their data (a SQLite file in the
//! test's directory, or a PostgreSQL schema of their own, dropped at the end), and the
//! JSON calls the tests make to them.
#![allow(dead_code, reason = "each test file uses its part")]

use std::time::Duration;

use serde_json::Value;

/// Where the servers keep their data.
pub enum Store {
    Sqlite,
    Postgres { url: String, schema: String },
}

impl Store {
    /// A fresh schema on the test PostgreSQL, named after `purpose`.
    pub fn postgres(purpose: &str) -> Self {
        let url = std::env::var("INTAKE_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let schema = format!("intake_test_{purpose}_{}", uuid::Uuid::now_v7().simple());
        Self::Postgres { url, schema }
    }

    /// The environment of a server on this store, quiet, sending to local receivers,
    /// unthrottled, with `extra` added.
    pub fn env<'a>(&'a self, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut env = vec![
            ("INTAKE_LOG", "error"),
            ("INTAKE_OUTBOUND_ALLOW_PRIVATE", "true"),
            ("INTAKE_RATE_LIMIT_PER_SECOND", "0"),
        ];
        env.extend_from_slice(extra);
        if let Self::Postgres { url, schema } = self {
            env.extend([
                ("INTAKE_DATABASE_URL", url.as_str()),
                ("INTAKE_DATABASE_SCHEMA", schema.as_str()),
            ]);
        }
        env
    }

    /// Drops the PostgreSQL schema (the SQLite file goes with the test's directory).
    pub async fn drop(&self) {
        if let Self::Postgres { url, schema } = self {
            let store = intake_postgres::PgStore::connect(&intake_postgres::Settings {
                url: url.clone(),
                schema: Some(schema.clone()),
                ..intake_postgres::Settings::default()
            })
            .unwrap();
            store.drop_schema().await.unwrap();
        }
    }
}

pub fn client() -> awc::Client {
    awc::Client::builder()
        .timeout(Duration::from_secs(120))
        .finish()
}

/// POSTs JSON; the call must succeed.
pub async fn post(base: &str, path: &str, body: &Value) -> Value {
    let mut res = client()
        .post(format!("{base}{path}"))
        .send_json(body)
        .await
        .unwrap();
    assert!(res.status().is_success(), "{path}: {}", res.status());
    res.json().await.unwrap()
}

/// Any method, with an optional JSON body: the status and the JSON answer (`null`
/// when there is none).
pub async fn request(base: &str, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let req = client().request(method.parse().unwrap(), format!("{base}{path}"));
    let mut res = match body {
        Some(b) => req.send_json(b).await.unwrap(),
        None => req.send().await.unwrap(),
    };
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Imports a CSV document into `items` and waits for it; the import must complete.
pub async fn import_items(base: &str, doc: String) {
    let mut res = client()
        .post(format!("{base}/v1/datasets/items/imports?wait=true"))
        .insert_header(("Content-Type", "text/csv"))
        .send_body(doc)
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "completed", "{body}");
}

/// GETs JSON, whatever the status.
pub async fn get(base: &str, path: &str) -> Value {
    let mut res = client().get(format!("{base}{path}")).send().await.unwrap();
    res.json().await.unwrap()
}

/// An example contract of `examples/contracts`.
pub fn example_contract(name: &str) -> Value {
    let path = format!(
        "{}/../../examples/contracts/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// `id,group,value` CSV rows keyed by id, grouped by group, measuring value.
pub const CONTRACT: &str = r#"{"format": "csv",
  "fields": {"id": {"type": "string", "required": true},
             "group": {"type": "string", "required": true},
             "value": {"type": "number", "required": true}},
  "key": ["id"], "dimensions": ["group"], "measures": {"value": "value"},
  "merge": "last_wins", "on_invalid": "skip_record"}"#;
