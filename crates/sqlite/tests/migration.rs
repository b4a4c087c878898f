//! Migration 0006 (ADR 23): records and history written by migrations 0001-0005's
//! shape (two rows a record, each with its document, a text import id and a text time)
//! read back the same afterwards, from one document per version, and imports go on
//! from there.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use intake_domain::ports::{
    Analytics, AnalyticsQuery, HistoryPage, RecordQuery, RecordScan, RecordStore, StoredRecord,
};
use intake_domain::{DatasetName, RecordKey};
#[path = "support/store.rs"]
mod support;
use sqlx::Connection as _;
use support::{CONTRACT, open};

const FIRST: &str = "0190a5b2c3d47e8f9a0b1c2d3e4f5a61";
const SECOND: &str = "0190a5b2c3d47e8f9a0b1c2d3e4f5a62";
const T1: &str = "2026-12-01T10:00:00.123456Z";
const T2: &str = "2026-12-02T11:30:15.000001Z";

/// Applies migrations 0001-0005 (a migrator over a directory holding only those files,
/// so the checksums match and the store's migrator applies the rest).
async fn file_before_0006(dir: &std::path::Path) -> (String, sqlx::SqliteConnection) {
    let old = dir.join("migrations");
    std::fs::create_dir_all(&old).unwrap();
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations/sqlite");
    for entry in std::fs::read_dir(source).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.as_str() < "0006" {
            std::fs::copy(&path, old.join(name)).unwrap();
        }
    }
    let path = dir.join("intake.db").to_string_lossy().into_owned();
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{path}?mode=rwc"))
        .await
        .unwrap();
    let migrator = sqlx::migrate::Migrator::new(old.as_path()).await.unwrap();
    migrator.run(&mut conn).await.unwrap();
    (path, conn)
}

async fn exec(conn: &mut sqlx::SqliteConnection, sql: &str, binds: &[&str]) {
    let mut query = sqlx::query(sql);
    for b in binds {
        query = query.bind(*b);
    }
    query.execute(&mut *conn).await.unwrap();
}

/// The serde form stored before ADR 22's compact form.
fn serde_form(key: &str, group: &str, value: f64) -> String {
    format!(
        r#"{{"key": ["{key}"], "version": null, "dimensions": {{"group": "{group}"}}, "measures": {{"value": {value:?}}}, "attributes": {{}}}}"#
    )
}

