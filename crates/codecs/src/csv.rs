//! CSV with a header row: each row becomes an object of text values keyed by column
//! name. A row with the wrong number of fields or invalid UTF-8 is a non-fatal error
//! (the next row follows); a read failure is fatal.

use std::io::Read;

use csv::{ByteRecord, ErrorKind, ReaderBuilder};
use intake_domain::{DecodeError, Location, RawRecord};
use serde_json::{Map, Value};

use crate::budget::{Budget, TooLarge};
use crate::error;

pub(crate) struct CsvRecords<R> {
    reader: csv::Reader<Budget<R>>,
    headers: Option<Vec<String>>,
    row: ByteRecord,
    count: u64,
    is_done: bool,
    quote: u8,
}

type Item = Result<RawRecord, DecodeError>;

/// The most columns a header may name: no contract maps more, and each row costs
/// work per column.
pub const MAX_COLUMNS: usize = 4096;

impl<R: Read> CsvRecords<R> {
    pub(crate) fn new(input: R, delimiter: u8, quote: u8, max_bytes: usize) -> Self {
        let reader = ReaderBuilder::new()
            .delimiter(delimiter)
            .quote(quote)
            .has_headers(false)
            .flexible(false)
            .from_reader(Budget::new(input, max_bytes));
        Self {
            reader,
            headers: None,
            row: ByteRecord::new(),
            count: 0,
            is_done: false,
            quote,
        }
    }

    fn location(&self, line: Option<u64>, record: Option<u64>) -> Location {
        Location {
            record,
            row: record.map(|r| r + 1),
            line,
            ..Location::default()
        }
    }

    fn read_headers(&mut self) -> Result<bool, DecodeError> {
        let read = self.reader.read_byte_record(&mut self.row);
        self.reader.get_mut().reset();
        let has_row = read.map_err(|e| {
            error(
                self.location(Some(1), None),
                format!("unreadable header row: {e}"),
                true,
            )
        })?;
        if !has_row {
            return Ok(false);
        }
        if self.row.len() > MAX_COLUMNS {
            return Err(error(
                self.location(Some(1), None),
                format!(
                    "the header has {} columns; at most {MAX_COLUMNS} are read",
                    self.row.len()
                ),
                true,
            ));
        }
        let mut headers = Vec::with_capacity(self.row.len());
        let mut seen = std::collections::HashSet::with_capacity(self.row.len());
        for (i, field) in self.row.iter().enumerate() {
            let name = std::str::from_utf8(field)
                .map_err(|_| {
                    error(
                        self.location(Some(1), None),
                        format!("column {} of the header is not UTF-8", i + 1),
                        true,
                    )
                })?
                .trim()
                .to_owned();
            if !seen.insert(name.clone()) {
                return Err(error(
                    self.location(Some(1), None),
                    format!("column {name:?} appears twice in the header"),
                    true,
                ));
            }
            headers.push(name);
        }
        self.headers = Some(headers);
        Ok(true)
    }

    fn next_item(&mut self) -> Option<Item> {
        if self.is_done {
            return None;
        }
        if self.headers.is_none() {
            match self.read_headers() {
                Ok(true) => {}
                Ok(false) => return self.end(None),
                Err(e) => return self.end(Some(Err(e))),
            }
        }
        let start = self.reader.position().line();
        let result = self.reader.read_byte_record(&mut self.row);
        self.reader.get_mut().reset();
        let has_row = match &result {
            Ok(read) => *read,
            Err(e) => matches!(e.kind(), ErrorKind::UnequalLengths { .. }),
        };
        if let Some(unclosed) = has_row.then(|| self.unclosed_quote(start)).flatten() {
            return self.end(Some(Err(unclosed)));
        }
        match result {
            Ok(false) => self.end(None),
            Ok(true) => {
                self.count += 1;
                let line = self.row.position().map_or(0, |p| p.line());
                Some(self.to_record(self.location(Some(line), Some(self.count))))
            }
            Err(e) => self.read_error(&e, start),
        }
    }

    /// The error for a quote that is never closed, if the row just read (starting on
    /// line `start`) is one: it ends at the end of the document, and its last field,
    /// which holds a line break (only a quoted field can), does not end with a quote.
    /// Everything after the quote then became that one field.
    fn unclosed_quote(&self, start: u64) -> Option<DecodeError> {
        let input = self.reader.get_ref();
        let last = self.row.len().checked_sub(1)?;
        let field = self.row.get(last)?;
        let breaks = |f: &[u8]| f.iter().filter(|&&b| b == b'\n').count() as u64;
        if !input.is_at_end() || breaks(field) == 0 || input.last_visible() == Some(self.quote) {
            return None;
        }
        let opened = start + self.row.iter().take(last).map(breaks).sum::<u64>();
        let column = self
            .headers
            .as_deref()
            .and_then(|h| h.get(last))
            .map_or_else(
                || format!("column {}", last + 1),
                |name| format!("column {name:?}"),
            );
        let message = format!(
            "a quote opened on line {opened} ({column}) is never closed: the rest of the \
             document, {} more lines, was read as that one field",
            breaks(field.trim_ascii_end())
        );
        Some(error(
            self.location(Some(opened), Some(self.count + 1)),
            message,
            true,
        ))
    }

    fn end(&mut self, last: Option<Item>) -> Option<Item> {
        self.is_done = true;
        last
    }

    fn read_error(&mut self, e: &csv::Error, start: u64) -> Option<Item> {
        let line = e.position().map(|p| p.line());
        match e.kind() {
            ErrorKind::UnequalLengths {
                expected_len, len, ..
            } => {
                self.count += 1;
                let location = self.location(line, Some(self.count));
                let message = format!("row has {len} fields, the header has {expected_len}");
                Some(Err(error(location, message, false)))
            }
            ErrorKind::Io(io) => {
                let (message, line) = match TooLarge::find(io) {
                    Some(t) => (
                        format!("{t} in the row starting on line {start} (an unterminated quote?)"),
                        Some(start),
                    ),
                    None => (format!("reading the document failed: {io}"), line),
                };
                let location = self.location(line, Some(self.count + 1));
                self.end(Some(Err(error(location, message, true))))
            }
            _ => self.end(Some(Err(error(
                self.location(line, None),
                format!("unreadable CSV: {e}"),
                true,
            )))),
        }
    }

    fn to_record(&self, location: Location) -> Item {
        let headers = self.headers.as_deref().unwrap_or_default();
        let mut map = Map::new();
        for (i, (name, field)) in headers.iter().zip(self.row.iter()).enumerate() {
            let Ok(text) = std::str::from_utf8(field) else {
                return Err(error(
                    location,
                    format!("column {} ({name:?}) is not valid UTF-8", i + 1),
                    false,
                ));
            };
            map.insert(name.clone(), Value::String(text.to_owned()));
        }
        Ok(RawRecord::new(map, location))
    }
}

impl<R: Read> Iterator for CsvRecords<R> {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        self.next_item()
    }
}
