//! Decoder throughput, and the whole pure pipeline (decode, map, merge) per record.
//!
//! `cargo bench -p intake-codecs --bench decode`. The import benchmark of the storage
//! issue compares the end-to-end rate with PostgreSQL `COPY`; this one shows how much of
//! that budget the CPU-only part takes.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "benchmark set-up fails loudly"
)]

use std::io::Cursor;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use intake_codecs::Codecs;
use intake_domain::Contract;
use intake_domain::contract::DocumentFormat;
use intake_domain::merge::MergeSession;

const RECORDS: u64 = 100_000;

fn customers_csv() -> Arc<[u8]> {
    let mut doc = String::from("id,first_name,last_name,email,phone\n");
    for i in 0..RECORDS {
        doc += &format!(
            "c-{i},Ada,Lovelace,ada{i}@example.com,+44 20 7946 {:04}\n",
            i % 10_000
        );
    }
    doc.into_bytes().into()
}

/// Markr results with `answers` `<answer>` elements each (two attributes and text;
/// with 20, about 1.6 kB a result, like `scripts/bench/markr_import.sh`).
fn markr_xml(answers: u64) -> Arc<[u8]> {
    let mut doc = String::from("<?xml version=\"1.0\"?>\n<mcq-test-results>\n");
    for i in 0..RECORDS {
        let answers: String = (0..answers)
            .map(|q| {
                format!(
                    "<answer question=\"{q}\" marks-available=\"1\" marks-awarded=\"{}\">A</answer>",
                    (i + q) % 2
                )
            })
            .collect();
        doc += &format!(
            "<mcq-test-result scanned-on=\"2017-12-04T12:12:10+11:00\"><first-name>KJ</first-name><last-name>Alysander</last-name><student-number>{i:06}</student-number><test-id>{}</test-id>{answers}<summary-marks available=\"20\" obtained=\"{}\" /></mcq-test-result>\n",
            i % 50,
            i % 21
        );
    }
    doc += "</mcq-test-results>\n";
    doc.into_bytes().into()
}

fn account(i: u64) -> String {
    format!(
        "{{\"id\": \"acct-{}\", \"parentProgram\": \"cndy3Z4yapfJBmL3ShUp5exZKqR3z33thTzeNMm2gRZ\", \"parentProgramSubType\": \"mint\", \"tokens\": {}, \"callbackTimeMs\": 500, \"data\": {{\"mintId\": \"x{i}\"}}, \"version\": {}}}",
        i % 1000,
        i % 977,
        i / 1000
    )
}

fn accounts_json() -> Arc<[u8]> {
    let items: Vec<String> = (0..RECORDS).map(account).collect();
    format!("[{}]", items.join(",\n")).into_bytes().into()
}

fn accounts_ndjson() -> Arc<[u8]> {
    (0..RECORDS)
        .map(|i| account(i) + "\n")
        .collect::<String>()
        .into_bytes()
        .into()
}

fn decode_all(format: &DocumentFormat, doc: &Arc<[u8]>) -> usize {
    Codecs::default()
        .decode_reader(format, Cursor::new(Arc::clone(doc)))
        .filter(Result::is_ok)
        .count()
}

fn decoders(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    group
        .throughput(Throughput::Elements(RECORDS))
        .sample_size(10);
    let cases = [
        (
            "csv",
            DocumentFormat::Csv {
                delimiter: b',',
                quote: b'"',
            },
            customers_csv(),
        ),
        (
            "xml",
            DocumentFormat::Xml {
                records: vec!["mcq-test-results".into(), "mcq-test-result".into()],
                members: None,
            },
            markr_xml(0),
        ),
        (
            "xml_answers",
            DocumentFormat::Xml {
                records: vec!["mcq-test-results".into(), "mcq-test-result".into()],
                members: None,
            },
            markr_xml(20),
        ),
        (
            // The same, keeping what the Markr contract reads (its compiled format).
            "xml_answers_contract",
            Contract::parse(include_str!(
                "../../../examples/contracts/exam-results.json"
            ))
            .expect("the Markr contract")
            .format()
            .clone(),
            markr_xml(20),
        ),
        (
            "json",
            DocumentFormat::Json { records: vec![] },
            accounts_json(),
        ),
        ("ndjson", DocumentFormat::Ndjson, accounts_ndjson()),
    ];
    for (name, format, doc) in &cases {
        assert_eq!(decode_all(format, doc) as u64, RECORDS);
        group.bench_function(*name, |b| b.iter(|| decode_all(format, doc)));
    }
    group.finish();
}

fn pipeline(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode_map_merge");
    group
        .throughput(Throughput::Elements(RECORDS))
        .sample_size(10);
    let workloads = [
        (
            "customers_csv",
            include_str!("../../../examples/contracts/customers.json"),
            customers_csv(),
        ),
        (
            "exam_results_xml",
            include_str!("../../../examples/contracts/exam-results.json"),
            markr_xml(0),
        ),
        (
            "accounts_json",
            include_str!("../../../examples/contracts/accounts.json"),
            accounts_json(),
        ),
    ];
    for (name, contract, doc) in &workloads {
        let contract = Contract::parse(contract).unwrap();
        group.bench_function(format!("{name}_map_only"), |b| {
            b.iter(|| {
                Codecs::default()
                    .decode_reader(contract.format(), Cursor::new(Arc::clone(doc)))
                    .filter_map(Result::ok)
                    .filter(|raw| contract.map(raw).is_ok())
                    .count()
            })
        });
        // As the import worker will: batches of 1,000, each batch's changes taken (and
        // here dropped instead of written), the report kept for the document.
        group.bench_function(*name, |b| {
            b.iter(|| {
                let mut session = MergeSession::new(&contract);
                let items = Codecs::default()
                    .decode_reader(contract.format(), Cursor::new(Arc::clone(doc)));
                for (i, item) in items.enumerate() {
                    session.push(item);
                    if i % 1000 == 999 {
                        drop(session.take_batch());
                    }
                }
                session.finish().report.seen
            })
        });
    }
    group.finish();
}

criterion_group!(benches, decoders, pipeline);
criterion_main!(benches);