fn compact(key: &str, group: &str, value: f64) -> String {
    format!(r#"{{"k": ["{key}"], "d": {{"group": "{group}"}}, "m": {{"value": {value:?}}}}}"#)
}

/// Two imports: the first created `a` (serde form) and `b` (compact), the second
/// updated `a`; `c`'s latest state has no history row (which no version ever wrote,
/// but the migration must not lose it).
async fn old_rows(conn: &mut sqlx::SqliteConnection) {
    exec(
        conn,
        "INSERT INTO datasets VALUES ('items', 1, 2, ?)",
        &[T1],
    )
    .await;
    exec(
        conn,
        "INSERT INTO contracts VALUES ('items', 1, ?, ?)",
        &[CONTRACT, T1],
    )
    .await;
    for (id, at) in [(FIRST, T1), (SECOND, T2)] {
        exec(
            conn,
            "INSERT INTO imports (id, dataset, contract, content_type, source, size, sha256, \
               received_at, status) VALUES (?, 'items', 1, 'text/csv', 'test', 1, ?, ?, 'completed')",
            &[id, id, at],
        )
        .await;
    }
    let history = [
        ("a", "created", serde_form("a", "g1", 1.0), FIRST, T1),
        ("b", "created", compact("b", "g1", 2.5), FIRST, T1),
        ("a", "updated", serde_form("a", "g2", 3.0), SECOND, T2),
    ];
    for (key, kind, record, import, at) in &history {
        exec(
            conn,
            "INSERT INTO record_history (dataset, key, kind, record, import_id, created_at) \
             VALUES ('items', ?, ?, ?, ?, ?)",
            &[key, kind, record, import, at],
        )
        .await;
    }
    let latest = [
        (
            "a",
            serde_form("a", "g2", 3.0),
            r#"{"group": "g2"}"#,
            SECOND,
            T2,
        ),
        (
            "b",
            compact("b", "g1", 2.5),
            r#"{"group": "g1"}"#,
            FIRST,
            T1,
        ),
        (
            "c",
            compact("c", "g1", 4.0),
            r#"{"group": "g1"}"#,
            SECOND,
            T2,
        ),
    ];
    for (key, record, dimensions, import, at) in &latest {
        exec(
            conn,
            "INSERT INTO records (dataset, key, record, dimensions, import_id, updated_at) \
             VALUES ('items', ?, ?, ?, ?, ?)",
            &[key, record, dimensions, import, at],
        )
        .await;
    }
}

fn ds() -> DatasetName {
    DatasetName::parse("items").unwrap()
}

fn key(k: &str) -> RecordKey {
    RecordKey::parse(k, 1).unwrap()
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

/// `(key, group, value, import, time)` of a stored record.
fn seen(stored: &StoredRecord) -> (String, String, f64, String, DateTime<Utc>) {
    (
        stored.record.key.canonical(),
        stored.record.dimensions.get("group").unwrap().to_owned(),
        stored.record.measures.get("value").unwrap(),
        stored.import.as_str().to_owned(),
        stored.updated_at,
    )
}

fn page(filters: &[(&str, &str)]) -> RecordQuery {
    RecordQuery {
        filters: intake_domain::ports::RecordFilter::equal_to(
            &filters
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
        ),
        limit: 100,
        ..RecordQuery::default()
    }
}

#[tokio::test]
async fn records_and_history_read_the_same_after_the_migration() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut conn) = file_before_0006(dir.path()).await;
    old_rows(&mut conn).await;
    conn.close().await.unwrap();

    let store = open(&path).await;

    let a = store.get(&ds(), &key("a")).await.unwrap();
    assert_eq!(
        seen(&a),
        ("a".into(), "g2".into(), 3.0, SECOND.into(), at(T2))
    );
    let history = store
        .history(&ds(), &key("a"), &HistoryPage::ALL)
        .await
        .unwrap()
        .entries;
    let history: Vec<_> = history.iter().map(seen).collect();
    assert_eq!(
        history,
        [
            ("a".into(), "g1".into(), 1.0, FIRST.into(), at(T1)),
            ("a".into(), "g2".into(), 3.0, SECOND.into(), at(T2)),
        ]
    );
    // The latest state no history row held is kept, and now has one.
    let c = store.get(&ds(), &key("c")).await.unwrap();
    assert_eq!(
        seen(&c),
        ("c".into(), "g1".into(), 4.0, SECOND.into(), at(T2))
    );
    let history = store
        .history(&ds(), &key("c"), &HistoryPage::ALL)
        .await
        .unwrap();
    assert_eq!(history.entries.len(), 1);

    // Filters read the dimension from either form of the document.
    let all = store.list(&ds(), &page(&[])).await.unwrap();
    assert_eq!(all.total, 3);
    let g1 = store.list(&ds(), &page(&[("group", "g1")])).await.unwrap();
    let keys: Vec<_> = g1
        .records
        .iter()
        .map(|r| r.record.key.canonical())
        .collect();
    assert_eq!((keys, g1.total), (vec!["b".to_owned(), "c".to_owned()], 2));
    let g2 = store.list(&ds(), &page(&[("group", "g2")])).await.unwrap();
    assert_eq!(g2.records.iter().map(seen).collect::<Vec<_>>(), [seen(&a)]);
    let scan = RecordScan {
        filters: intake_domain::ports::RecordFilter::equal_to(
            &[("group".to_owned(), "g1".to_owned())].into(),
        ),
        limit: 10,
        after: Some("b".into()),
    };
    let scanned = store.scan(&ds(), &scan).await.unwrap();
    assert_eq!(scanned.len(), 1);
    assert_eq!(scanned[0].key.canonical(), "c");

    // Aggregates read the group and the measure from either form too.
    let question = AnalyticsQuery {
        dataset: ds(),
        measure: "value".into(),
        group_by: Some("group".into()),
        filters: BTreeMap::new(),
        percentiles: vec![0.5],
    };
    let groups = Analytics::aggregate(&store, &question).await.unwrap();
    let seen: Vec<(Option<String>, u64, f64)> = groups
        .iter()
        .map(|g| {
            let a = g.aggregate.as_ref().unwrap();
            (g.group.clone(), a.count, a.sum)
        })
        .collect();
    assert_eq!(
        seen,
        [(Some("g1".into()), 2, 6.5), (Some("g2".into()), 1, 3.0)]
    );
}
