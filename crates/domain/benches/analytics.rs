//! The in-process analytics engine over 1M records: one measure's aggregate in 20
//! groups, one group picked by a filter, and top-3 per group, against the maths alone
//! over the same 1M values (`BASELINES.md`: about 13 ms for the statistics and
//! quartiles of 1M f64).
//!
//! `cargo bench -p intake-domain --bench analytics`. The records come from a store
//! that generates each page as the engine asks for it, so the figures are the engine's
//! (paging, grouping, maths), not a database's.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "benchmark set-up fails loudly"
)]

use std::collections::BTreeMap;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures_lite::future::block_on;
use intake_domain::analytics::{Aggregate, InProcessAnalytics};
use intake_domain::model::{Attributes, Dimensions, Measures};
use intake_domain::ports::{
    Analytics, AnalyticsQuery, ImportWriter, Lease, RecordPage, RecordQuery, RecordScan,
    RecordStore, StoreError, StoredRecord, TopQuery,
};
use intake_domain::{Conflict, DatasetName, ImportId, Record, RecordKey};

const RECORDS: u64 = 1_000_000;
const GROUPS: u64 = 20;

fn value(i: u64) -> f64 {
    ((i * 7919) % 1000) as f64 + (i % 7) as f64 / 10.0
}

fn record(i: u64) -> Record {
    let mut dimensions = Dimensions::default();
    dimensions
        .insert("group", format!("g{:02}", i % GROUPS))
        .unwrap();
    let mut measures = Measures::default();
    measures.insert("value", value(i)).unwrap();
    Record {
        key: RecordKey::try_new(vec![format!("k{i:09}")]).unwrap(),
        version: None,
        dimensions,
        measures,
        attributes: Attributes::default(),
    }
}

/// `RECORDS` records `k000000000…`, generated page by page.
struct Generated;

fn unsupported() -> StoreError {
    StoreError::Unexpected(anyhow::anyhow!("not used by the benchmark"))
}

#[async_trait::async_trait]
impl RecordStore for Generated {
    async fn begin_apply(&self, _: &Lease) -> Result<Box<dyn ImportWriter>, StoreError> {
        Err(unsupported())
    }

    async fn get(&self, _: &DatasetName, _: &RecordKey) -> Result<StoredRecord, StoreError> {
        Err(unsupported())
    }

    async fn list(&self, _: &DatasetName, _: &RecordQuery) -> Result<RecordPage, StoreError> {
        Err(unsupported())
    }

    async fn scan(&self, _: &DatasetName, scan: &RecordScan) -> Result<Vec<Record>, StoreError> {
        let start = scan
            .after
            .as_deref()
            .map_or(0, |k| k[1..].parse::<u64>().unwrap() + 1);
        let wanted = scan.filters.dimensions.get("group");
        let mut page = Vec::with_capacity(scan.limit as usize);
        let mut i = start;
        while i < RECORDS && page.len() < scan.limit as usize {
            let r = record(i);
            if wanted.is_none_or(|g| g.iter().any(|g| r.dimensions.get("group") == Some(g))) {
                page.push(r);
            }
            i += 1;
        }
        Ok(page)
    }

    async fn marks(
        &self,
        _: &DatasetName,
        _: &intake_domain::ports::RecordFilter,
        _: u64,
    ) -> Result<Vec<String>, StoreError> {
        Err(unsupported())
    }

    async fn history(
        &self,
        _: &DatasetName,
        _: &RecordKey,
        _: &intake_domain::ports::HistoryPage,
    ) -> Result<intake_domain::ports::HistoryEntries, StoreError> {
        Err(unsupported())
    }

    async fn conflicts(
        &self,
        _: &DatasetName,
        _: u32,
        _: u64,
    ) -> Result<Vec<(ImportId, Conflict)>, StoreError> {
        Err(unsupported())
    }
}

fn query(group_by: Option<&str>, filters: &[(&str, &str)]) -> AnalyticsQuery {
    AnalyticsQuery {
        dataset: DatasetName::parse("bench").unwrap(),
        measure: "value".into(),
        group_by: group_by.map(str::to_owned),
        filters: filters
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<BTreeMap<_, _>>(),
        percentiles: Aggregate::QUARTILES.to_vec(),
    }
}

fn engine(c: &mut Criterion) {
    let engine = InProcessAnalytics::new(Arc::new(Generated));
    let mut group = c.benchmark_group("in-process engine, 1M records");
    group.sample_size(10);
    group.throughput(Throughput::Elements(RECORDS));
    group.bench_function("maths only: 1M values, 20 groups", |b| {
        let values: Vec<f64> = (0..RECORDS).map(value).collect();
        b.iter(|| {
            let mut groups: Vec<Vec<f64>> = vec![Vec::new(); GROUPS as usize];
            for (i, v) in values.iter().enumerate() {
                groups[i % GROUPS as usize].push(*v);
            }
            groups
                .into_iter()
                .map(|g| Aggregate::compute(g, &Aggregate::QUARTILES).unwrap())
                .collect::<Vec<_>>()
        });
    });
    group.bench_function("generating the records alone", |b| {
        b.iter(|| (0..RECORDS).for_each(|i| drop(std::hint::black_box(record(i)))));
    });
    let by_group = query(Some("group"), &[]);
    group.bench_function("aggregate by group", |b| {
        b.iter(|| {
            let answer = block_on(engine.aggregate(&by_group)).unwrap();
            assert_eq!(answer.len(), GROUPS as usize);
        });
    });
    let one = query(None, &[("group", "g07")]);
    group.bench_function("aggregate of one group (filter)", |b| {
        b.iter(|| block_on(engine.aggregate(&one)).unwrap());
    });
    let top = TopQuery {
        dataset: DatasetName::parse("bench").unwrap(),
        measure: "value".into(),
        group_by: "group".into(),
        filters: BTreeMap::new(),
        k: 3,
    };
    group.bench_function("top-3 per group", |b| {
        b.iter(|| block_on(engine.top(&top)).unwrap());
    });
    group.finish();
}

criterion_group!(benches, engine);
criterion_main!(benches);
