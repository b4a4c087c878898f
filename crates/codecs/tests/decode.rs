//! Each decoder on small documents: records, locations, recoverable and fatal errors.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly on the first surprise"
)]

use intake_codecs::Codecs;
use intake_domain::contract::DocumentFormat;
use intake_domain::{DecodeError, RawRecord};
use serde_json::{Value, json};

fn decode(format: DocumentFormat, doc: &str) -> Vec<Result<RawRecord, DecodeError>> {
    Codecs::default()
        .decode_reader(&format, std::io::Cursor::new(doc.as_bytes().to_vec()))
        .collect()
}

fn xml(records: &str) -> DocumentFormat {
    DocumentFormat::Xml {
        records: records.split('/').map(str::to_owned).collect(),
        members: None,
    }
}

fn json_at(path: &str) -> DocumentFormat {
    DocumentFormat::Json {
        records: if path.is_empty() {
            vec![]
        } else {
            path.split('.').map(str::to_owned).collect()
        },
    }
}

const CSV: DocumentFormat = DocumentFormat::Csv {
    delimiter: b',',
    quote: b'"',
};

/// The item's error, after checking that it is fatal and says `text`.
fn fatal<'a>(item: &'a Result<RawRecord, DecodeError>, text: &str) -> &'a DecodeError {
    let err = item.as_ref().expect_err("an error");
    assert!(
        err.is_fatal && err.message.contains(text),
        "{err:?} should be fatal and say {text:?}"
    );
    err
}

fn fields(item: &Result<RawRecord, DecodeError>) -> Value {
    Value::Object(item.as_ref().expect("a record").fields().clone())
}

#[test]
fn xml_records_carry_attributes_children_text_and_location() {
    let doc = "<?xml version=\"1.0\"?>\n<results>\n  <meta>ignored</meta>\n  <result scanned-on=\"2017-12-04\">\n    <name>K &amp; J</name>\n    <marks available=\"20\" obtained=\"13\"/>\n    <answer q=\"0\">D</answer><answer q=\"1\">A</answer>\n  </result>\n  <result><name/></result>\n</results>\n";
    let items = decode(xml("results/result"), doc);
    assert_eq!(items.len(), 2);
    assert_eq!(
        fields(&items[0]),
        json!({"@scanned-on": "2017-12-04", "name": "K & J", "marks": {"@available": "20", "@obtained": "13"},
               "answer": [{"@q": "0", "#text": "D"}, {"@q": "1", "#text": "A"}]})
    );
    let loc = items[0].as_ref().unwrap().location();
    assert_eq!(
        (loc.record, loc.line, loc.column),
        (Some(1), Some(4), Some(3))
    );
    assert_eq!(loc.path.as_deref(), Some("results/result[1]"));
    assert_eq!(fields(&items[1]), json!({"name": ""}));
}

/// Given the members a contract reads, a record keeps those children and attributes
/// only; the rest is still parsed, so a malformed part is still fatal, with its path.
#[test]
fn xml_records_keep_only_the_members_read() {
    let doc = "<results>\n  <result scanned-on=\"2017-12-04\" batch=\"7\">\n    <name>K &amp; J</name>\n    <marks available=\"20\" obtained=\"13\"/>\n    <answer q=\"0\"><mark>D</mark>&unknown;</answer><answer q=\"1\">A</answer>\n    <more><answer>nested</answer></more>\n  </result>\n  <result><name>Z</name></result>\n</results>\n";
    let members = ["@scanned-on", "name", "marks"].map(str::to_owned);
    let format = DocumentFormat::Xml {
        records: vec!["results".into(), "result".into()],
        members: Some(members.into_iter().collect()),
    };
    let items = decode(format.clone(), doc);
    assert_eq!(items.len(), 2);
    assert_eq!(
        fields(&items[0]),
        json!({"@scanned-on": "2017-12-04", "name": "K & J", "marks": {"@available": "20", "@obtained": "13"}})
    );
    let loc = items[0].as_ref().unwrap().location();
    assert_eq!((loc.record, loc.line), (Some(1), Some(2)));
    assert_eq!(fields(&items[1]), json!({"name": "Z"}));

    let broken = "<results><result><name>A</name><answer><x>1</y></answer></result></results>";
    let items = decode(format, broken);
    let err = fatal(&items[0], "malformed XML");
    assert_eq!(
        err.location.path.as_deref(),
        Some("results/result/answer/x")
    );
}

