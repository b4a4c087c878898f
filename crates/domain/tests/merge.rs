//! Mapping and merging through a contract: each policy's outcomes, the identity check,
//! the document-level rule, and order-insensitivity where a policy promises it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly on the first surprise"
)]

use std::collections::BTreeMap;

use intake_domain::merge::{MergeOutcome, MergeSession, Verdict};
use intake_domain::{ConflictKind, Contract, DecodeError, Location, RawRecord, Record};
use proptest::prelude::*;
use serde_json::{Value, json};

fn contract(merge: &str, on_invalid: &str) -> Contract {
    let spec = json!({
        "format": "json",
        "fields": {
            "id": {"type": "string", "required": true},
            "group": {"type": "string"},
            "name": {"type": "string"},
            "v": {"type": "integer", "required": merge == "highest_version"},
            "a": {"type": "number"},
            "b": {"type": "number"}
        },
        "key": ["id"],
        "version": if merge == "highest_version" { json!("v") } else { Value::Null },
        "dimensions": ["group"],
        "measures": {"a": "a", "b": "b", "ratio": {"ratio": ["a", "b"], "scale": 100}},
        "merge": merge,
        "on_invalid": on_invalid,
        "identity": {"key": ["group"], "fields": ["name"]}
    });
    let mut spec = spec;
    if spec["version"].is_null() {
        spec.as_object_mut().unwrap().remove("version");
    }
    Contract::parse(&spec.to_string()).unwrap()
}

fn raw(n: u64, value: Value) -> RawRecord {
    let Value::Object(map) = value else {
        panic!("object")
    };
    RawRecord::new(
        map,
        Location {
            record: Some(n),
            ..Location::default()
        },
    )
}

fn merge_one(c: &Contract, current: Option<&Record>, incoming: Value) -> MergeOutcome {
    c.merge(current, &c.map(&raw(1, incoming)).unwrap())
}

fn state(c: &Contract, value: Value) -> Record {
    c.map(&raw(1, value)).unwrap().record
}

#[test]
fn highest_version_keeps_the_newest_and_flags_a_changed_equal_version() {
    let c = contract("highest_version", "skip_record");
    let current = state(&c, json!({"id": "x", "v": 5, "a": 1}));
    assert!(matches!(
        merge_one(&c, None, json!({"id": "x", "v": 5, "a": 1})),
        MergeOutcome::Inserted(_)
    ));
    assert!(
        matches!(merge_one(&c, Some(&current), json!({"id": "x", "v": 6, "a": 0})), MergeOutcome::Updated(r) if r.measures.get("a") == Some(0.0))
    );
    assert_eq!(
        merge_one(&c, Some(&current), json!({"id": "x", "v": 4, "a": 9})),
        MergeOutcome::Superseded
    );
    assert_eq!(
        merge_one(&c, Some(&current), json!({"id": "x", "v": 5, "a": 1})),
        MergeOutcome::Unchanged
    );
    let MergeOutcome::Conflict(conflict) =
        merge_one(&c, Some(&current), json!({"id": "x", "v": 5, "a": 2}))
    else {
        panic!("an equal version with other contents is a conflict")
    };
    assert_eq!(conflict.kind, ConflictKind::SameVersion);
    assert_eq!(
        conflict
            .differences
            .iter()
            .map(|d| d.field.as_str())
            .collect::<Vec<_>>(),
        vec!["a"]
    );
}

#[test]
fn first_wins_and_last_wins_follow_arrival_order() {
    let first = contract("first_wins", "skip_record");
    let current = state(&first, json!({"id": "x", "a": 1}));
    assert!(
        matches!(merge_one(&first, Some(&current), json!({"id": "x", "a": 2})), MergeOutcome::Conflict(c) if c.kind == ConflictKind::DuplicateKey)
    );
    assert_eq!(
        merge_one(&first, Some(&current), json!({"id": "x", "a": 1})),
        MergeOutcome::Unchanged
    );
    let last = contract("last_wins", "skip_record");
    let current = state(&last, json!({"id": "x", "a": 1}));
    assert!(
        matches!(merge_one(&last, Some(&current), json!({"id": "x", "a": 0})), MergeOutcome::Updated(r) if r.measures.get("a") == Some(0.0))
    );
}

