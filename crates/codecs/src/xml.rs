//! XML: records are the elements at an element path (`root/record`). Each record
//! becomes an object: attributes as `@name`, child elements by tag (repeats become a
//! list, text-only children become their text), own text as `#text`. The root element
//! must be the path's first element: a document with another root is invalid, not
//! empty. XML has no way to resynchronise after a syntax error, so those are fatal.
//!
//! Given the members a contract reads, a record's other children are parsed (the
//! document must still be well formed) but not built, and its other attributes are
//! dropped; what is not built does not count towards the record's size limit.

use std::collections::BTreeSet;
use std::io::BufRead;

use intake_domain::{DecodeError, Location, RawRecord};
use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};
use serde_json::{Map, Value};

use crate::budget::TooLarge;
use crate::error;
use crate::lines::LineCounter;

pub(crate) struct XmlRecords<R> {
    reader: Reader<LineCounter<R>>,
    buf: Vec<u8>,
    records_path: Vec<String>,
    /// The record's children and attributes to keep; `None`: all.
    members: Option<BTreeSet<String>>,
    /// How many elements deep the decoder is inside a child it does not keep.
    skipping: usize,
    stack: Vec<String>,
    record: Option<Builder>,
    is_root_seen: bool,
    count: u64,
    is_done: bool,
    max_bytes: usize,
}

struct Builder {
    nodes: Vec<Node>,
    location: Location,
    size: usize,
    problem: Option<String>,
}

#[derive(Default)]
struct Node {
    name: String,
    attrs: Vec<(String, String)>,
    children: Map<String, Value>,
    text: String,
}

impl Node {
    fn into_value(self, is_record: bool) -> Value {
        if !is_record && self.attrs.is_empty() && self.children.is_empty() {
            return Value::String(self.text);
        }
        // Attribute names already carry their `@` (see [`attributes`]).
        let mut map = self.children;
        for (k, v) in self.attrs {
            map.insert(k, Value::String(v));
        }
        if !self.text.trim().is_empty() {
            map.insert("#text".to_owned(), Value::String(self.text));
        }
        Value::Object(map)
    }

    fn add_child(&mut self, name: String, value: Value) {
        match self.children.get_mut(&name) {
            Some(Value::Array(items)) => items.push(value),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, value]);
            }
            None => {
                self.children.insert(name, value);
            }
        }
    }
}

type Item = Result<RawRecord, DecodeError>;

/// Deeper element nesting is refused: the open elements are held in memory.
const MAX_DEPTH: usize = 256;

impl<R: BufRead> XmlRecords<R> {
    pub(crate) fn new(
        input: R,
        records_path: Vec<String>,
        members: Option<BTreeSet<String>>,
        max_bytes: usize,
    ) -> Self {
        let mut reader = Reader::from_reader(LineCounter::new(input, max_bytes));
        reader.config_mut().expand_empty_elements = true;
        Self {
            reader,
            buf: Vec::with_capacity(4096),
            records_path,
            members,
            skipping: 0,
            stack: Vec::new(),
            record: None,
            is_root_seen: false,
            count: 0,
            is_done: false,
            max_bytes,
        }
    }

    fn location_at(&self, offset: u64) -> Location {
        let (line, column) = self.reader.get_ref().line_col(offset);
        Location {
            record: self
                .record
                .as_ref()
                .map(|r| r.location.record)
                .unwrap_or_default(),
            line: Some(line),
            column: Some(column),
            path: (!self.stack.is_empty()).then(|| self.stack.join("/")),
            ..Location::default()
        }
    }

    fn fatal(&mut self, offset: u64, message: String) -> Option<Item> {
        self.is_done = true;
        Some(Err(error(self.location_at(offset), message, true)))
    }

    fn next_item(&mut self) -> Option<Item> {
        while !self.is_done {
            let mut buf = std::mem::take(&mut self.buf);
            buf.clear();
            // Whitespace is not trimmed, so the event starts exactly here.
            let start = self.reader.buffer_position();
            let item = match self.reader.read_event_into(&mut buf) {
                Err(e) => self.syntax_error(&e, start),
                Ok(_) if self.reader.get_ref().is_over_limit() => {
                    let too_large = TooLarge(self.max_bytes as u64).to_string();
                    self.fatal(start, too_large)
                }
                Ok(Event::Start(tag)) => self.open(&tag, start),
                Ok(Event::End(_)) => self.close(),
                Ok(Event::Text(t)) => self.text(&t.xml10_content()),
                Ok(Event::CData(c)) => self.text(&c.xml10_content()),
                Ok(Event::GeneralRef(r)) => self.reference(&r),
                Ok(Event::Eof) => self.end_of_document(),
                Ok(_) => None,
            };
            self.reader.get_mut().mark();
            // One huge event must not keep its buffer for the rest of the document.
            self.buf = if buf.capacity() > 1 << 20 {
                Vec::with_capacity(4096)
            } else {
                buf
            };
            if item.is_some() {
                return item;
            }
        }
        None
    }

    fn syntax_error(&mut self, e: &quick_xml::Error, event_start: u64) -> Option<Item> {
        match e {
            // quick-xml does not record where a read failed: the event's start is the
            // best position there is.
            quick_xml::Error::Io(io) => {
                let message = match TooLarge::find(io) {
                    Some(t) => t.to_string(),
                    None => format!("reading the document failed: {io}"),
                };
                self.fatal(event_start, message)
            }
            other => self.fatal(
                self.reader.error_position(),
                format!("malformed XML: {other}"),
            ),
        }
    }

