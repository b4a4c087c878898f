//! Byte-offset to line/column, for decoders whose parser reports offsets.
//!
//! [`LineCounter`] wraps a `BufRead` and counts newlines as the parser consumes bytes,
//! keeping the offsets of the most recent ones (a bounded window), so an offset near
//! the parser's position maps to an exact line and column in constant memory. It also
//! caps the bytes the parser may pull between two marks (see [`crate::budget`]), so one
//! runaway token cannot pull the document into memory.

use std::collections::VecDeque;
use std::io::{self, BufRead, Read, Result};

use crate::budget::TooLarge;

const WINDOW: usize = 4096;

#[derive(Debug)]
pub(crate) struct LineCounter<R> {
    inner: R,
    consumed: u64,
    newlines: u64,
    recent: VecDeque<u64>,
    mark: u64,
    limit: u64,
}

impl<R> LineCounter<R> {
    pub(crate) fn new(inner: R, limit: usize) -> Self {
        Self {
            inner,
            consumed: 0,
            newlines: 0,
            recent: VecDeque::with_capacity(WINDOW),
            mark: 0,
            limit: limit as u64,
        }
    }

    /// A token boundary: the parser may pull `limit` more bytes.
    pub(crate) fn mark(&mut self) {
        self.mark = self.consumed;
    }

    /// Whether the parser consumed more than `limit` bytes since the last mark (a token
    /// that fitted in one read-ahead buffer, which `fill_buf` could not refuse).
    pub(crate) fn is_over_limit(&self) -> bool {
        self.consumed - self.mark > self.limit
    }

    /// 1-based (line, column) of a byte offset at or before the consumed position.
    /// Offsets older than the window of recent newlines get the oldest known line.
    pub(crate) fn line_col(&self, offset: u64) -> (u64, u64) {
        let after = self
            .recent
            .iter()
            .rev()
            .take_while(|&&nl| nl >= offset)
            .count() as u64;
        let line = self.newlines - after + 1;
        let line_start = self
            .recent
            .iter()
            .rev()
            .find(|&&nl| nl < offset)
            .map_or(0, |nl| nl + 1);
        (line, offset.saturating_sub(line_start) + 1)
    }
}

impl<R: Read> Read for LineCounter<R> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        let n = self.inner.read(buf)?;
        count(
            &mut self.consumed,
            &mut self.newlines,
            &mut self.recent,
            &buf[..n],
        );
        Ok(n)
    }
}

fn count(consumed: &mut u64, newlines: &mut u64, recent: &mut VecDeque<u64>, bytes: &[u8]) {
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'\n' {
            if recent.len() == WINDOW {
                recent.pop_front();
            }
            recent.push_back(*consumed + i as u64);
            *newlines += 1;
        }
    }
    *consumed += bytes.len() as u64;
}

impl<R: BufRead> BufRead for LineCounter<R> {
    fn fill_buf(&mut self) -> Result<&[u8]> {
        if self.consumed - self.mark > self.limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                TooLarge(self.limit),
            ));
        }
        self.inner.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        let Self {
            inner,
            consumed,
            newlines,
            recent,
            ..
        } = self;
        if let Ok(buf) = inner.fill_buf() {
            count(consumed, newlines, recent, &buf[..amt.min(buf.len())]);
        }
        inner.consume(amt);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_map_to_lines_and_columns() {
        let mut c = LineCounter::new(&b"ab\ncd\n\nef"[..], 100);
        let mut all = Vec::new();
        c.read_to_end(&mut all).unwrap();
        assert_eq!(c.line_col(0), (1, 1));
        assert_eq!(c.line_col(1), (1, 2));
        assert_eq!(c.line_col(3), (2, 1));
        assert_eq!(c.line_col(6), (3, 1));
        assert_eq!(c.line_col(8), (4, 2));
    }
}
