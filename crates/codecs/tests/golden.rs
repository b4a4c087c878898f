//! Golden tests: the reference workloads of `examples/` decoded through their contracts
//! and merged, asserting the exact records, outcomes, errors and conflicts.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly on the first surprise"
)]

use std::fs::File;

use intake_codecs::Codecs;
use intake_domain::analytics::{Aggregate, top_k_per_group};
use intake_domain::merge::{ChangeKind, MergeSession, SessionResult, Verdict};
use intake_domain::{Conflict, ConflictKind, Contract, FieldValue, ImportReport, RecordKey};

fn example(path: &str) -> String {
    format!("{}/../../examples/{path}", env!("CARGO_MANIFEST_DIR"))
}

fn contract(name: &str) -> Contract {
    let text =
        std::fs::read_to_string(example(&format!("contracts/{name}.json"))).expect("contract file");
    Contract::parse(&text).expect("reference contracts compile")
}

fn run(contract: &Contract, data: &str) -> SessionResult {
    let file = File::open(example(&format!("data/{data}"))).expect("sample file");
    let mut session = MergeSession::new(contract);
    for item in Codecs::default().decode_reader(contract.format(), file) {
        session.push(item);
    }
    session.finish()
}

fn key(parts: &[&str]) -> RecordKey {
    RecordKey::try_new(parts.iter().map(|p| (*p).to_owned()).collect()).expect("valid key")
}

fn text(v: &str) -> Option<FieldValue> {
    Some(FieldValue::Text(v.to_owned()))
}

/// (field, record, line) of each reported error.
fn error_places(result: &SessionResult) -> Vec<(Option<&str>, Option<u64>, Option<u64>)> {
    let errors = result.report.errors.iter();
    errors
        .map(|e| (e.field.as_deref(), e.location.record, e.location.line))
        .collect()
}

fn percents(result: &SessionResult, test_id: &str) -> Vec<f64> {
    result
        .records
        .values()
        .filter(|r| r.dimensions.get("test_id") == Some(test_id))
        .filter_map(|r| r.measures.get("percent"))
        .collect()
}

#[test]
fn exam_results_merge_rescans_by_max_and_report_name_conflicts() {
    let contract = contract("exam-results");
    let result = run(&contract, "exam-results.xml");
    assert_eq!(result.verdict, Verdict::Commit);
    let expected = ImportReport {
        seen: 6,
        inserted: 4,
        updated: 2,
        conflicts: 1,
        undefined_ratios: 1,
        ..ImportReport::default()
    };
    assert_eq!(result.report, expected);

    // Highest obtained (15 of the rescan) and highest available (20 of the first scan).
    let jane = &result.records[&key(&["1234", "002299"])];
    assert_eq!(jane.measures.get("obtained"), Some(15.0));
    assert_eq!(jane.measures.get("available"), Some(20.0));
    assert_eq!(jane.measures.get("percent"), Some(75.0));
    assert_eq!(
        jane.attributes.get("student_number"),
        text("002299").as_ref()
    );
    // Leading zeros make a different student.
    let emily = &result.records[&key(&["1234", "2299"])];
    assert_eq!(emily.measures.get("percent"), Some(85.0));
    // Zero available marks: the ratio is undefined and left out, never NaN.
    let zero = &result.records[&key(&["5678", "002299"])];
    assert_eq!(zero.measures.get("percent"), None);
    assert_eq!(percents(&result, "5678"), Vec::<f64>::new());

    let [conflict] = result.conflicts.as_slice() else {
        panic!("one conflict: {:?}", result.conflicts)
    };
    assert_eq!(conflict.kind, ConflictKind::Identity);
    assert_eq!(conflict.identity.as_deref(), Some("3000"));
    assert_eq!(conflict.key, key(&["1234", "3000"]));
    let fields: Vec<_> = conflict
        .differences
        .iter()
        .map(|d| (d.field.as_str(), d.existing.clone(), d.incoming.clone()))
        .collect();
    assert_eq!(
        fields,
        vec![
            ("first_name", text("George"), text("Mary")),
            ("last_name", text("Eliot"), text("Shelley"))
        ]
    );
    assert_eq!(conflict.location.record, Some(5));

    let kinds: Vec<_> = result
        .changes
        .iter()
        .map(|c| (c.kind, c.record.key.canonical()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (ChangeKind::Created, "1234/002299".to_owned()),
            (ChangeKind::Created, "1234/2299".to_owned()),
            (ChangeKind::Created, "1234/3000".to_owned()),
            (ChangeKind::Updated, "1234/002299".to_owned()),
            (ChangeKind::Updated, "1234/3000".to_owned()),
            (ChangeKind::Created, "5678/002299".to_owned()),
        ]
    );
}

