//! Imports a CSV file (`id,group,value,note`) into a fresh SQLite file through the
//! import service (vault, decode, map, merge, history, outbox) and prints the rate.
//!
//! `cargo run --release -p intake-sqlite --example sqlite_import_bench -- FILE [DB]`
//! (`INTAKE_BENCH_BATCH` sets the batch size; 1,000 by default; the database file is
//! a new temporary one unless given).
#![allow(clippy::expect_used, reason = "a benchmark: any failure ends the run")]

use std::io::Read;
use std::sync::Arc;

use intake_domain::testkit::{Stores, bench};
use intake_sqlite::{Settings, SqliteStore};

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
    let path = args.next().expect("usage: sqlite_import_bench FILE [DB]");
    let dir = tempfile::tempdir()?;
    let db = args
        .next()
        .unwrap_or_else(|| dir.path().join("bench.db").display().to_string());
    let store = SqliteStore::connect(&Settings {
        url: format!("sqlite://{db}"),
        ..Settings::default()
    })
    .await?;
    store.migrate().await?;
    let stores = Stores::new(Arc::new(store), Arc::new(intake_codecs::Codecs::default()));
    let body = futures_lite::stream::iter(Chunks(std::fs::File::open(path)?));
    println!("{}", bench::import(&stores, body, batch_size()).await?);
    Ok(())
}
