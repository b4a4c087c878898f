//! JSON: records are the elements of an array, at the top level or at a dotted path of
//! object keys. A small scanner walks the document structure without building it,
//! captures one element's bytes at a time and hands them to `serde_json`: an element
//! that is not valid JSON (or not an object) is a non-fatal error and the next element
//! follows; broken structure (unbalanced brackets, an unterminated string, the end of
//! the document inside the array) is fatal.

use std::io::BufRead;

use intake_domain::{DecodeError, Location, RawRecord};

use crate::{error, parse_object};

pub(crate) struct JsonRecords<R> {
    scan: Scanner<R>,
    path: Vec<String>,
    state: State,
    index: u64,
    max_bytes: usize,
    capture: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Start,
    FirstElement,
    NextElement,
    Trailer,
    Done,
}

/// Deeper nesting is refused (serde_json would refuse such a record anyway).
const MAX_DEPTH: usize = 128;

type Item = Result<RawRecord, DecodeError>;

/// A structural failure: what went wrong (the scanner knows where).
struct Broken(String);

impl From<std::io::Error> for Broken {
    fn from(e: std::io::Error) -> Self {
        Broken(format!("reading the document failed: {e}"))
    }
}

impl<R: BufRead> JsonRecords<R> {
    pub(crate) fn new(input: R, path: Vec<String>, max_bytes: usize) -> Self {
        Self {
            scan: Scanner {
                inner: input,
                line: 1,
                column: 1,
            },
            path,
            state: State::Start,
            index: 0,
            max_bytes,
            capture: Vec::new(),
        }
    }

    fn array_path(&self) -> String {
        std::iter::once("$".to_owned())
            .chain(self.path.iter().cloned())
            .collect::<Vec<_>>()
            .join(".")
    }

    fn find_array(&mut self) -> Result<(), Broken> {
        for (depth, segment) in self.path.clone().iter().enumerate() {
            let at = if depth == 0 {
                "$".to_owned()
            } else {
                format!("$.{}", self.path[..depth].join("."))
            };
            self.scan.expect(b'{', &format!("an object at {at}"))?;
            self.find_key(segment, &at)?;
        }
        self.scan
            .expect(b'[', &format!("an array at {}", self.array_path()))
    }

    fn find_key(&mut self, key: &str, at: &str) -> Result<(), Broken> {
        let missing = || Broken(format!("{at} has no key {key:?}"));
        if self.scan.skip_ws()? == Some(b'}') {
            return Err(missing());
        }
        loop {
            let name = self.scan.string_value(self.max_bytes)?;
            self.scan.expect(b':', "':' after an object key")?;
            if name == key {
                return Ok(());
            }
            self.scan.value(None, self.max_bytes)?;
            match self.scan.skip_ws()? {
                Some(b',') => self.scan.bump()?,
                Some(b'}') => return Err(missing()),
                _ => return Err(Broken("expected ',' or '}' in an object".into())),
            };
        }
    }

    /// After the records array: the rest of the enclosing objects, then nothing. A
    /// document cut off or followed by garbage is broken even if every record was fine.
    fn trailer(&mut self) -> Result<(), Broken> {
        for _ in 0..self.path.len() {
            loop {
                match self.scan.skip_ws()? {
                    Some(b'}') => break,
                    Some(b',') => {
                        self.scan.bump()?;
                        self.scan.string_value(self.max_bytes)?;
                        self.scan.expect(b':', "':' after an object key")?;
                        self.scan.value(None, self.max_bytes)?;
                    }
                    _ => return Err(Broken("expected ',' or '}' after the records array".into())),
                }
            }
            self.scan.bump()?;
        }
        match self.scan.skip_ws()? {
            None => Ok(()),
            Some(b) => Err(Broken(format!(
                "unexpected {:?} after the end of the document",
                b as char
            ))),
        }
    }

    fn element(&mut self) -> Result<Option<Item>, Broken> {
        let next = self.scan.skip_ws()?;
        if self.state == State::FirstElement && next == Some(b']') {
            self.scan.bump()?;
            self.state = State::Trailer;
            return Ok(None);
        }
        let location = Location {
            record: Some(self.index + 1),
            line: Some(self.scan.line),
            column: Some(self.scan.column),
            path: Some(format!("{}[{}]", self.array_path(), self.index)),
            ..Location::default()
        };
        self.index += 1;
        self.capture.clear();
        let fits = self.scan.value(Some(&mut self.capture), self.max_bytes)?;
        match self.scan.skip_ws()? {
            Some(b',') => self.state = State::NextElement,
            Some(b']') => self.state = State::Trailer,
            _ => return Err(Broken("expected ',' or ']' after an array element".into())),
        }
        self.scan.bump()?;
        if !fits {
            return Ok(Some(Err(error(
                location,
                format!(
                    "record is larger than the limit of {} bytes",
                    self.max_bytes
                ),
                false,
            ))));
        }
        let parsed = parse_object(&self.capture, location);
        Ok(Some(parsed))
    }
}

impl<R: BufRead> Iterator for JsonRecords<R> {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        let step = match self.state {
            State::Done => return None,
            State::Start => self.find_array().map(|()| {
                self.state = State::FirstElement;
                None
            }),
            State::FirstElement | State::NextElement => self.element(),
            State::Trailer => self.trailer().map(|()| {
                self.state = State::Done;
                None
            }),
        };
        match step {
            Ok(None) if self.state != State::Done => self.next(),
            Ok(item) => item,
            Err(Broken(message)) => {
                self.state = State::Done;
                let location = Location {
                    record: (self.index > 0).then_some(self.index),
                    line: Some(self.scan.line),
                    column: Some(self.scan.column),
                    ..Location::default()
                };
                Some(Err(error(location, message, true)))
            }
        }
    }
}

