//! Imports a CSV file (`id,group,value,note`) into a fresh schema through the import
//! service (vault, decode, map, merge, history, outbox) and prints the rate. Run by
//! `scripts/bench/import.sh`, which measures a plain `COPY` of the same file beside it.
//!
//! `cargo run --release -p intake-postgres --example import_bench -- FILE [URL]`
//! (`INTAKE_BENCH_BATCH` sets the batch size; 1,000 by default).
#![allow(clippy::expect_used, reason = "a benchmark: any failure ends the run")]

use std::io::Read;
use std::sync::Arc;

use intake_domain::testkit::{Stores, bench};
use intake_postgres::{PgStore, Settings};

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

fn batch_size() -> usize {
    let batch = std::env::var("INTAKE_BENCH_BATCH").ok();
    batch.and_then(|b| b.parse().ok()).unwrap_or(1000)
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
    let stores = Stores::new(
        Arc::new(store.clone()),
        Arc::new(intake_codecs::Codecs::default()),
    );
    let body = futures_lite::stream::iter(Chunks(std::fs::File::open(path)?));
    let outcome = bench::import(&stores, body, batch_size()).await;
    store.drop_schema().await?;
    println!("{}", outcome?);
    Ok(())
}