#[test]
fn an_exam_document_with_an_invalid_record_is_rejected_whole() {
    let contract = contract("exam-results");
    let result = run(&contract, "exam-results-invalid.xml");
    assert_eq!(result.verdict, Verdict::Reject);
    assert!(result.changes.is_empty() && result.records.is_empty() && result.conflicts.is_empty());
    assert_eq!(
        (
            result.report.seen,
            result.report.invalid,
            result.report.inserted
        ),
        (2, 1, 0)
    );
    let errors = error_places(&result);
    assert_eq!(
        errors,
        vec![
            (Some("obtained"), Some(2), Some(10)),
            (Some("student_number"), Some(2), Some(10))
        ]
    );
    assert_eq!(
        result.report.errors[0].location.path.as_deref(),
        Some("mcq-test-results/mcq-test-result[2]")
    );
    assert!(
        result.report.errors[0]
            .message
            .contains("\"eleven\" is not a number")
    );
}

#[test]
fn the_markr_brief_sample_gives_its_published_aggregate() {
    let contract = contract("exam-results");
    let result = run(&contract, "markr-sample-results.xml");
    assert_eq!(result.verdict, Verdict::Commit);
    assert_eq!((result.report.seen, result.records.len()), (100, 81));
    assert_eq!(result.report.conflicts, 19);
    assert!(
        result
            .conflicts
            .iter()
            .all(|c: &Conflict| c.kind == ConflictKind::Identity)
    );

    let agg = Aggregate::compute(percents(&result, "9863"), &Aggregate::QUARTILES)
        .unwrap()
        .unwrap();
    let round = |v: f64| (v * 100.0).round() / 100.0;
    assert_eq!(agg.count, 81);
    assert_eq!(round(agg.mean), 50.8);
    assert_eq!(round(agg.stddev), 9.92);
    assert_eq!((agg.min, agg.max), (30.0, 75.0));
    for (fraction, want) in [(0.25, 45.0), (0.5, 50.0), (0.75, 55.0)] {
        let got = agg.percentile(fraction).unwrap();
        assert!((got - want).abs() < 1e-9, "p{fraction}: {got} != {want}");
    }
}

