//! Decoding a 200 MB document holds one record at a time: the peak heap, measured by
//! an instrumented global allocator, stays a small constant however large the document.
//! The documents are generated while they are read, so the test itself holds none.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly on the first surprise"
)]

use std::alloc::System;
use std::io::Read;

use intake_codecs::Codecs;
use intake_domain::contract::DocumentFormat;
use peakmem_alloc::{PeakMemAlloc, PeakMemAllocTrait};

#[global_allocator]
static HEAP: PeakMemAlloc<System> = PeakMemAlloc::new(System);

const DOCUMENT_BYTES: u64 = 200 * 1024 * 1024;
const PEAK_LIMIT: usize = 2 * 1024 * 1024;

/// A document of `head`, then `row(i)` for i = 0.. until `size` bytes, then `tail`,
/// produced on demand.
struct Generated<F> {
    head: Vec<u8>,
    row: F,
    tail: Vec<u8>,
    size: u64,
    produced: u64,
    next_row: u64,
    pending: Vec<u8>,
    offset: usize,
    is_tail_sent: bool,
}

impl<F: FnMut(u64) -> String> Generated<F> {
    fn new(head: &str, row: F, tail: &str, size: u64) -> Self {
        Self {
            head: head.into(),
            row,
            tail: tail.into(),
            size,
            produced: 0,
            next_row: 0,
            pending: Vec::new(),
            offset: 0,
            is_tail_sent: false,
        }
    }

    fn refill(&mut self) {
        self.pending.clear();
        self.offset = 0;
        if !self.head.is_empty() {
            self.pending.append(&mut self.head);
        } else if self.produced < self.size {
            self.pending
                .extend_from_slice((self.row)(self.next_row).as_bytes());
            self.next_row += 1;
        } else if !self.is_tail_sent {
            self.is_tail_sent = true;
            self.pending.extend_from_slice(&self.tail);
        }
    }
}

impl<F: FnMut(u64) -> String> Read for Generated<F> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.offset == self.pending.len() {
            self.refill();
        }
        let n = buf.len().min(self.pending.len() - self.offset);
        buf[..n].copy_from_slice(&self.pending[self.offset..self.offset + n]);
        self.offset += n;
        self.produced += n as u64;
        Ok(n)
    }
}

/// Decodes the whole document with `codecs`; returns (records, errors, peak heap bytes).
fn decode_counting<R: Read + Send + 'static>(
    codecs: Codecs,
    format: &DocumentFormat,
    input: R,
) -> (u64, Vec<String>, usize) {
    HEAP.reset_peak_memory();
    let (mut records, mut errors) = (0, Vec::new());
    for item in codecs.decode_reader(format, input) {
        match item {
            Ok(_) => records += 1,
            Err(e) => errors.push(e.message),
        }
    }
    (records, errors, HEAP.get_peak_memory())
}

fn filler(i: u64) -> String {
    format!("{:0>120}", i * 7919)
}

fn a_200_mb_csv_and_a_200_mb_xml_decode_in_bounded_heap() {
    let csv = Generated::new(
        "id,first_name,last_name,email,note\n",
        |i| {
            format!(
                "c-{i},Ada,Lovelace,ada{i}@example.com,\"{}, quoted\"\n",
                filler(i)
            )
        },
        "",
        DOCUMENT_BYTES,
    );
    let (rows, errors, peak) = decode_counting(
        Codecs::default(),
        &DocumentFormat::Csv {
            delimiter: b',',
            quote: b'"',
        },
        csv,
    );
    assert!(errors.is_empty(), "{errors:?}");
    assert!(rows > 1_000_000, "{rows} rows");
    eprintln!("CSV: {rows} rows, peak heap {peak} bytes");
    assert!(
        peak < PEAK_LIMIT,
        "CSV: peak heap {peak} bytes for {rows} rows"
    );

    let xml = Generated::new(
        "<?xml version=\"1.0\"?>\n<mcq-test-results>\n",
        |i| {
            format!(
                "\t<mcq-test-result scanned-on=\"2017-12-04T12:12:10+11:00\">\n\t\t<first-name>KJ</first-name>\n\t\t<student-number>{i:06}</student-number>\n\t\t<test-id>9863</test-id>\n\t\t<note>{}</note>\n\t\t<summary-marks available=\"20\" obtained=\"{}\" />\n\t</mcq-test-result>\n",
                filler(i),
                i % 21
            )
        },
        "</mcq-test-results>\n",
        DOCUMENT_BYTES,
    );
    let format = DocumentFormat::Xml {
        records: vec!["mcq-test-results".into(), "mcq-test-result".into()],
        members: None,
    };
    let (results, errors, peak) = decode_counting(Codecs::default(), &format, xml);
    assert!(errors.is_empty(), "{errors:?}");
    assert!(results > 500_000, "{results} results");
    eprintln!("XML: {results} results, peak heap {peak} bytes");
    assert!(
        peak < PEAK_LIMIT,
        "XML: peak heap {peak} bytes for {results} results"
    );
}