#[test]
fn max_measures_keeps_each_maximum_and_derives_ratios_after_the_merge() {
    let c = contract("max_measures", "skip_record");
    let current = state(&c, json!({"id": "x", "a": 13, "b": 20}));
    let MergeOutcome::Updated(merged) =
        merge_one(&c, Some(&current), json!({"id": "x", "a": 15, "b": 18}))
    else {
        panic!()
    };
    assert_eq!(
        (merged.measures.get("a"), merged.measures.get("b")),
        (Some(15.0), Some(20.0))
    );
    assert_eq!(merged.measures.get("ratio"), Some(75.0), "15/20, not 15/18");
    assert_eq!(
        merge_one(&c, Some(&merged), json!({"id": "x", "a": 1, "b": 2})),
        MergeOutcome::Unchanged
    );
}

#[test]
fn a_zero_denominator_leaves_the_ratio_out_and_counts_it() {
    let c = contract("max_measures", "skip_record");
    let mapped = c.map(&raw(1, json!({"id": "x", "a": 0, "b": 0}))).unwrap();
    assert_eq!(mapped.record.measures.get("ratio"), None);
    assert_eq!(mapped.undefined_ratios, vec!["ratio".to_owned()]);
}

#[test]
fn mapping_reports_every_bad_field_with_the_record_location() {
    let c = contract("highest_version", "skip_record");
    let errors = c
        .map(&raw(7, json!({"v": "five", "a": "lots", "b": 1})))
        .unwrap_err();
    let found: Vec<_> = errors
        .iter()
        .map(|e| (e.field.as_deref(), e.location.record))
        .collect();
    assert_eq!(
        found,
        vec![
            (Some("a"), Some(7)),
            (Some("id"), Some(7)),
            (Some("v"), Some(7))
        ]
    );
    assert!(errors[0].message.contains("\"lots\" is not a number"));
}

fn doc(c: &Contract, records: &[Value]) -> intake_domain::merge::SessionResult {
    let mut session = MergeSession::new(c);
    for (i, r) in records.iter().enumerate() {
        session.push(Ok(raw(i as u64 + 1, r.clone())));
    }
    session.finish()
}

#[test]
fn reject_document_applies_nothing_when_one_record_is_invalid() {
    let records = [
        json!({"id": "a", "a": 1}),
        json!({"a": 2}),
        json!({"id": "c", "a": 3}),
    ];
    let rejected = doc(&contract("last_wins", "reject_document"), &records);
    assert_eq!(rejected.verdict, Verdict::Reject);
    assert_eq!(
        (
            rejected.report.seen,
            rejected.report.invalid,
            rejected.report.inserted
        ),
        (3, 1, 0)
    );
    assert!(rejected.changes.is_empty() && rejected.records.is_empty());
    let skipped = doc(&contract("last_wins", "skip_record"), &records);
    assert_eq!(skipped.verdict, Verdict::Commit);
    assert_eq!((skipped.report.inserted, skipped.report.invalid), (2, 1));
    assert_eq!(skipped.report.errors[0].location.record, Some(2));
}

#[test]
fn a_document_that_breaks_off_is_rejected_under_reject_document_only() {
    let fatal = DecodeError {
        location: Location::default(),
        message: "broken".into(),
        is_fatal: true,
    };
    for (policy, verdict, inserted) in [
        ("reject_document", Verdict::Reject, 0),
        ("skip_record", Verdict::Commit, 1),
    ] {
        let c = contract("last_wins", policy);
        let mut session = MergeSession::new(&c);
        session.push(Ok(raw(1, json!({"id": "a"}))));
        session.push(Err(fatal.clone()));
        let result = session.finish();
        assert_eq!(
            (result.verdict, result.report.inserted, result.report.seen),
            (verdict, inserted, 1),
            "{policy}"
        );
        assert_eq!(result.report.errors[0].message, "broken");
    }
}