#[test]
fn account_updates_keep_the_highest_version_and_report_missing_versions() {
    let contract = contract("accounts");
    let result = run(&contract, "account-updates.json");
    assert_eq!(result.verdict, Verdict::Commit);
    let expected = ImportReport {
        seen: 124,
        inserted: 12,
        updated: 84,
        superseded: 23,
        invalid: 5,
        errors: result.report.errors.clone(),
        ..ImportReport::default()
    };
    assert_eq!(result.report, expected);
    let errors = error_places(&result);
    assert_eq!(
        errors,
        vec![
            (Some("version"), Some(98), Some(1045)),
            (Some("version"), Some(99), Some(1055)),
            (Some("version"), Some(101), Some(1076)),
            (Some("version"), Some(102), Some(1087)),
            (Some("version"), Some(104), Some(1107)),
        ]
    );

    // The known answer of fixtures/README.md: the highest-token account per subtype.
    let items = result.records.values().map(|r| {
        let subtype = r.dimensions.get("subtype").unwrap_or_default().to_owned();
        (
            subtype,
            r.measures.get("tokens").unwrap_or_default(),
            r.key.canonical(),
            r.clone(),
        )
    });
    let top: Vec<_> = top_k_per_group(items, 1)
        .into_iter()
        .map(|(subtype, best)| {
            let (tokens, record) = &best[0];
            (
                subtype,
                record.key.canonical()[..8].to_owned(),
                *tokens,
                record.version.map(|v| v.get()),
            )
        })
        .collect();
    let expected = [
        ("account", "gkDF8QaR", 517.0, 39),
        ("auction", "kbtvQBEr", 271.0, 11),
        ("auctionData", "cYcekbx6", 960.0, 11),
        ("escrow", "A72KnHfa", 880.0, 12),
        ("masterEdition", "U5kG5d2y", 772.0, 12),
        ("metadata", "ZBTDeX9W", 696.0, 12),
        ("mint", "6BhkGCMV", 330.0, 39),
    ];
    let expected: Vec<_> = expected
        .iter()
        .map(|(s, id, t, v)| ((*s).to_owned(), (*id).to_owned(), *t, Some(*v)))
        .collect();
    assert_eq!(top, expected);

    // Every accepted version schedules its callback after its own callbackTimeMs.
    assert_eq!(result.changes.len(), 96);
    for change in &result.changes {
        let delay = match change.record.attributes.get("callback_ms") {
            Some(FieldValue::Integer(ms)) => std::time::Duration::from_millis(*ms as u64),
            other => panic!("callback_ms is {other:?}"),
        };
        assert_eq!(change.callback_after, Some(delay), "{}", change.record.key);
    }
    let first = &result.changes[0];
    assert_eq!(
        first.callback_after,
        Some(std::time::Duration::from_millis(500))
    );
    // `data` is kept as JSON.
    assert!(matches!(
        first.record.attributes.get("data"),
        Some(FieldValue::Json(_))
    ));
}

#[test]
fn customers_skip_malformed_rows_and_ignore_a_repeated_id() {
    let contract = contract("customers");
    let result = run(&contract, "customers.csv");
    assert_eq!(result.verdict, Verdict::Commit);
    let expected = ImportReport {
        seen: 9,
        inserted: 4,
        unchanged: 1,
        invalid: 3,
        conflicts: 1,
        errors: result.report.errors.clone(),
        ..ImportReport::default()
    };
    assert_eq!(result.report, expected);
    let errors: Vec<_> = result
        .report
        .errors
        .iter()
        .map(|e| (e.location.row, e.field.as_deref()))
        .collect();
    assert_eq!(
        errors,
        vec![(Some(5), None), (Some(6), None), (Some(7), Some("id"))]
    );
    assert!(
        result.report.errors[0]
            .message
            .contains("6 fields, the header has 5")
    );

    let ids: Vec<_> = result.records.keys().map(RecordKey::canonical).collect();
    assert_eq!(ids, vec!["c-001", "c-002", "c-003", "c-006"]);
    // First wins: the repeated c-002 is reported, not applied.
    let charles = &result.records[&key(&["c-002"])];
    assert_eq!(
        charles.attributes.get("email"),
        text("charles@example.com").as_ref()
    );
    assert_eq!(charles.attributes.get("phone"), None);
    let [conflict] = result.conflicts.as_slice() else {
        panic!("one conflict")
    };
    assert_eq!(conflict.kind, ConflictKind::DuplicateKey);
    let fields: Vec<_> = conflict
        .differences
        .iter()
        .map(|d| d.field.as_str())
        .collect();
    assert_eq!(fields, vec!["email", "phone"]);
    let grace = &result.records[&key(&["c-003"])];
    assert_eq!(
        grace.attributes.get("first_name"),
        text("Grace \"Amazing\"").as_ref()
    );
}
