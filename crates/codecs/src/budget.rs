//! A cap on how many bytes a parser may pull between two record boundaries.
//!
//! Parsers buffer whatever belongs to the token they are reading: a CSV field with an
//! unterminated quote, an XML text node, a tag. Left alone, one such token can pull a
//! whole document into memory. [`Budget`] refuses to deliver more than a limit of
//! bytes until the decoder calls [`Budget::reset`] at the next boundary, turning a
//! runaway token into an error instead of unbounded memory.

use std::io::{self, BufRead, Read};

/// The error a [`Budget`] raises; decoders recognise it to word their message.
#[derive(Debug)]
pub(crate) struct TooLarge(pub(crate) u64);

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "a single record or token is larger than the limit of {} bytes",
            self.0
        )
    }
}

impl std::error::Error for TooLarge {}

impl TooLarge {
    /// The limit, if `error` is (or wraps) a [`TooLarge`].
    pub(crate) fn find(error: &io::Error) -> Option<&Self> {
        error.get_ref().and_then(|e| e.downcast_ref::<Self>())
    }
}

#[derive(Debug)]
pub(crate) struct Budget<R> {
    inner: R,
    used: u64,
    limit: u64,
    /// The last byte delivered through [`Read`] that is not ASCII whitespace.
    last_visible: Option<u8>,
    /// Whether [`Read`] has reported the end of the input.
    is_at_end: bool,
}

impl<R> Budget<R> {
    pub(crate) fn new(inner: R, limit: usize) -> Self {
        Self {
            inner,
            used: 0,
            limit: limit as u64,
            last_visible: None,
            is_at_end: false,
        }
    }

    /// The last byte read so far that is not ASCII whitespace.
    pub(crate) fn last_visible(&self) -> Option<u8> {
        self.last_visible
    }

    /// Whether reading has reached the end of the input.
    pub(crate) fn is_at_end(&self) -> bool {
        self.is_at_end
    }

    /// A record boundary: the next record may use the whole limit again.
    pub(crate) fn reset(&mut self) {
        self.used = 0;
    }

    fn check(&self) -> io::Result<()> {
        if self.used > self.limit {
            Err(io::Error::new(
                io::ErrorKind::InvalidData,
                TooLarge(self.limit),
            ))
        } else {
            Ok(())
        }
    }
}

impl<R: Read> Read for Budget<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.check()?;
        let n = self.inner.read(buf)?;
        self.used += n as u64;
        if n == 0 && !buf.is_empty() {
            self.is_at_end = true;
        }
        if let Some(&b) = buf[..n].iter().rev().find(|b| !b.is_ascii_whitespace()) {
            self.last_visible = Some(b);
        }
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Budget<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.check()?;
        self.inner.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        self.used += amt as u64;
        self.inner.consume(amt);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_past_the_limit_until_reset() {
        let mut b = Budget::new(&b"0123456789abcdef"[..], 4);
        let mut buf = [0u8; 5];
        assert_eq!(b.read(&mut buf).unwrap(), 5);
        let err = b.read(&mut buf).unwrap_err();
        assert_eq!(TooLarge::find(&err).map(|t| t.0), Some(4));
        b.reset();
        assert_eq!(b.read(&mut buf).unwrap(), 5);
    }
}
