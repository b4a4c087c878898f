//! Contract parsing and validation: the reference contracts compile, and every kind of
//! mistake is refused with the field at fault named.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly on the first surprise"
)]

use intake_domain::contract::{CallbackRule, DocumentFormat, InvalidPolicy, MergePolicy};
use intake_domain::{Contract, ContractError};
use serde_json::{Value, json};

const EXAM: &str = include_str!("../../../examples/contracts/exam-results.json");
const ACCOUNTS: &str = include_str!("../../../examples/contracts/accounts.json");
const CUSTOMERS: &str = include_str!("../../../examples/contracts/customers.json");

fn exam() -> Value {
    serde_json::from_str(EXAM).unwrap()
}

/// The (field, message) pairs of an invalid contract.
fn issues(contract: Value) -> Vec<(String, String)> {
    match Contract::parse(&contract.to_string()) {
        Err(ContractError::Invalid(issues)) => {
            issues.into_iter().map(|i| (i.field, i.message)).collect()
        }
        other => panic!("expected an invalid contract, got {other:?}"),
    }
}

fn fields_at_fault(contract: Value) -> Vec<String> {
    issues(contract).into_iter().map(|(f, _)| f).collect()
}

/// Sets the value at `pointer`, creating the last key if needed.
fn with(mut contract: Value, pointer: &str, value: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let parent = if parent.is_empty() {
        &mut contract
    } else {
        contract.pointer_mut(parent).unwrap()
    };
    let object = parent
        .as_object_mut()
        .unwrap_or_else(|| panic!("{pointer} has an object parent"));
    object.insert(key.to_owned(), value);
    contract
}

fn without(mut contract: Value, parent: &str, key: &str) -> Value {
    contract
        .pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .unwrap()
        .remove(key);
    contract
}

#[test]
fn the_reference_contracts_compile() {
    let exam = Contract::parse(EXAM).unwrap();
    assert_eq!(
        exam.format(),
        &DocumentFormat::Xml {
            records: vec!["mcq-test-results".into(), "mcq-test-result".into()],
            // What the fields read; a result's answers are not among them.
            members: Some(
                [
                    "test-id",
                    "student-number",
                    "first-name",
                    "last-name",
                    "@scanned-on",
                    "summary-marks",
                ]
                .into_iter()
                .map(str::to_owned)
                .collect()
            )
        }
    );
    assert_eq!(exam.merge_policy(), MergePolicy::MaxMeasures);
    assert_eq!(exam.on_invalid(), InvalidPolicy::RejectDocument);
    assert_eq!(
        exam.measure_names().collect::<Vec<_>>(),
        vec!["available", "obtained", "percent"]
    );

    let accounts = Contract::parse(ACCOUNTS).unwrap();
    assert_eq!(accounts.format(), &DocumentFormat::Json { records: vec![] });
    assert_eq!(
        accounts.callback(),
        Some(&CallbackRule::Field {
            field: "callback_ms".into(),
            millis_per_unit: 1
        })
    );

    let customers = Contract::parse(CUSTOMERS).unwrap();
    assert_eq!(
        customers.format(),
        &DocumentFormat::Csv {
            delimiter: b',',
            quote: b'"'
        }
    );
}

#[test]
fn a_contract_round_trips_through_its_stored_form() {
    let exam = Contract::parse(EXAM).unwrap();
    let again = Contract::parse(&exam.to_json().to_string()).unwrap();
    assert_eq!(exam, again);
}