    fn open(&mut self, tag: &BytesStart<'_>, offset: u64) -> Option<Item> {
        let name = tag.name().as_ref().to_owned();
        if !self.is_root_seen {
            self.is_root_seen = true;
            if self.records_path.first() != Some(&name) {
                let expected = self.records_path.first().cloned().unwrap_or_default();
                return self.fatal(
                    offset,
                    format!("root element is <{name}>, expected <{expected}>"),
                );
            }
        }
        if self.stack.len() == MAX_DEPTH {
            return self.fatal(
                offset,
                format!("elements nested deeper than {MAX_DEPTH} levels"),
            );
        }
        self.stack.push(name.clone());
        if self.skipping > 0 || self.is_unread_child(&name) {
            self.skipping += 1;
            return None;
        }
        if self.record.is_none() && self.stack == self.records_path {
            self.count += 1;
            let mut location = self.location_at(offset);
            location.record = Some(self.count);
            location.path = Some(format!("{}[{}]", self.records_path.join("/"), self.count));
            self.record = Some(Builder {
                nodes: Vec::new(),
                location,
                size: 0,
                problem: None,
            });
        }
        // Attributes outside records are never read, so they cannot spoil anything.
        let max = self.max_bytes;
        let is_record = self.stack.len() == self.records_path.len();
        let members = self.members.as_ref().filter(|_| is_record);
        let record = self.record.as_mut()?;
        let mut attrs = attributes(tag).unwrap_or_else(|problem| {
            record.problem.get_or_insert(problem);
            Vec::new()
        });
        if let Some(members) = members {
            attrs.retain(|(name, _)| members.contains(name));
        }
        record.grow(
            // The `@` of each attribute's name is not in the document.
            name.len()
                + attrs
                    .iter()
                    .map(|(k, v)| k.len() - 1 + v.len())
                    .sum::<usize>(),
            max,
        );
        record.nodes.push(Node {
            name,
            attrs,
            ..Node::default()
        });
        None
    }

    /// Whether `name`, just opened, is a child of the record that is not kept.
    fn is_unread_child(&self, name: &str) -> bool {
        self.record.is_some()
            && self.stack.len() == self.records_path.len() + 1
            && self.members.as_ref().is_some_and(|m| !m.contains(name))
    }

    fn close(&mut self) -> Option<Item> {
        self.stack.pop();
        if self.skipping > 0 {
            self.skipping -= 1;
            return None;
        }
        let record = self.record.as_mut()?;
        let node = record.nodes.pop()?;
        if let Some(parent) = record.nodes.last_mut() {
            if record.problem.is_none() {
                let mut node = node;
                let name = std::mem::take(&mut node.name);
                parent.add_child(name, node.into_value(false));
            }
            return None;
        }
        let record = self.record.take()?;
        Some(match (record.problem, node.into_value(true)) {
            (None, Value::Object(map)) => Ok(RawRecord::new(map, record.location)),
            (Some(problem), _) => Err(error(record.location, problem, false)),
            (None, _) => Err(error(record.location, "record is not an element", false)),
        })
    }

    /// Text of the current element; never ends a record, so it answers `None`.
    fn text(&mut self, text: &str) -> Option<Item> {
        if self.skipping > 0 {
            return None;
        }
        let max = self.max_bytes;
        let record = self.record.as_mut()?;
        record.grow(text.len(), max);
        if let (None, Some(node)) = (&record.problem, record.nodes.last_mut()) {
            node.text.push_str(text);
        }
        None
    }

    /// An entity or character reference inside text.
    fn reference(&mut self, reference: &quick_xml::events::BytesRef<'_>) -> Option<Item> {
        if self.skipping > 0 {
            return None;
        }
        let name: &str = reference;
        let resolved = match reference.resolve_char_ref() {
            Ok(Some(c)) => Some(c.to_string()),
            Ok(None) => quick_xml::escape::resolve_predefined_entity(name).map(str::to_owned),
            Err(_) => None,
        };
        match resolved {
            Some(text) => self.text(&text),
            None => {
                let record = self.record.as_mut()?;
                record
                    .problem
                    .get_or_insert_with(|| format!("unknown entity &{name};"));
                None
            }
        }
    }

    fn end_of_document(&mut self) -> Option<Item> {
        let offset = self.reader.buffer_position();
        if !self.is_root_seen {
            let expected = self.records_path.first().cloned().unwrap_or_default();
            return self.fatal(
                offset,
                format!("document is empty: expected root element <{expected}>"),
            );
        }
        if let Some(open) = self.stack.last().cloned() {
            return self.fatal(offset, format!("document ends inside <{open}>"));
        }
        self.is_done = true;
        None
    }
}

impl Builder {
    fn grow(&mut self, bytes: usize, max: usize) {
        self.size = self.size.saturating_add(bytes);
        if self.size > max && self.problem.is_none() {
            self.problem = Some(format!("record is larger than the limit of {max} bytes"));
            self.nodes.iter_mut().for_each(|n| {
                *n = Node {
                    name: std::mem::take(&mut n.name),
                    ..Node::default()
                }
            });
        }
    }
}

/// The element's attributes, each name with the `@` it has in the record.
fn attributes(start: &BytesStart<'_>) -> Result<Vec<(String, String)>, String> {
    start
        .attributes()
        .map(|attr| {
            let attr = attr.map_err(|e| format!("malformed attribute: {e}"))?;
            let value = attr
                .normalized_value(XmlVersion::Implicit1_0)
                .map_err(|e| format!("malformed attribute value: {e}"))?;
            let key: &str = attr.key.as_ref();
            let mut name = String::with_capacity(key.len() + 1);
            name.push('@');
            name.push_str(key);
            Ok((name, value.into_owned()))
        })
        .collect()
}

impl<R: BufRead> Iterator for XmlRecords<R> {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        self.next_item()
    }
}