fn json_and_ndjson_streams_decode_in_bounded_heap() {
    const SIZE: u64 = 64 * 1024 * 1024;
    let record = |i: u64| {
        format!(
            "{{\"id\": \"a-{i}\", \"tokens\": {i}, \"data\": {{\"note\": \"{}\", \"tags\": [1, 2, 3]}}}}",
            filler(i)
        )
    };
    let array = Generated::new(
        "{\"page\": {\"items\": [",
        move |i| format!("{}{}", if i == 0 { "" } else { ",\n" }, record(i)),
        "]}}",
        SIZE,
    );
    let format = DocumentFormat::Json {
        records: vec!["page".into(), "items".into()],
    };
    let (records, errors, peak) = decode_counting(Codecs::default(), &format, array);
    eprintln!("JSON: {records} records, peak heap {peak} bytes");
    assert!(errors.is_empty(), "{errors:?}");
    assert!(
        records > 200_000 && peak < PEAK_LIMIT,
        "JSON: peak heap {peak} bytes for {records} records"
    );

    let lines = Generated::new("", move |i| record(i) + "\n", "", SIZE);
    let (records, errors, peak) =
        decode_counting(Codecs::default(), &DocumentFormat::Ndjson, lines);
    eprintln!("NDJSON: {records} records, peak heap {peak} bytes");
    assert!(errors.is_empty(), "{errors:?}");
    assert!(
        records > 200_000 && peak < PEAK_LIMIT,
        "NDJSON: peak heap {peak} bytes for {records} records"
    );
}

fn a_runaway_token_in_any_format_costs_the_record_cap_not_the_document() {
    const SIZE: u64 = 64 * 1024 * 1024;
    let cap = Codecs::with_max_record_bytes(256 * 1024);
    let xs = |_| "x".repeat(4096);
    let cases: Vec<(&str, DocumentFormat, Generated<_>)> = vec![
        (
            "CSV unterminated quote",
            DocumentFormat::Csv {
                delimiter: b',',
                quote: b'"',
            },
            Generated::new("id,name\n1,\"", xs, "", SIZE),
        ),
        (
            "XML text node",
            DocumentFormat::Xml {
                records: vec!["a".into(), "b".into()],
                members: None,
            },
            Generated::new("<a><b>", xs, "</b></a>", SIZE),
        ),
        (
            "JSON string",
            DocumentFormat::Json { records: vec![] },
            Generated::new("[{\"a\": \"", xs, "\"}]", SIZE),
        ),
        (
            "NDJSON line",
            DocumentFormat::Ndjson,
            Generated::new("{\"a\": \"", xs, "\"}\n", SIZE),
        ),
    ];
    for (what, format, doc) in cases {
        let (_, errors, peak) = decode_counting(cap, &format, doc);
        eprintln!("{what}: peak heap {peak} bytes, errors {errors:?}");
        assert!(
            errors.iter().any(|e| e.contains("larger than the limit")),
            "{what}: {errors:?}"
        );
        assert!(peak < PEAK_LIMIT, "{what}: peak heap {peak} bytes");
    }
}

/// One test: the peak is process-wide, so the measurements must not run concurrently.
#[test]
fn every_decoder_holds_one_record_at_a_time() {
    a_200_mb_csv_and_a_200_mb_xml_decode_in_bounded_heap();
    json_and_ndjson_streams_decode_in_bounded_heap();
    a_runaway_token_in_any_format_costs_the_record_cap_not_the_document();
}
