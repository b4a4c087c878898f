//! Imports a CSV file (`id,group,value,note`) into a fresh schema through the import
//! service (vault, decode, map, merge, history, outbox) and prints the rate. Run by
//! `scripts/bench/import.sh`, which measures a plain `COPY` of the same file beside it.
//!
//! `cargo run --release -p intake-postgres --example import_bench -- FILE [URL]`
//! (`INTAKE_BENCH_BATCH` sets the batch size; 1,000 by default).
#![allow(clippy::expect_used, reason = "a benchmark: any failure ends the run")]

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use intake_domain::ingest::{ImportService, IngestSettings};
use intake_domain::ports::DatasetStore;
use intake_domain::testkit::{Stores, SystemClock};
use intake_domain::{Contract, DatasetName};
use intake_postgres::{PgStore, Settings};

const CONTRACT: &str = r#"{"format": "csv",
  "fields": {"id": {"type": "string", "required": true},
             "group": {"type": "string", "required": true},
             "value": {"type": "number", "required": true},
             "note": {"type": "string"}},
  "key": ["id"], "dimensions": ["group"], "measures": {"value": "value"},
  "merge": "last_wins", "on_invalid": "skip_record"}"#;

/// The file in 256 KiB chunks, read as the service asks for them.
struct Chunks(std::fs::File);

impl Iterator for Chunks {
    type Item = std::io::Result<Vec<u8>>;
    fn next(&mut self) -> Option<Self::Item> {
        let mut buf = vec![0; 256 * 1024];
        match self.0.read(&mut buf) {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some(Ok(buf))
            }
            Err(e) => Some(Err(e)),
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: import_bench FILE [URL]");
    let url = args
        .next()
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!("intake_bench_{}", std::process::id());
    let settings = Settings {
        url,
        schema: Some(schema),
        ..Settings::default()
    };
    let store = PgStore::connect(&settings)?;
    store.migrate().await?;
    let outcome = run(&store, &path).await;
    store.drop_schema().await?;
    outcome
}

async fn run(store: &PgStore, path: &str) -> anyhow::Result<()> {
    let decoder = Arc::new(intake_codecs::Codecs::default());
    let stores = Stores::new(Arc::new(store.clone()), decoder);
    let ports = stores.ingest_ports(Arc::new(SystemClock));
    let batch_size = std::env::var("INTAKE_BENCH_BATCH")
        .ok()
        .and_then(|b| b.parse().ok())
        .unwrap_or(IngestSettings::default().batch_size);
    let settings = IngestSettings {
        lease: Duration::from_secs(600),
        batch_size,
        ..IngestSettings::default()
    };
    let service = ImportService::new(ports, settings);
    let ds = DatasetName::parse("bench")?;
    store.create(&ds, &Contract::parse(CONTRACT)?).await?;

    let start = Instant::now();
    let body = futures_lite::stream::iter(Chunks(std::fs::File::open(path)?));
    service
        .receive(&ds, "text/csv", "bench", None, body)
        .await?;
    let received = start.elapsed();
    let lease = service.claim("bench").await?.expect("the import is queued");
    let processed = service.process(&lease).await?;
    let total = start.elapsed();
    let rows = processed.report.seen;
    println!(
        "service: {rows} rows in {:.2} s ({:.0} rows/s; vault {:.2} s, processing {:.2} s; inserted {})",
        total.as_secs_f64(),
        rows as f64 / total.as_secs_f64(),
        received.as_secs_f64(),
        (total - received).as_secs_f64(),
        processed.report.inserted,
    );
    Ok(())
}
