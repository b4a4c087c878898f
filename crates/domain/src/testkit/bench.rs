//! The import benchmark every storage adapter runs (`examples/import_bench.rs` in each
//! adapter crate): one CSV document through the whole import service.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::Stream;

use super::{Stores, SystemClock};
use crate::ingest::{ImportService, IngestSettings};
use crate::{Contract, DatasetName};

/// `id,group,value,note`, keyed by id, grouped by group, last wins.
pub const CONTRACT: &str = r#"{"format": "csv",
  "fields": {"id": {"type": "string", "required": true},
             "group": {"type": "string", "required": true},
             "value": {"type": "number", "required": true},
             "note": {"type": "string"}},
  "key": ["id"], "dimensions": ["group"], "measures": {"value": "value"},
  "merge": "last_wins", "on_invalid": "skip_record"}"#;

/// Receives `body` into a new dataset and processes it with batches of `batch_size`;
/// the line to print: rows, seconds and rows per second, split into vault and
/// processing time.
///
/// # Errors
/// Any failure of the service or the stores.
pub async fn import<S, E>(stores: &Stores, body: S, batch_size: usize) -> anyhow::Result<String>
where
    S: Stream<Item = Result<Vec<u8>, E>> + Unpin + Send,
    E: std::fmt::Display,
{
    let settings = IngestSettings {
        lease: Duration::from_secs(600),
        batch_size,
        ..IngestSettings::default()
    };
    let service = ImportService::new(stores.ingest_ports(Arc::new(SystemClock)), settings);
    let ds = DatasetName::parse("bench")?;
    stores
        .datasets
        .create(&ds, &Contract::parse(CONTRACT)?)
        .await?;

    let start = Instant::now();
    service
        .receive(&ds, "text/csv", "bench", None, body)
        .await?;
    let received = start.elapsed();
    let lease = service.claim("bench").await?;
    let lease = lease.ok_or_else(|| anyhow::anyhow!("the import was not queued"))?;
    let processed = service.process(&lease).await?;
    let total = start.elapsed();
    let rows = processed.report.seen;
    Ok(format!(
        "service: {rows} rows in {:.2} s ({:.0} rows/s; vault {:.2} s, processing {:.2} s; inserted {})",
        total.as_secs_f64(),
        rows as f64 / total.as_secs_f64(),
        received.as_secs_f64(),
        (total - received).as_secs_f64(),
        processed.report.inserted,
    ))
}