#[test]
fn text_that_is_not_json_gives_line_and_column() {
    match Contract::parse("{\n  \"format\": \"xml\",,\n}") {
        Err(ContractError::Syntax { line, column, .. }) => assert_eq!((line, column), (2, 19)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn shape_errors_name_the_field() {
    let cases = [
        (with(exam(), "/format", json!("yaml")), "format"),
        (with(exam(), "/merge", json!("newest")), "merge"),
        (
            with(exam(), "/fields/available/type", json!("float")),
            "fields.available.type",
        ),
        (with(exam(), "/key", json!("test_id")), "key"),
        (without(exam(), "", "on_invalid"), "on_invalid"),
        (
            without(exam(), "/fields/available", "type"),
            "fields.available.type",
        ),
        (
            with(exam(), "/measures/percent/scal", json!(100)),
            "measures.percent",
        ),
        (
            with(
                exam(),
                "/callback",
                json!({"after": "30s", "delay": "obtained"}),
            ),
            "callback",
        ),
    ];
    for (contract, field) in cases {
        assert_eq!(fields_at_fault(contract), vec![field.to_owned()], "{field}");
    }
    let unknown = issues(with(
        exam(),
        "/fields/available",
        json!({"path": "x", "type": "number", "requird": true}),
    ));
    assert_eq!(unknown[0].0, "fields.available.requird");
    assert!(
        unknown[0].1.contains("unknown field `requird`"),
        "{}",
        unknown[0].1
    );
}

#[test]
fn every_shape_error_is_listed_at_once() {
    let contract = with(
        with(
            with(exam(), "/format", json!("yaml")),
            "/merge",
            json!("newest"),
        ),
        "/fields/available/type",
        json!("float"),
    );
    let contract = without(contract, "", "on_invalid");
    assert_eq!(
        fields_at_fault(contract),
        vec!["on_invalid", "fields.available.type", "format", "merge"],
        "the missing key first, then every other in order"
    );
}

#[test]
fn key_fields_must_exist_and_be_required() {
    let contract = with(
        exam(),
        "/key",
        json!(["test_id", "first_name", "nope", "test_id"]),
    );
    let found = issues(contract);
    let fields: Vec<&str> = found.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(fields, vec!["key", "key[1]", "key[2]"]);
    assert!(found[0].1.contains("listed twice"));
    assert!(found[1].1.contains("must be required"));
    assert!(found[2].1.contains("not a field"));
    assert_eq!(
        fields_at_fault(with(exam(), "/key", json!([]))),
        vec!["key"]
    );
}

#[test]
fn paths_must_compile_for_their_format() {
    assert_eq!(
        fields_at_fault(with(
            exam(),
            "/fields/available/path",
            json!("summary-marks//@available")
        )),
        vec!["fields.available.path"]
    );
    assert_eq!(
        fields_at_fault(with(
            exam(),
            "/fields/available/path",
            json!("@summary/available")
        )),
        vec!["fields.available.path"]
    );
    assert_eq!(
        fields_at_fault(with(exam(), "/records", json!("a/@b"))),
        vec!["records"]
    );
    assert_eq!(
        fields_at_fault(without(exam(), "", "records")),
        vec!["records"]
    );
    let csv_with_records = with(
        serde_json::from_str(CUSTOMERS).unwrap(),
        "/csv/delimiter",
        json!(";;"),
    );
    assert_eq!(fields_at_fault(csv_with_records), vec!["csv.delimiter"]);
}

#[test]
fn measures_and_ratios_must_name_numeric_fields() {
    let contract = with(
        exam(),
        "/measures",
        json!({
            "name": "first_name",
            "percent": {"ratio": ["obtained", "missing"], "scale": 0},
            "obtained": "obtained"
        }),
    );
    let fields = fields_at_fault(contract);
    assert_eq!(
        fields,
        vec![
            "measures.name",
            "measures.percent.ratio[1]",
            "measures.percent.scale"
        ]
    );
}

#[test]
fn highest_version_needs_a_required_integer_or_timestamp_version() {
    let accounts: Value = serde_json::from_str(ACCOUNTS).unwrap();
    assert_eq!(
        fields_at_fault(without(accounts.clone(), "", "version")),
        vec!["version"]
    );
    let optional = with(accounts.clone(), "/fields/version/required", json!(false));
    assert_eq!(fields_at_fault(optional), vec!["version"]);
    let text = with(accounts, "/fields/version/type", json!("string"));
    assert_eq!(fields_at_fault(text), vec!["version"]);
}

#[test]
fn identity_dimensions_and_callbacks_are_checked() {
    let contract = with(
        exam(),
        "/identity",
        json!({"key": ["nope"], "fields": ["ghost"]}),
    );
    assert_eq!(
        fields_at_fault(contract),
        vec!["identity.key[0]", "identity.fields[0]"]
    );
    let text_dimensions = with(exam(), "/dimensions", json!(["scanned_on", "first_name"]));
    assert!(Contract::parse(&text_dimensions.to_string()).is_ok());
    assert_eq!(
        fields_at_fault(with(exam(), "/dimensions", json!(["available"]))),
        vec!["dimensions[0]", "dimensions[0]"],
        "a number is no dimension, and under max_measures a measure is none either"
    );
    let accounts: Value = serde_json::from_str(ACCOUNTS).unwrap();
    assert_eq!(
        fields_at_fault(with(
            accounts.clone(),
            "/callback",
            json!({"delay": "program", "unit": "ms"})
        )),
        vec!["callback.delay"]
    );
    assert_eq!(
        fields_at_fault(with(
            accounts.clone(),
            "/callback",
            json!({"after": "soon"})
        )),
        vec!["callback.after"]
    );
    let fixed =
        Contract::parse(&with(accounts, "/callback", json!({"after": "30s"})).to_string()).unwrap();
    assert_eq!(
        fixed.callback(),
        Some(&CallbackRule::After(std::time::Duration::from_secs(30)))
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let contract = with(
        with(exam(), "/key", json!(["nope"])),
        "/dimensions",
        json!(["ghost"]),
    );
    assert_eq!(fields_at_fault(contract), vec!["key[0]", "dimensions[0]"]);
}

#[test]
fn max_measures_refuses_a_field_that_is_both_dimension_and_measure() {
    let contract = with(exam(), "/dimensions", json!(["test_id", "obtained"]));
    let found = issues(contract);
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(found[1].0, "dimensions[1]");
    assert!(
        found[1]
            .1
            .contains("cannot be both a dimension and a measure")
    );
}

#[test]
fn text_with_a_nul_character_is_refused_where_it_is() {
    let described = with(exam(), "/description", json!("scanner\u{0}notes"));
    assert_eq!(fields_at_fault(described), ["description"]);
    let pathed = with(exam(), "/fields/first_name/path", json!("first\u{0}name"));
    assert!(fields_at_fault(pathed).contains(&"fields.first_name.path".to_owned()));
}