#[test]
fn xml_with_another_root_is_invalid_not_empty() {
    let items = decode(
        xml("mcq-test-results/mcq-test-result"),
        "<other><mcq-test-result/></other>",
    );
    let err = items[0].as_ref().unwrap_err();
    assert!(err.is_fatal);
    assert!(
        err.message.contains("root element is <other>"),
        "{}",
        err.message
    );
    let empty = decode(xml("a/b"), "");
    assert!(
        empty[0]
            .as_ref()
            .unwrap_err()
            .message
            .contains("document is empty")
    );
}

#[test]
fn xml_syntax_errors_are_fatal_with_line_and_path() {
    let items = decode(xml("a/b"), "<a>\n<b><c>1</c></b>\n<b><c>2</d></b></a>");
    assert_eq!(items.len(), 2);
    assert!(items[0].is_ok());
    let err = items[1].as_ref().unwrap_err();
    assert!(err.is_fatal);
    assert_eq!(err.location.line, Some(3));
    assert_eq!(err.location.path.as_deref(), Some("a/b/c"));
    let truncated = decode(xml("a/b"), "<a><b>1</b>");
    assert!(
        truncated
            .last()
            .unwrap()
            .as_ref()
            .unwrap_err()
            .message
            .contains("ends inside <a>")
    );
}

#[test]
fn xml_unknown_entities_spoil_only_their_record() {
    let items = decode(xml("a/b"), "<a><b>&nope;</b><b>&#65;</b></a>");
    assert!(
        items[0]
            .as_ref()
            .unwrap_err()
            .message
            .contains("unknown entity")
    );
    assert!(!items[0].as_ref().unwrap_err().is_fatal);
    assert_eq!(fields(&items[1]), json!({"#text": "A"}));
}

#[test]
fn csv_rows_become_objects_and_bad_rows_are_skipped_with_their_row() {
    let doc = "\u{feff}id,name\n1,\"Smith, J\"\n2\n3,\"multi\nline\"\n4,ok\n";
    let items = decode(CSV, doc);
    assert_eq!(items.len(), 4);
    assert_eq!(fields(&items[0]), json!({"id": "1", "name": "Smith, J"}));
    let err = items[1].as_ref().unwrap_err();
    assert!(!err.is_fatal);
    assert_eq!(
        (err.location.row, err.location.record, err.location.line),
        (Some(3), Some(2), Some(3))
    );
    assert_eq!(fields(&items[2]), json!({"id": "3", "name": "multi\nline"}));
    let last = items[3].as_ref().unwrap().location();
    assert_eq!((last.row, last.line), (Some(5), Some(6)));
}

#[test]
fn csv_invalid_utf8_spoils_only_its_row() {
    let mut doc = b"id,name\n1,".to_vec();
    doc.extend_from_slice(&[0xff, 0xfe]);
    doc.extend_from_slice(b"\n2,b\n");
    let items: Vec<_> = Codecs::default()
        .decode_reader(&CSV, std::io::Cursor::new(doc))
        .collect();
    assert!(items[0].as_ref().unwrap_err().message.contains("UTF-8"));
    assert_eq!(fields(&items[1]), json!({"id": "2", "name": "b"}));
}

#[test]
fn csv_with_a_duplicate_column_is_refused() {
    let items = decode(CSV, "id,id\n1,2\n");
    assert!(items[0].as_ref().unwrap_err().is_fatal);
    assert!(decode(CSV, "").is_empty());
}

