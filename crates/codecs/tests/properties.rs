//! Property tests: no input makes a decoder panic, and generated valid documents decode
//! to exactly the generated records.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly on the first surprise"
)]

use std::io::Cursor;

use intake_codecs::Codecs;
use intake_domain::contract::DocumentFormat;
use proptest::prelude::*;
use serde_json::{Map, Value};

fn formats() -> Vec<DocumentFormat> {
    vec![
        DocumentFormat::Xml {
            records: vec!["root".into(), "item".into()],
            members: None,
        },
        DocumentFormat::Csv {
            delimiter: b',',
            quote: b'"',
        },
        DocumentFormat::Json { records: vec![] },
        DocumentFormat::Json {
            records: vec!["page".into(), "items".into()],
        },
        DocumentFormat::Ndjson,
    ]
}

/// Decodes everything, checking the stream's own promises on the way: it ends (every
/// item consumes at least one byte, so it has at most one item per byte, plus one), and
/// nothing follows a fatal error.
fn drain_with(
    codecs: Codecs,
    format: &DocumentFormat,
    bytes: Vec<u8>,
) -> Vec<Result<Map<String, Value>, String>> {
    let most = bytes.len() + 1;
    let mut out = Vec::new();
    let mut is_ended = false;
    for item in codecs
        .decode_reader(format, Cursor::new(bytes))
        .take(most + 1)
    {
        assert!(!is_ended, "nothing may follow a fatal error");
        match item {
            Ok(r) => out.push(Ok(r.fields().clone())),
            Err(e) => {
                is_ended = e.is_fatal;
                out.push(Err(e.message));
            }
        }
    }
    assert!(
        out.len() <= most,
        "{} items from {} bytes: the stream does not end",
        out.len(),
        most - 1
    );
    out
}

fn drain(format: &DocumentFormat, bytes: Vec<u8>) -> Vec<Result<Map<String, Value>, String>> {
    drain_with(Codecs::with_max_record_bytes(4096), format, bytes)
}

/// A generated record: column names and text values.
fn records() -> impl Strategy<Value = (Vec<String>, Vec<Vec<String>>)> {
    (1usize..5).prop_flat_map(|width| {
        let names = proptest::collection::btree_set("[a-z][a-z0-9_]{0,6}", width)
            .prop_map(|s| s.into_iter().collect::<Vec<_>>());
        let value = "[ -~àé\u{4e2d}\"'<>&,;\\\\\n]{0,12}";
        let rows = proptest::collection::vec(proptest::collection::vec(value, width), 0..12);
        (names, rows)
    })
}

fn as_maps(names: &[String], rows: &[Vec<String>]) -> Vec<Result<Map<String, Value>, String>> {
    rows.iter()
        .map(|row| {
            Ok(names
                .iter()
                .cloned()
                .zip(row.iter().map(|v| Value::String(v.clone())))
                .collect())
        })
        .collect()
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn csv_field(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn any_bytes_give_records_or_errors_never_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        for format in formats() {
            drain(&format, bytes.clone());
            // A tiny cap sends every path through the size checks too.
            drain_with(Codecs::with_max_record_bytes(8), &format, bytes.clone());
        }
    }

    #[test]
    fn mangled_valid_documents_never_panic(
        (names, rows) in records(),
        cut in any::<prop::sample::Index>(),
        junk in "[<>\\[\\]{}\",&;\n]{0,3}",
    ) {
        let json = serde_json::to_string(&as_maps(&names, &rows).into_iter().flatten().collect::<Vec<_>>()).unwrap();
        let at = cut.index(json.len() + 1);
        let mut mangled = json.as_bytes()[..at].to_vec();
        mangled.extend_from_slice(junk.as_bytes());
        mangled.extend_from_slice(&json.as_bytes()[at..]);
        for format in formats() {
            drain(&format, mangled.clone());
        }
    }

    #[test]
    fn generated_csv_decodes_to_the_generated_rows((names, rows) in records()) {
        let mut doc = names.join(",") + "\n";
        for row in &rows {
            doc += &(row.iter().map(|v| csv_field(v)).collect::<Vec<_>>().join(",") + "\r\n");
        }
        let format = DocumentFormat::Csv { delimiter: b',', quote: b'"' };
        prop_assert_eq!(drain(&format, doc.into_bytes()), as_maps(&names, &rows));
    }

    #[test]
    fn generated_xml_decodes_to_the_generated_elements((names, rows) in records()) {
        let mut doc = String::from("<?xml version=\"1.0\"?>\n<root>\n");
        for row in &rows {
            doc += "  <item>";
            for (name, value) in names.iter().zip(row) {
                doc += &format!("<{name}>{}</{name}>", xml_escape(value));
            }
            doc += "</item>\n";
        }
        doc += "</root>\n";
        let format = DocumentFormat::Xml { records: vec!["root".into(), "item".into()], members: None };
        // XML normalises a carriage return to a line feed; the generator makes none.
        prop_assert_eq!(drain(&format, doc.into_bytes()), as_maps(&names, &rows));
    }

    #[test]
    fn generated_json_and_ndjson_decode_to_the_generated_objects((names, rows) in records(), pretty in any::<bool>()) {
        let objects: Vec<Value> = as_maps(&names, &rows).into_iter().flatten().map(Value::Object).collect();
        let array = if pretty { serde_json::to_string_pretty(&objects) } else { serde_json::to_string(&objects) }.unwrap();
        let nested = format!("{{\"meta\": {{\"items\": [1]}}, \"page\": {{\"n\": [{{}}], \"items\": {array}}}}}");
        let lines: String = objects.iter().map(|o| format!("{o}\n\n")).collect();
        let expected = as_maps(&names, &rows);
        prop_assert_eq!(drain(&DocumentFormat::Json { records: vec![] }, array.into_bytes()), expected.clone());
        prop_assert_eq!(drain(&DocumentFormat::Json { records: vec!["page".into(), "items".into()] }, nested.into_bytes()), expected.clone());
        prop_assert_eq!(drain(&DocumentFormat::Ndjson, lines.into_bytes()), expected);
    }
}
