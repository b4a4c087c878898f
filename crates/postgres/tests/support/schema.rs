//! A fresh schema on the test server per test.
#![allow(
    dead_code,
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "test support; each test file uses its part"
)]

use std::sync::Arc;

use intake_domain::testkit::{Harness, Stores};
use intake_postgres::{PgStore, Settings};

pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

pub fn url() -> String {
    std::env::var("INTAKE_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

pub fn settings(schema: &str) -> Settings {
    Settings {
        url: url(),
        schema: Some(schema.to_owned()),
        max_connections: 8,
        ..Settings::default()
    }
}

#[derive(Clone)]
pub struct TempSchema {
    pub store: PgStore,
    pub schema: String,
}

pub fn unique_schema() -> String {
    format!("intake_test_{}", uuid_like())
}

fn uuid_like() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{:x}_{:x}", nanos, std::process::id())
}

pub async fn fresh() -> TempSchema {
    let schema = unique_schema();
    let store = PgStore::connect(&settings(&schema)).expect("settings");
    if let Err(e) = store.migrate().await {
        panic!(
            "PostgreSQL at {} is required for these tests and failed: {e:#}",
            url()
        );
    }
    TempSchema { store, schema }
}

#[async_trait::async_trait]
impl Harness for TempSchema {
    fn stores(&self) -> Stores {
        let decoder = Arc::new(intake_codecs::Codecs::default());
        let store = Arc::new(self.store.clone());
        Stores {
            // The SQL engine, checked against the in-process reference by the suite.
            analytics: store.clone(),
            ..Stores::new(store, decoder)
        }
    }

    async fn cleanup(self) {
        self.drop_schema().await;
    }
}

impl TempSchema {
    pub async fn drop_schema(self) {
        if let Err(e) = self.store.drop_schema().await {
            eprintln!("could not drop the test schema: {e:#}");
        }
    }
}

use std::time::Duration;

use intake_domain::ingest::{ImportService, IngestSettings};
use intake_domain::ports::RecordQuery;
use intake_domain::testkit::SystemClock;
use intake_domain::{Contract, DatasetName, ImportReport};

/// `id,group,value`, keyed by id, last wins.
pub const CONTRACT: &str = r#"{"format": "csv",
  "fields": {"id": {"type": "string", "required": true},
             "group": {"type": "string", "required": true},
             "value": {"type": "number", "required": true}},
  "key": ["id"], "dimensions": ["group"], "measures": {"value": "value"},
  "merge": "last_wins", "on_invalid": "skip_record"}"#;

/// A CSV document of `rows` new keys prefixed by `prefix`.
pub fn csv(prefix: &str, rows: usize) -> Vec<u8> {
    let mut doc = String::from("id,group,value\n");
    for i in 0..rows {
        doc.push_str(&format!("{prefix}{i},g{},{i}\n", i % 7));
    }
    doc.into_bytes()
}

pub fn service(store: &PgStore, lease: Duration) -> Arc<ImportService> {
    let decoder = Arc::new(intake_codecs::Codecs::default());
    let stores = Stores::new(Arc::new(store.clone()), decoder);
    let ports = stores.ingest_ports(Arc::new(SystemClock));
    let settings = IngestSettings {
        lease,
        renew_every: lease / 3,
        idle_poll: Duration::from_millis(50),
        ..IngestSettings::default()
    };
    Arc::new(ImportService::new(ports, settings))
}

pub fn dataset() -> DatasetName {
    DatasetName::parse("items").unwrap()
}

/// Creates the dataset and receives each document.
pub async fn receive_all(store: &PgStore, service: &ImportService, docs: Vec<Vec<u8>>) {
    use intake_domain::ports::DatasetStore;
    store
        .create(&dataset(), &Contract::parse(CONTRACT).unwrap())
        .await
        .unwrap();
    for doc in docs {
        let body = futures_lite_chunks(&doc);
        service
            .receive(&dataset(), "text/csv", "test", None, body)
            .await
            .unwrap();
    }
}

fn futures_lite_chunks(
    doc: &[u8],
) -> impl futures_lite::Stream<Item = Result<Vec<u8>, std::io::Error>> + Unpin + Send + use<> {
    let chunks: Vec<_> = doc.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    futures_lite::stream::iter(chunks)
}

/// Every record, and per key the number of history entries (counted in SQL: one
/// query instead of one per key).
pub async fn state(t: &TempSchema) -> (Vec<intake_domain::Record>, Vec<i64>) {
    use intake_domain::ports::RecordStore;
    let query = RecordQuery {
        limit: u32::MAX,
        ..RecordQuery::default()
    };
    let page = t.store.list(&dataset(), &query).await.unwrap();
    let options: sqlx::postgres::PgConnectOptions = url().parse().unwrap();
    let options = options.options([("search_path", t.schema.as_str())]);
    let mut conn = sqlx::ConnectOptions::connect(&options).await.unwrap();
    let history: Vec<i64> = sqlx::query_scalar(
        "SELECT COUNT(*) FROM record_history GROUP BY key ORDER BY key COLLATE \"C\"",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    (
        page.records.into_iter().map(|r| r.record).collect(),
        history,
    )
}

/// The reports of the dataset's imports, oldest first, once all have finished.
pub async fn reports(store: &PgStore) -> Vec<Option<ImportReport>> {
    use intake_domain::ports::ImportVault;
    let mut imports = store.list(&dataset(), 10_000, 0).await.unwrap();
    imports.reverse();
    imports.into_iter().map(|i| i.report).collect()
}

/// Runs a test body on its own task, then drops the schemas even when it failed.
pub async fn guarded<F>(schemas: Vec<TempSchema>, body: F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let outcome = tokio::spawn(body).await;
    for s in schemas {
        s.drop_schema().await;
    }
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}
