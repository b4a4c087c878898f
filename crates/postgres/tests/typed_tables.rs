//! Each dataset's typed table (ADR 22, migration 0009): records stored before the
//! migration move into it with the same answers, and a contract that declares a new
//! dimension or measure gives the table a column and an index.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[path = "support/schema.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use intake_domain::ports::{Analytics, AnalyticsQuery, ContractStore, RecordQuery, RecordStore};
use intake_domain::{Contract, RecordKey};
use intake_postgres::PgStore;
use support::{CONTRACT, TempSchema, dataset, guarded, receive_all, service, settings, url};

async fn connect(schema: &str) -> sqlx::PgConnection {
    let options: sqlx::postgres::PgConnectOptions = url().parse().unwrap();
    let options = options.options([("search_path", schema)]);
    sqlx::ConnectOptions::connect(&options).await.unwrap()
}

/// The schema as migrations 0001-0008 left it: the migrator of a directory holding
/// only those files (same checksums, so the store's migrator then applies the rest).
async fn schema_before_typed_tables(schema: &str) -> sqlx::PgConnection {
    let dir = std::env::temp_dir().join(format!("{schema}_migrations"));
    std::fs::create_dir_all(&dir).unwrap();
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations/postgres");
    for entry in std::fs::read_dir(source).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.as_str() < "0009" {
            std::fs::copy(&path, dir.join(name)).unwrap();
        }
    }
    let mut conn = connect(schema).await;
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let old = sqlx::migrate::Migrator::new(dir.as_path()).await.unwrap();
    old.run(&mut conn).await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    conn
}

fn record(key: &str, dimensions: &str, measures: &str) -> (String, String, String) {
    let record = format!(
        r#"{{"key": ["{key}"], "version": null, "dimensions": {dimensions}, "measures": {measures}, "attributes": {{}}}}"#
    );
    (key.to_owned(), record, dimensions.to_owned())
}

fn query(group_by: Option<&str>, filters: &[(&str, &str)]) -> AnalyticsQuery {
    AnalyticsQuery {
        dataset: dataset(),
        measure: "value".into(),
        group_by: group_by.map(str::to_owned),
        filters: filters
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        percentiles: vec![0.5],
    }
}

fn page(filters: &[(&str, &str)]) -> RecordQuery {
    RecordQuery {
        filters: intake_domain::ports::RecordFilter::equal_to(
            &filters
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        ),
        limit: 100,
        ..RecordQuery::default()
    }
}

/// `(group, count, mean, excluded)` per group.
async fn summary(
    store: &PgStore,
    q: &AnalyticsQuery,
) -> Vec<(Option<String>, u64, Option<f64>, u64)> {
    let groups = store.aggregate(q).await.unwrap();
    groups
        .into_iter()
        .map(|g| {
            let count = g.aggregate.as_ref().map_or(0, |a| a.count);
            (g.group, count, g.aggregate.map(|a| a.mean), g.excluded)
        })
        .collect()
}