#[test]
fn identity_conflicts_are_reported_and_the_record_still_merges() {
    let c = contract("last_wins", "skip_record");
    let result = doc(
        &c,
        &[
            json!({"id": "1", "group": "g", "name": "Ann"}),
            json!({"id": "2", "group": "g", "name": "Bob"}),
        ],
    );
    assert_eq!(result.report.inserted, 2);
    assert_eq!(result.conflicts.len(), 1);
    assert_eq!(result.conflicts[0].kind, ConflictKind::Identity);
    assert_eq!(result.conflicts[0].identity.as_deref(), Some("g"));
}

fn final_state(c: &Contract, records: &[Value]) -> BTreeMap<String, Record> {
    doc(c, records)
        .records
        .into_iter()
        .map(|(k, r)| (k.canonical(), r))
        .collect()
}

fn arrivals(versioned: bool) -> impl Strategy<Value = Vec<Value>> {
    // Up to 4 keys, each with distinct versions: no two arrivals of one key share one.
    proptest::collection::vec((0u8..4, 0u32..1000, 0u32..50, 1u32..50, "[a-c]{1,3}"), 1..30).prop_map(move |items| {
        let mut seen = std::collections::HashSet::new();
        items
            .into_iter()
            .filter(|(k, v, ..)| !versioned || seen.insert((*k, *v)))
            .map(|(k, v, a, b, name)| json!({"id": format!("k{k}"), "v": v, "a": a, "b": b, "name": name}))
            .collect()
    })
}

proptest! {
    #[test]
    fn highest_version_ends_in_the_same_state_for_any_arrival_order(
        (records, shuffled) in arrivals(true).prop_flat_map(|r| (Just(r.clone()), Just(r).prop_shuffle()))
    ) {
        let c = contract("highest_version", "skip_record");
        prop_assert_eq!(final_state(&c, &records), final_state(&c, &shuffled));
    }

    #[test]
    fn max_measures_ends_in_the_same_state_for_any_arrival_order(
        (records, shuffled) in arrivals(false).prop_flat_map(|r| (Just(r.clone()), Just(r).prop_shuffle()))
    ) {
        let c = contract("max_measures", "skip_record");
        prop_assert_eq!(final_state(&c, &records), final_state(&c, &shuffled));
    }
}

#[test]
fn one_field_can_be_a_dimension_and_a_measure_and_contents_keep_declared_types() {
    let spec = json!({
        "format": "json",
        "fields": {
            "id": {"type": "string", "required": true},
            "year": {"type": "integer"},
            "tokens": {"type": "integer"},
            "paid": {"type": "number"},
            "active": {"type": "boolean"}
        },
        "key": ["id"],
        "dimensions": ["year", "active"],
        "measures": {"year": "year", "tokens": "tokens", "paid": "paid", "per_token": {"ratio": ["paid", "tokens"]}},
        "merge": "last_wins",
        "on_invalid": "skip_record"
    });
    let c = Contract::parse(&spec.to_string()).unwrap();
    let record = c
        .map(&raw(
            1,
            json!({"id": "a", "year": 2024, "tokens": "517", "paid": 258.5, "active": "yes"}),
        ))
        .unwrap()
        .record;
    assert_eq!(record.dimensions.get("year"), Some("2024"));
    assert_eq!(record.measures.get("year"), Some(2024.0));
    assert_eq!(
        c.contents(&record),
        json!({"id": "a", "year": 2024, "tokens": 517, "paid": 258.5, "active": true, "per_token": 0.5})
    );
}