#[test]
fn a_csv_header_with_too_many_columns_is_refused_naming_the_limit() {
    // 100k columns once cost 12 s of worker time (a quadratic duplicate check).
    let header: Vec<String> = (0..100_000).map(|i| format!("c{i}")).collect();
    let doc = format!("{}\n", header.join(","));
    let items = decode(CSV, &doc);
    assert_eq!(items.len(), 1);
    let e = fatal(&items[0], "at most 4096");
    assert!(e.to_string().contains("100000 columns"), "{e}");

    // Up to the limit, every name is read and a duplicate anywhere is found.
    let mut header: Vec<String> = (0..4096).map(|i| format!("c{i}")).collect();
    let row = vec!["v"; 4096].join(",");
    let items = decode(CSV, &format!("{}\n{row}\n", header.join(",")));
    assert_eq!(fields(&items[0])["c4095"], "v");
    header[4095] = "c7".into();
    let items = decode(CSV, &format!("{}\n{row}\n", header.join(",")));
    fatal(&items[0], "\"c7\" appears twice");
}

#[test]
fn json_top_level_array_skips_bad_elements_and_keeps_going() {
    let items = decode(
        json_at(""),
        "[\n {\"a\": 1},\n {\"a\": tru},\n 7,\n {\"a\": \"x]\\\"\"}\n]",
    );
    assert_eq!(items.len(), 4);
    assert_eq!(fields(&items[0]), json!({"a": 1}));
    let bad = items[1].as_ref().unwrap_err();
    assert!(!bad.is_fatal);
    assert_eq!((bad.location.line, bad.location.column), (Some(3), Some(2)));
    assert_eq!(bad.location.path.as_deref(), Some("$[1]"));
    assert!(
        items[2]
            .as_ref()
            .unwrap_err()
            .message
            .contains("expected an object")
    );
    assert_eq!(fields(&items[3]), json!({"a": "x]\""}));
}

#[test]
fn json_array_at_a_path_is_found_past_other_keys() {
    let doc = r#"{"meta": {"items": [1, 2]}, "page": {"items": [{"id": "a"}, {"id": "b"}]}}"#;
    let items = decode(json_at("page.items"), doc);
    assert_eq!(
        items.iter().map(fields).collect::<Vec<_>>(),
        vec![json!({"id": "a"}), json!({"id": "b"})]
    );
    let missing = decode(json_at("page.nope"), doc);
    assert!(
        missing[0]
            .as_ref()
            .unwrap_err()
            .message
            .contains("no key \"nope\"")
    );
}

#[test]
fn json_broken_structure_is_fatal() {
    for doc in [
        "[{\"a\": 1}",
        "[{\"a\": [1}]",
        "{\"a\": 1}",
        "[{\"a\": 1} {\"b\": 2}]",
        "[\"open",
    ] {
        let items = decode(json_at(""), doc);
        let last = items.last().unwrap().as_ref().unwrap_err();
        assert!(last.is_fatal, "{doc}: {last:?}");
    }
    assert!(decode(json_at(""), "[]").is_empty());
}

#[test]
fn ndjson_skips_blank_lines_and_reports_bad_ones() {
    let items = decode(
        DocumentFormat::Ndjson,
        "{\"a\":1}\n\n{oops}\n[1]\n{\"a\":2}",
    );
    assert_eq!(items.len(), 4);
    assert_eq!(items[1].as_ref().unwrap_err().location.line, Some(3));
    assert!(
        items[2]
            .as_ref()
            .unwrap_err()
            .message
            .contains("expected an object")
    );
    assert_eq!(fields(&items[3]), json!({"a": 2}));
}

#[test]
fn oversized_records_are_refused_one_by_one() {
    let codecs = Codecs::with_max_record_bytes(32);
    let big = "x".repeat(100);
    // An XML record of many small parts is refused alone; one token over the cap is
    // fatal (see below), as XML cannot skip half a token.
    let parts = "<c>xxxxxxxx</c>".repeat(10);
    let cases = [
        (
            DocumentFormat::Ndjson,
            format!("{{\"a\":\"{big}\"}}\n{{\"a\":1}}\n"),
        ),
        (json_at(""), format!("[{{\"a\":\"{big}\"}},{{\"a\":1}}]")),
        (xml("a/b"), format!("<a><b>{parts}</b><b>1</b></a>")),
    ];
    for (format, doc) in cases {
        let items: Vec<_> = codecs
            .decode_reader(&format, std::io::Cursor::new(doc))
            .collect();
        let err = items[0].as_ref().unwrap_err();
        assert!(
            !err.is_fatal && err.message.contains("larger than"),
            "{format:?}: {err:?}"
        );
        assert!(items[1].is_ok(), "{format:?}: the next record follows");
    }
}