#[tokio::test]
async fn records_stored_before_the_migration_keep_their_answers() {
    let schema = support::unique_schema();
    let store = PgStore::connect(&settings(&schema)).unwrap();
    let t = TempSchema {
        store: store.clone(),
        schema: schema.clone(),
    };
    // Outside the guarded task: the migrator's future is not `Send` for every lifetime.
    let mut conn = schema_before_typed_tables(&schema).await;
    guarded(vec![t], async move {
        let contract: serde_json::Value = serde_json::from_str(CONTRACT).unwrap();
        sqlx::query("INSERT INTO datasets (name, current_contract) VALUES ('items', 1)")
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query("INSERT INTO contracts (dataset, version, body) VALUES ('items', 1, $1)")
            .bind(Contract::parse(&contract.to_string()).unwrap().to_json())
            .execute(&mut conn)
            .await
            .unwrap();
        // `legacy` is in no contract: a record of a version since replaced.
        let rows = [
            record("a1", r#"{"group": "g1"}"#, r#"{"value": 1.0}"#),
            record("a2", r#"{"group": "g1"}"#, r#"{"value": 3.0}"#),
            record("a3", r#"{"group": "g2"}"#, "{}"),
            record(
                "a4",
                r#"{"group": "g2", "legacy": "x"}"#,
                r#"{"value": 10.0}"#,
            ),
        ];
        for (key, record, dimensions) in &rows {
            sqlx::query(
                "INSERT INTO records (dataset, key, record, dimensions, import_id) \
                 VALUES ('items', $1, $2::json, $3::jsonb, '0191d9c7a1b27c0e9a3f5d2b8c4e6f10')",
            )
            .bind(key)
            .bind(record)
            .bind(dimensions)
            .execute(&mut conn)
            .await
            .unwrap();
        }

        store.migrate().await.unwrap();

        let gone: Option<String> = sqlx::query_scalar("SELECT to_regclass('records')::text")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(gone, None, "the shared records table is dropped");
        let key = RecordKey::try_new(vec!["a4".into()]).unwrap();
        let a4 = RecordStore::get(&store, &dataset(), &key).await.unwrap();
        assert_eq!(a4.record.dimensions.get("legacy"), Some("x"));
        assert_eq!(a4.record.measures.get("value"), Some(10.0));
        let g1 = RecordStore::list(&store, &dataset(), &page(&[("group", "g1")]))
            .await
            .unwrap();
        let keys: Vec<String> = g1
            .records
            .iter()
            .map(|r| r.record.key.canonical())
            .collect();
        assert_eq!((keys, g1.total), (vec!["a1".into(), "a2".into()], 2));
        let all = RecordStore::list(&store, &dataset(), &page(&[]))
            .await
            .unwrap();
        assert_eq!(all.total, 4, "the migration counts the records it moved");
        let legacy = RecordStore::list(&store, &dataset(), &page(&[("legacy", "x")]))
            .await
            .unwrap();
        assert_eq!(legacy.total, 1);
        assert_eq!(
            summary(&store, &query(Some("group"), &[])).await[0],
            (Some("g1".into()), 2, Some(2.0), 0)
        );
        let g2 = summary(&store, &query(Some("group"), &[])).await.remove(1);
        assert_eq!(
            (g2.0, g2.1, g2.3),
            (Some("g2".into()), 1, 1),
            "a3 has no value"
        );
        assert_eq!(
            summary(&store, &query(Some("legacy"), &[("group", "g2")])).await,
            vec![(Some("x".into()), 1, Some(10.0), 0)]
        );
        assert_eq!(
            summary(&store, &query(None, &[])).await,
            vec![(None, 3, Some(14.0 / 3.0), 1)]
        );
    })
    .await;
}

/// The contract's second version, with a `region` dimension and a `score` measure.
const WITH_REGION: &str = r#"{"format": "csv",
  "fields": {"id": {"type": "string", "required": true},
             "group": {"type": "string", "required": true},
             "value": {"type": "number", "required": true},
             "region": {"type": "string"},
             "score": {"type": "number"}},
  "key": ["id"], "dimensions": ["group", "region"],
  "measures": {"value": "value", "score": "score"},
  "merge": "last_wins", "on_invalid": "skip_record"}"#;

#[tokio::test]
async fn a_new_version_adds_columns_indexed_with_every_measure() {
    let t = support::fresh().await;
    let store = t.store.clone();
    let schema = t.schema.clone();
    guarded(vec![t], async move {
        let service = service(&store, Duration::from_secs(30));
        receive_all(&store, &service, vec![support::csv("a", 10)]).await;
        while let Some(lease) = service.claim("w").await.unwrap() {
            service.process(&lease).await.unwrap();
        }
        store
            .publish(&dataset(), &Contract::parse(WITH_REGION).unwrap())
            .await
            .unwrap();
        receive_and_process(
            &service,
            "id,group,value,region,score\nb1,g1,5,north,0.5\nb2,g1,7,south,\n",
        )
        .await;

        let mut by_region = query(Some("region"), &[]);
        by_region.measure = "score".into();
        assert_eq!(
            summary(&store, &by_region).await,
            vec![
                (Some("north".into()), 1, Some(0.5), 0),
                (Some("south".into()), 0, None, 1)
            ],
            "records of the first version have no region; b2 has no score"
        );
        let mut conn = connect(&schema).await;
        let indexes: BTreeMap<String, String> = sqlx::query_as(
            "SELECT indexname::text, indexdef FROM pg_indexes \
             WHERE schemaname = $1 AND indexname NOT LIKE '%pkey'",
        )
        .bind(&schema)
        .fetch_all(&mut conn)
        .await
        .unwrap()
        .into_iter()
        .filter(|(name, _): &(String, String)| name.starts_with("records_"))
        .collect();
        let defs: Vec<&str> = indexes.values().map(String::as_str).collect();
        assert_eq!(defs.len(), 2, "one index per dimension: {defs:?}");
        assert!(
            defs.iter().all(|d| d.ends_with("INCLUDE (m1, m2)")),
            "each includes both measures: {defs:?}"
        );
    })
    .await;
}

/// A record of the first contract with one more dimension no version declares.
fn undeclared(id: &str, dimension: &str) -> intake_domain::merge::Change {
    use intake_domain::{Dimensions, Measures, Record};
    let mut dimensions = Dimensions::default();
    dimensions.insert("group", "g1".into()).unwrap();
    dimensions.insert(dimension, "z".into()).unwrap();
    let mut measures = Measures::default();
    measures.insert("value", 1.0).unwrap();
    intake_domain::merge::Change {
        kind: intake_domain::merge::ChangeKind::Created,
        record: Record {
            key: RecordKey::try_new(vec![id.into()]).unwrap(),
            version: None,
            dimensions,
            measures,
            attributes: intake_domain::Attributes::default(),
        },
        location: intake_domain::Location::default(),
        callback_after: None,
    }
}

fn batch(change: intake_domain::merge::Change) -> intake_domain::merge::Batch {
    intake_domain::merge::Batch {
        changes: vec![change],
        conflicts: Vec::new(),
        identities: std::collections::HashMap::new(),
    }
}

#[tokio::test]
async fn a_field_no_version_declares_gets_a_column_only_if_its_import_commits() {
    use intake_domain::ImportReport;
    use intake_domain::merge::Verdict;
    let t = support::fresh().await;
    let store = t.store.clone();
    guarded(vec![t], async move {
        let service = service(&store, Duration::from_secs(30));
        let docs = vec![
            support::csv("a", 3),
            support::csv("b", 3),
            support::csv("c", 3),
        ];
        receive_all(&store, &service, docs).await;

        // Rolled back after two batches that each added a column: the columns go with
        // it, and the next import writes as if they never were.
        let lease = service.claim("w").await.unwrap().unwrap();
        let mut writer = store.begin_apply(&lease).await.unwrap();
        writer
            .apply(&batch(undeclared("x1", "zone")))
            .await
            .unwrap();
        writer
            .apply(&batch(undeclared("x2", "area")))
            .await
            .unwrap();
        drop(writer);
        service.release(&lease).await.unwrap();
        let lease = service.claim("w").await.unwrap().unwrap();
        service.process(&lease).await.unwrap();

        let lease = service.claim("w").await.unwrap().unwrap();
        let mut writer = store.begin_apply(&lease).await.unwrap();
        writer
            .apply(&batch(undeclared("y1", "zone")))
            .await
            .unwrap();
        writer
            .finish(Verdict::Commit, &ImportReport::default())
            .await
            .unwrap();
        assert_eq!(
            summary(&store, &query(Some("zone"), &[])).await,
            vec![(Some("z".into()), 1, Some(1.0), 0)]
        );
        let lease = service.claim("w").await.unwrap().unwrap();
        service.process(&lease).await.unwrap();
        let all = RecordStore::list(&store, &dataset(), &page(&[]))
            .await
            .unwrap();
        assert_eq!(all.total, 3 + 1 + 3, "a, then y1 alone, then c");
    })
    .await;
}

#[tokio::test]
async fn a_key_created_meanwhile_by_another_import_is_overwritten() {
    use intake_domain::ImportReport;
    use intake_domain::merge::Verdict;
    let t = support::fresh().await;
    let store = t.store.clone();
    guarded(vec![t], async move {
        let service = service(&store, Duration::from_secs(30));
        let docs = vec![support::csv("a", 1), support::csv("b", 1)];
        receive_all(&store, &service, docs).await;
        let first = service.claim("w1").await.unwrap().unwrap();
        let second = service.claim("w2").await.unwrap().unwrap();
        // Both imports looked before either wrote: each believes `k` new.
        let mut one = store.begin_apply(&first).await.unwrap();
        let mut two = store.begin_apply(&second).await.unwrap();
        // Declared fields only: a new column would wait for the other import's lock.
        one.apply(&batch(undeclared("k", "group"))).await.unwrap();
        one.finish(Verdict::Commit, &ImportReport::default())
            .await
            .unwrap();
        let mut later = undeclared("k", "group");
        later.record.measures.insert("value", 2.0).unwrap();
        two.apply(&batch(later)).await.unwrap();
        two.finish(Verdict::Commit, &ImportReport::default())
            .await
            .unwrap();
        let key = RecordKey::try_new(vec!["k".into()]).unwrap();
        let k = RecordStore::get(&store, &dataset(), &key).await.unwrap();
        assert_eq!(
            k.record.measures.get("value"),
            Some(2.0),
            "the later write wins"
        );
        let all = &intake_domain::ports::HistoryPage::ALL;
        let history = RecordStore::history(&store, &dataset(), &key, all)
            .await
            .unwrap();
        assert_eq!(history.entries.len(), 2);
    })
    .await;
}

async fn receive_and_process(service: &intake_domain::ingest::ImportService, doc: &str) {
    let chunks = futures_lite::stream::iter([Ok::<_, std::io::Error>(doc.as_bytes().to_vec())]);
    service
        .receive(&dataset(), "text/csv", "test", None, chunks)
        .await
        .unwrap();
    while let Some(lease) = service.claim("w").await.unwrap() {
        service.process(&lease).await.unwrap();
    }
}

#[tokio::test]
async fn an_instance_that_never_saw_a_new_column_still_clears_it_on_update() {
    let t = support::fresh().await;
    let (one, schema) = (t.store.clone(), t.schema.clone());
    guarded(vec![t], async move {
        // Two instances on one database; `one` has read the layout before `two`
        // published the region.
        let two = PgStore::connect(&settings(&schema)).unwrap();
        let (service_one, service_two) = (
            service(&one, Duration::from_secs(30)),
            service(&two, Duration::from_secs(30)),
        );
        receive_all(&one, &service_one, vec![support::csv("a", 2)]).await;
        while let Some(lease) = service_one.claim("w").await.unwrap() {
            service_one.process(&lease).await.unwrap();
        }
        two.publish(&dataset(), &Contract::parse(WITH_REGION).unwrap())
            .await
            .unwrap();
        receive_and_process(&service_two, "id,group,value,region\na0,g1,5,EU\n").await;
        receive_and_process(&service_one, "id,group,value\na0,g1,7\n").await;

        let key = RecordKey::try_new(vec!["a0".into()]).unwrap();
        let a0 = RecordStore::get(&two, &dataset(), &key).await.unwrap();
        assert_eq!(a0.record.dimensions.get("region"), None);
        assert_eq!(
            summary(&two, &query(Some("region"), &[])).await,
            vec![],
            "a0 lost its region: no group keeps it"
        );
    })
    .await;
}

/// A deletion (ADR 40) writes beside an import of the same dataset: when that import
/// changes the key after the deletion loaded it, the history entry holds the state the
/// deletion removed, not the one it loaded (rollups take that state out of its group).
#[tokio::test]
async fn a_deletion_records_the_state_it_deleted_not_the_one_it_loaded() {
    use intake_domain::ImportReport;
    use intake_domain::merge::{Change, ChangeKind, Verdict};
    use intake_domain::ports::HistoryPage;
    let t = support::fresh().await;
    let store = t.store.clone();
    guarded(vec![t], async move {
        let service = service(&store, Duration::from_secs(30));
        let docs = vec![support::csv("a", 1), b"id,group,value\na0,g5,50\n".to_vec()];
        receive_all(&store, &service, docs).await;
        let first = service.claim("w").await.unwrap().unwrap();
        service.process(&first).await.unwrap();
        let key = RecordKey::parse("a0", 1).unwrap();
        let loaded = RecordStore::get(&store, &dataset(), &key).await.unwrap();
        let asked = service
            .delete_record(&dataset(), &loaded, "test", None)
            .await
            .unwrap();
        let update = service.claim("w1").await.unwrap().unwrap();
        let deletion = service.claim("w2").await.unwrap().unwrap();
        assert_eq!(deletion.import, asked.import.id);

        let mut deleting = store.begin_apply(&deletion).await.unwrap();
        let (states, _) = deleting
            .load(std::slice::from_ref(&key), &[])
            .await
            .unwrap();
        assert_eq!(states[&key].measures.get("value"), Some(0.0));
        // The update commits between the deletion's load and its write.
        service.process(&update).await.unwrap();
        let change = Change {
            kind: ChangeKind::Deleted,
            record: states[&key].clone(),
            location: intake_domain::Location::default(),
            callback_after: None,
        };
        deleting.apply(&batch(change)).await.unwrap();
        deleting
            .finish(Verdict::Commit, &ImportReport::default())
            .await
            .unwrap();

        let history = RecordStore::history(&store, &dataset(), &key, &HistoryPage::ALL)
            .await
            .unwrap();
        let seen: Vec<(Option<f64>, bool)> = history
            .entries
            .iter()
            .map(|e| (e.record.measures.get("value"), e.deleted))
            .collect();
        assert_eq!(
            seen,
            [(Some(0.0), false), (Some(50.0), false), (Some(50.0), true)],
            "the deletion took out the update's state"
        );
        assert!(RecordStore::get(&store, &dataset(), &key).await.is_err());
    })
    .await;
}
