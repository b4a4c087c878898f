//! NDJSON: one JSON object per line; blank lines are skipped. A line that is not a
//! valid JSON object is a non-fatal error and the next line follows.

use std::io::BufRead;

use intake_domain::{DecodeError, Location, RawRecord};

use crate::{error, parse_object};

pub(crate) struct NdjsonRecords<R> {
    input: R,
    line: u64,
    count: u64,
    buf: Vec<u8>,
    max_bytes: usize,
    is_done: bool,
}

type Item = Result<RawRecord, DecodeError>;

impl<R: BufRead> NdjsonRecords<R> {
    pub(crate) fn new(input: R, max_bytes: usize) -> Self {
        Self {
            input,
            line: 0,
            count: 0,
            buf: Vec::new(),
            max_bytes,
            is_done: false,
        }
    }

    /// Reads one line into `buf`, keeping at most `max_bytes`. Returns (bytes read,
    /// whether the line fit).
    fn read_line(&mut self) -> std::io::Result<(usize, bool)> {
        self.buf.clear();
        let (mut read, mut fits) = (0, true);
        loop {
            let available = self.input.fill_buf()?;
            if available.is_empty() {
                return Ok((read, fits));
            }
            let (chunk, is_end) = match available.iter().position(|b| *b == b'\n') {
                Some(i) => (&available[..=i], true),
                None => (available, false),
            };
            if self.buf.len() + chunk.len() <= self.max_bytes {
                self.buf.extend_from_slice(chunk);
            } else {
                fits = false;
            }
            let n = chunk.len();
            read += n;
            self.input.consume(n);
            if is_end {
                return Ok((read, fits));
            }
        }
    }
}

impl<R: BufRead> Iterator for NdjsonRecords<R> {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        while !self.is_done {
            let (read, fits) = match self.read_line() {
                Ok(r) => r,
                Err(e) => {
                    self.is_done = true;
                    let location = Location {
                        line: Some(self.line + 1),
                        ..Location::default()
                    };
                    return Some(Err(error(
                        location,
                        format!("reading the document failed: {e}"),
                        true,
                    )));
                }
            };
            if read == 0 {
                self.is_done = true;
                break;
            }
            self.line += 1;
            if fits && self.buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            self.count += 1;
            let location = Location {
                record: Some(self.count),
                line: Some(self.line),
                ..Location::default()
            };
            if !fits {
                return Some(Err(error(
                    location,
                    format!(
                        "record is larger than the limit of {} bytes",
                        self.max_bytes
                    ),
                    false,
                )));
            }
            let parsed = parse_object(&self.buf, location);
            return Some(parsed);
        }
        None
    }
}