#[test]
fn a_session_in_batches_keeps_one_report_and_verdict_for_the_document() {
    let c = contract("last_wins", "reject_document");
    let mut session = MergeSession::new(&c);
    session.push(Ok(raw(1, json!({"id": "a", "a": 1}))));
    session.push(Ok(raw(2, json!({"a": 2}))));
    let first = session.take_batch();
    assert_eq!(
        first.changes.len(),
        1,
        "merged before the invalid record was seen"
    );
    assert!(session.is_rejected());
    session.push(Ok(raw(3, json!({"id": "c", "a": 3}))));
    assert!(
        session.take_batch().changes.is_empty(),
        "nothing merges once the document is rejected"
    );
    let result = session.finish();
    assert_eq!(result.verdict, Verdict::Reject);
    assert_eq!((result.report.seen, result.report.invalid), (3, 1));
}

#[test]
fn a_batch_merges_against_the_state_added_from_the_store() {
    let c = contract("highest_version", "skip_record");
    let mut session = MergeSession::new(&c);
    session.push(Ok(raw(
        1,
        json!({"id": "a", "v": 2, "a": 1, "group": "g", "name": "Ann"}),
    )));
    let first = session.take_batch();
    let stored: std::collections::HashMap<_, _> = first
        .changes
        .iter()
        .map(|ch| (ch.record.key.clone(), ch.record.clone()))
        .collect();

    // The worker's flow: accept the batch, load what its keys need, merge, take.
    let batch = [
        json!({"id": "a", "v": 1, "a": 9, "group": "g", "name": "Ann"}),
        json!({"id": "b", "v": 1, "a": 9, "group": "g", "name": "Bob"}),
        json!({"v": 1}),
    ];
    let mapped: Vec<_> = batch
        .iter()
        .enumerate()
        .filter_map(|(i, r)| session.accept(Ok(raw(i as u64 + 2, r.clone()))))
        .collect();
    assert_eq!(
        mapped.len(),
        2,
        "the record without an id is reported, not mapped"
    );
    let keys: Vec<_> = mapped.iter().map(|m| m.record.key.clone()).collect();
    let needed = stored
        .into_iter()
        .filter(|(k, _)| keys.contains(k))
        .collect();
    assert_eq!(
        first.identities.keys().collect::<Vec<_>>(),
        ["g"],
        "the identity first seen is written"
    );
    session.add_state(needed, first.identities);
    mapped.into_iter().for_each(|m| session.merge(m));
    let second = session.take_batch();
    assert!(
        second.identities.is_empty(),
        "the stored identity of g is not written again"
    );
    assert_eq!(
        second.changes.len(),
        1,
        "the older version of a is superseded"
    );
    assert_eq!(
        second.conflicts.len(),
        1,
        "Bob disagrees with the stored identity of g"
    );
    let report = session.finish().report;
    assert_eq!(
        (
            report.seen,
            report.inserted,
            report.superseded,
            report.conflicts,
            report.invalid
        ),
        (4, 2, 1, 1, 1)
    );
}

#[test]
fn callback_delays_come_from_the_record_and_bad_ones_make_it_invalid() {
    let accounts = include_str!("../../../examples/contracts/accounts.json");
    let c = Contract::parse(accounts).unwrap();
    let account = |delay: Value| json!({"id": "a", "parentProgram": "p", "parentProgramSubType": "mint", "tokens": 1, "version": 1, "callbackTimeMs": delay});
    let mapped = c.map(&raw(1, account(json!(1500)))).unwrap();
    assert_eq!(
        mapped.callback_after,
        Some(std::time::Duration::from_millis(1500))
    );
    assert_eq!(
        c.map(&raw(1, account(Value::Null))).unwrap().callback_after,
        None,
        "no delay, no callback"
    );
    let errors = c.map(&raw(1, account(json!(-5)))).unwrap_err();
    assert_eq!(errors[0].field.as_deref(), Some("callback_ms"));
    assert!(errors[0].message.contains("negative"));
}