#[test]
fn an_unclosed_csv_quote_is_reported_where_it_opened() {
    // In the last column: the row has the right number of fields.
    let items = decode(CSV, "id,name\n1,ok\n2,\"never closed\n3,x\n4,y\n");
    assert_eq!(items.len(), 2, "{items:?}");
    assert_eq!(fields(&items[0]), json!({"id": "1", "name": "ok"}));
    let err = fatal(
        &items[1],
        "a quote opened on line 3 (column \"name\") is never closed: the rest of the document, 2 more lines",
    );
    assert_eq!(err.location.line, Some(3));

    // In a middle column: the row has too few fields.
    let items = decode(CSV, "id,name,n\n1,\"oops,2\n2,x,3\n");
    assert_eq!(items.len(), 1, "{items:?}");
    let err = fatal(&items[0], "a quote opened on line 2 (column \"name\")");
    assert_eq!(err.location.line, Some(2));

    // After a closed quoted field that spans lines: counted from where it opened.
    let items = decode(CSV, "id,name,n\n1,\"a\nb\",\"c\nd,e\n");
    fatal(&items[0], "a quote opened on line 3 (column \"n\")");

    // Closed quotes spanning lines are fields, also at the very end.
    let items = decode(CSV, "id,name\n1,\"a\nb\"\n2,\"c\nd\"");
    assert_eq!(fields(&items[0]), json!({"id": "1", "name": "a\nb"}));
    assert_eq!(fields(&items[1]), json!({"id": "2", "name": "c\nd"}));
    assert_eq!(items.len(), 2);
}

#[test]
fn a_runaway_csv_quote_is_cut_off_at_the_record_cap() {
    let doc = format!("id,name\n1,ok\n2,\"never closed{}\n", "x".repeat(10_000));
    let items: Vec<_> = Codecs::with_max_record_bytes(1024)
        .decode_reader(&CSV, std::io::Cursor::new(doc))
        .collect();
    assert_eq!(fields(&items[0]), json!({"id": "1", "name": "ok"}));
    let err = fatal(
        &items[1],
        "larger than the limit of 1024 bytes in the row starting on line 3",
    );
    assert_eq!(err.location.line, Some(3));
}

#[test]
fn a_huge_xml_text_node_is_cut_off_even_outside_records() {
    // Larger than the cap plus one read-ahead buffer (64 KiB).
    let doc = format!("<a><junk>{}</junk><b>1</b></a>", "x".repeat(200_000));
    let items: Vec<_> = Codecs::with_max_record_bytes(1024)
        .decode_reader(&xml("a/b"), std::io::Cursor::new(doc))
        .collect();
    fatal(&items[0], "larger than the limit");
}

#[test]
fn xml_self_closing_records_and_attribute_entities() {
    let items = decode(
        xml("a/b"),
        "<a x=\"&bad;\">\n  <b id=\"1\"/>\n  <b id=\"&bad;\"/><b id=\"&lt;3\"/></a>",
    );
    let first = items[0].as_ref().unwrap();
    assert_eq!(
        (first.location().line, first.location().column),
        (Some(2), Some(3))
    );
    assert_eq!(fields(&items[0]), json!({"@id": "1"}));
    let spoiled = items[1].as_ref().unwrap_err();
    assert!(
        !spoiled.is_fatal,
        "an attribute problem spoils only its record"
    );
    assert_eq!(fields(&items[2]), json!({"@id": "<3"}));
}

#[test]
fn json_after_the_records_array_must_close_and_end() {
    let at_path = json_at("page.items");
    assert_eq!(
        decode(
            at_path.clone(),
            "{\"page\": {\"items\": [{\"a\": 1}], \"n\": 2}, \"x\": [1]}\n"
        )
        .len(),
        1
    );
    for doc in [
        "{\"page\": {\"items\": [{\"a\": 1}]",
        "{\"page\": {\"items\": [{\"a\": 1}]}} trailing",
    ] {
        let items = decode(at_path.clone(), doc);
        assert!(items[0].is_ok());
        assert!(items[1].as_ref().unwrap_err().is_fatal, "{doc}");
    }
    let items = decode(json_at(""), "[{\"a\": 1}] ]");
    assert!(
        items[1]
            .as_ref()
            .unwrap_err()
            .message
            .contains("after the end of the document")
    );
}

