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

/// Decodes the whole document; returns (records, peak heap bytes during decoding).
fn decode_counting<R: Read + Send + 'static>(format: &DocumentFormat, input: R) -> (u64, usize) {
    HEAP.reset_peak_memory();
    let mut records = 0;
    for item in Codecs::default().decode_reader(format, input) {
        assert!(item.is_ok(), "{:?}", item.err());
        records += 1;
    }
    (records, HEAP.get_peak_memory())
}

fn filler(i: u64) -> String {
    format!("{:0>120}", i * 7919)
}

#[test]
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
    let (rows, peak) = decode_counting(
        &DocumentFormat::Csv {
            delimiter: b',',
            quote: b'"',
        },
        csv,
    );
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
    };
    let (results, peak) = decode_counting(&format, xml);
    assert!(results > 500_000, "{results} results");
    eprintln!("XML: {results} results, peak heap {peak} bytes");
    assert!(
        peak < PEAK_LIMIT,
        "XML: peak heap {peak} bytes for {results} results"
    );
}
