//! A fresh schema on the test server per test.
#![allow(dead_code, clippy::expect_used, clippy::unwrap_used, reason = "test support; each test file uses its part")]

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

pub struct TempSchema {
    pub store: PgStore,
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
    TempSchema { store }
}

#[async_trait::async_trait]
impl Harness for TempSchema {
    fn stores(&self) -> Stores {
        let s = Arc::new(self.store.clone());
        Stores {
            datasets: s.clone(),
            contracts: s.clone(),
            vault: s.clone(),
            queue: s.clone(),
            records: s,
            decoder: Arc::new(intake_codecs::Codecs::default()),
        }
    }

    async fn cleanup(self) {
        if let Err(e) = self.store.drop_schema().await {
            eprintln!("could not drop the test schema: {e:#}");
        }
    }
}