/// Byte-level cursor with line and column.
struct Scanner<R> {
    inner: R,
    line: u64,
    column: u64,
}

impl<R: BufRead> Scanner<R> {
    fn peek(&mut self) -> Result<Option<u8>, Broken> {
        Ok(self.inner.fill_buf()?.first().copied())
    }

    fn bump(&mut self) -> Result<Option<u8>, Broken> {
        let b = self.peek()?;
        if let Some(b) = b {
            self.inner.consume(1);
            if b == b'\n' {
                self.line += 1;
                self.column = 1;
            } else {
                self.column += 1;
            }
        }
        Ok(b)
    }

    /// Moves past whitespace, a buffer at a time; the next byte, `None` at the end.
    fn skip_ws(&mut self) -> Result<Option<u8>, Broken> {
        loop {
            let buf = self.inner.fill_buf()?;
            if buf.is_empty() {
                return Ok(None);
            }
            let spaces = buf.iter().take_while(|b| b.is_ascii_whitespace()).count();
            advance(&mut self.line, &mut self.column, &buf[..spaces]);
            let next = buf.get(spaces).copied();
            self.inner.consume(spaces);
            if next.is_some() {
                return Ok(next);
            }
        }
    }

    fn expect(&mut self, wanted: u8, what: &str) -> Result<(), Broken> {
        match self.skip_ws()? {
            Some(b) if b == wanted => {
                self.bump()?;
                Ok(())
            }
            Some(b) => Err(Broken(format!("expected {what}, found {:?}", b as char))),
            None => Err(Broken(format!(
                "expected {what}, found the end of the document"
            ))),
        }
    }

    fn string_value(&mut self, max: usize) -> Result<String, Broken> {
        let mut raw = Vec::new();
        self.skip_ws()?;
        if self.peek()? != Some(b'"') || !self.value(Some(&mut raw), max)? {
            return Err(Broken("expected an object key".into()));
        }
        serde_json::from_slice(&raw).map_err(|e| Broken(format!("invalid object key: {e}")))
    }

    /// Walks one value, copying its bytes into `out` while they fit in `max`. Returns
    /// whether the whole value fit. Only structure is checked here; `serde_json`
    /// validates the captured bytes. Works a buffer at a time, not a byte at a time.
    fn value(&mut self, mut out: Option<&mut Vec<u8>>, max: usize) -> Result<bool, Broken> {
        let mut fits = true;
        let mut walked = 0usize;
        let mut walk = Walk::default();
        self.skip_ws()?;
        loop {
            let buf = self.inner.fill_buf()?;
            if buf.is_empty() {
                return Err(Broken("the document ends inside a value".into()));
            }
            let (used, is_done) = walk.scan(buf)?;
            let taken = &buf[..used];
            advance(&mut self.line, &mut self.column, taken);
            if let Some(out) = out.as_deref_mut() {
                let room = max.saturating_sub(out.len()).min(used);
                out.extend_from_slice(&taken[..room]);
                fits &= room == used;
            }
            walked += used;
            self.inner.consume(used);
            if is_done {
                break;
            }
        }
        if walked == 0 {
            return Err(Broken("expected a value".into()));
        }
        Ok(fits)
    }
}

/// Moves a line/column position over `bytes`.
fn advance(line: &mut u64, column: &mut u64, bytes: &[u8]) {
    match bytes.iter().rposition(|b| *b == b'\n') {
        Some(last) => {
            *line += bytes.iter().filter(|b| **b == b'\n').count() as u64;
            *column = (bytes.len() - last) as u64;
        }
        None => *column += bytes.len() as u64,
    }
}

/// Where a value walk is: inside a string (after a backslash?), and which brackets are
/// open.
#[derive(Default)]
struct Walk {
    closers: Vec<u8>,
    in_string: bool,
    escaped: bool,
}

impl Walk {
    /// A scalar (number, literal) ends at a delimiter that is not part of it.
    fn is_scalar_end(&self, b: u8) -> bool {
        !self.in_string
            && self.closers.is_empty()
            && (matches!(b, b',' | b']' | b'}') || b.is_ascii_whitespace())
    }

    /// Walks as much of `buf` as belongs to the value: (bytes taken, whether the value
    /// ended).
    fn scan(&mut self, buf: &[u8]) -> Result<(usize, bool), Broken> {
        for (i, &b) in buf.iter().enumerate() {
            if self.is_scalar_end(b) {
                return Ok((i, true));
            }
            if self.step(b)? {
                return Ok((i + 1, true));
            }
        }
        Ok((buf.len(), false))
    }

    /// Takes one byte of the value; `true` once a string, object or array closed it.
    fn step(&mut self, b: u8) -> Result<bool, Broken> {
        if self.in_string {
            match (self.escaped, b) {
                (true, _) => self.escaped = false,
                (false, b'\\') => self.escaped = true,
                (false, b'"') => self.in_string = false,
                _ => {}
            }
            return Ok(!self.in_string && self.closers.is_empty());
        }
        match b {
            b'"' => self.in_string = true,
            b'{' | b'[' if self.closers.len() == MAX_DEPTH => {
                return Err(Broken(format!("nesting deeper than {MAX_DEPTH} levels")));
            }
            b'{' => self.closers.push(b'}'),
            b'[' => self.closers.push(b']'),
            b'}' | b']' if self.closers.pop() != Some(b) => {
                return Err(Broken(format!("unbalanced {:?}", b as char)));
            }
            b'}' | b']' => return Ok(self.closers.is_empty()),
            _ => {}
        }
        Ok(false)
    }
}