#[test]
fn json_nesting_is_capped() {
    let doc = format!("[{{\"a\": {}1{}}}]", "[".repeat(200), "]".repeat(200));
    let items = decode(json_at(""), &doc);
    assert!(
        items[0]
            .as_ref()
            .unwrap_err()
            .message
            .contains("nesting deeper than 128")
    );
}

#[test]
fn a_utf8_byte_order_mark_is_skipped_in_every_format() {
    let bom = "\u{feff}";
    assert_eq!(
        fields(&decode(json_at(""), &format!("{bom}[{{\"a\": 1}}]"))[0]),
        json!({"a": 1})
    );
    assert_eq!(
        fields(&decode(DocumentFormat::Ndjson, &format!("{bom}{{\"a\": 1}}\n"))[0]),
        json!({"a": 1})
    );
    assert_eq!(
        fields(&decode(xml("a/b"), &format!("{bom}<a><b>1</b></a>"))[0]),
        json!({"#text": "1"})
    );
}

#[test]
fn one_xml_token_over_the_cap_is_fatal_wherever_the_read_buffers_fall() {
    let doc = format!("<a><b>{}</b><b>1</b></a>", "x".repeat(100));
    let items: Vec<_> = Codecs::with_max_record_bytes(32)
        .decode_reader(&xml("a/b"), std::io::Cursor::new(doc))
        .collect();
    assert_eq!(items.len(), 1);
    let err = fatal(&items[0], "larger than the limit of 32 bytes");
    assert_eq!(
        (err.location.line, err.location.column),
        (Some(1), Some(7)),
        "at the text node"
    );
}

#[test]
fn xml_nesting_is_capped() {
    let doc = format!("<a><b>{}</b></a>", "<c>".repeat(300));
    let items = decode(xml("a/b"), &doc);
    fatal(items.last().unwrap(), "nested deeper than 256");
}

#[test]
fn positions_after_a_byte_order_mark_count_from_the_first_character() {
    let items = decode(xml("a/b"), "\u{feff}<a>\n<b>1</b></a>");
    let loc = items[0].as_ref().unwrap().location();
    assert_eq!((loc.line, loc.column), (Some(2), Some(1)));
    let csv = decode(CSV, "\u{feff}\"id\",name\n1,a\n");
    assert_eq!(
        fields(&csv[0]),
        json!({"id": "1", "name": "a"}),
        "a quoted first header after a BOM"
    );
}

#[test]
fn json_values_skipped_on_the_way_must_not_be_empty() {
    for doc in [
        "{\"x\": , \"page\": {\"items\": []}}",
        "{\"page\": {\"items\": [], \"n\": }}",
    ] {
        let items = decode(json_at("page.items"), doc);
        fatal(&items[0], "expected a value");
    }
}

#[test]
fn xml_cdata_and_character_references_are_text() {
    let items = decode(
        xml("a/b"),
        "<a><b><n><![CDATA[<K&J>]]></n><m>&#x41;&#66;&amp;</m></b></a>",
    );
    assert_eq!(fields(&items[0]), json!({"n": "<K&J>", "m": "AB&"}));
}

#[test]
fn csv_dialects_follow_the_contract() {
    let format = DocumentFormat::Csv {
        delimiter: b';',
        quote: b'\'',
    };
    let items = decode(format, "id;name\n1;'Smith; J'\n2;'O''Brien'\n");
    assert_eq!(fields(&items[0]), json!({"id": "1", "name": "Smith; J"}));
    assert_eq!(fields(&items[1]), json!({"id": "2", "name": "O'Brien"}));
}

#[test]
fn a_json_records_path_through_something_else_than_objects_is_fatal() {
    let items = decode(json_at("page.items"), r#"{"page": [{"items": []}]}"#);
    fatal(&items[0], "an object at $.page");
    let items = decode(json_at("page"), r#"{"page": {"items": []}}"#);
    assert!(
        items[0]
            .as_ref()
            .unwrap_err()
            .message
            .contains("an array at $.page")
    );
}
