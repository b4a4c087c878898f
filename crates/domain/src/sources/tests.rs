use super::*;
use crate::model::{ImportId, ImportReport, ImportStatus, Location, RecordError};

#[test]
fn the_higher_value_is_numeric_for_numbers_and_textual_otherwise() {
    let s = |v: &str| Some(v.to_owned());
    assert_eq!(higher(s("9"), s("10")), s("10"), "numbers, not text");
    assert_eq!(
        higher(s("2026-12-01T00:00:00Z"), s("2026-11-30T23:59:59Z")),
        s("2026-12-01T00:00:00Z")
    );
    assert_eq!(higher(None, s("a")), s("a"));
    assert_eq!(higher(s("a"), None), s("a"));
}

fn faulty(id: &str, invalid: u64, fields: &[&str]) -> ImportSummary {
    let mut report = ImportReport {
        invalid,
        ..ImportReport::default()
    };
    for f in fields {
        report.push_error(RecordError {
            location: Location::default(),
            field: Some((*f).to_owned()),
            message: "required field is missing".into(),
        });
    }
    ImportSummary {
        id: ImportId::parse(id).unwrap(),
        import: NewImport {
            dataset: DatasetName::parse("d").unwrap(),
            contract: crate::ContractVersion::FIRST,
            content_type: "application/json".into(),
            source: "source:v".into(),
            idempotency_key: None,
        },
        size: 1,
        sha256: String::new(),
        received_at: chrono::Utc::now(),
        status: ImportStatus::Completed,
        report: Some(report),
    }
}

#[test]
fn contract_faults_name_the_fields_the_records_and_the_first_page() {
    assert_eq!(contract_faults(&[]), None);
    let reason = contract_faults(&[
        faulty("a1", 3, &["email", "email"]),
        faulty("a2", 2, &["name"]),
    ])
    .unwrap();
    assert!(
        reason.starts_with("5 records in 2 pages failed the contract on fields email, name"),
        "{reason}"
    );
    assert!(reason.contains("import a1"), "{reason}");
}
