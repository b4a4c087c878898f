//! The ingestion suite: the import service and workers over an adapter's stores,
//! checked against a dry run (one in-memory merge session over the whole document).

use std::collections::BTreeMap;

use super::Stores;
use super::storage::{futures_join_all, sleep};
use super::support::{SIMPLE, contract, dataset, drain, receive, service};
use super::workloads::{EXAM_RESULTS, WORKLOADS};
use crate::ingest::{ImportWorker, ReprocessError, shutdown_channel};
use crate::merge::{MergeSession, SessionResult, Verdict};
use crate::model::{ImportStatus, Record, RecordKey};
use crate::ports::{RecordFilter, RecordQuery, StoreError};
use std::sync::Arc;
use std::time::Duration;

/// Every reference document, processed in batches of 16 through the store, leaves the
/// records, report, history and conflicts that one in-memory session produces.
pub async fn workloads_give_the_same_result_as_a_dry_run(s: Stores) {
    let service = service(&s, 16);
    for (w, workload) in WORKLOADS.iter().enumerate() {
        for (d, (file, _, body)) in workload.documents.iter().enumerate() {
            let ds = dataset(&s, &format!("w{w}-d{d}"), workload.contract).await;
            let expected = dry_run(&s, workload.contract, body);
            let import = receive(&service, &ds, body, None).await;
            let processed = drain(&service).await;
            assert_eq!(processed.len(), 1, "{file}");
            assert_eq!(processed[0].verdict, expected.verdict, "{file}");
            assert_eq!(processed[0].report, expected.report, "{file}");
            let stored = s.vault.get(&import.id).await.expect("get");
            assert_eq!(stored.report.as_ref(), Some(&expected.report), "{file}");
            assert_eq!(all_records(&s, &ds).await, expected.records, "{file}");
            let first = RecordQuery {
                limit: 1,
                ..RecordQuery::default()
            };
            let total = s.records.list(&ds, &first).await.expect("list").total;
            assert_eq!(total, expected.records.len() as u64, "{file}: total");
            let mut history = 0;
            for key in expected.records.keys() {
                let entries = s
                    .records
                    .history(&ds, key, &crate::ports::HistoryPage::ALL)
                    .await;
                history += entries.expect("history").entries.len() as u64;
            }
            let changes = expected.report.inserted + expected.report.updated;
            assert_eq!(history, changes, "{file}: one history entry per change");
            let conflicts = s.records.conflicts(&ds, 1000, 0).await.expect("conflicts");
            assert_eq!(conflicts.len() as u64, expected.report.conflicts, "{file}");
            assert!(conflicts.iter().all(|(id, _)| *id == import.id));
        }
    }
}

/// Reprocessing a document that is already applied inserts and updates nothing, and
/// adds no history.
pub async fn reprocessing_applies_nothing_twice(s: Stores) {
    let service = service(&s, 16);
    for (w, workload) in WORKLOADS.iter().enumerate() {
        let (_, _, body) = workload.documents[0];
        let ds = dataset(&s, &format!("again{w}"), workload.contract).await;
        let import = receive(&service, &ds, body, None).await;
        drain(&service).await;
        let before = all_history(&s, &ds).await;
        service.reprocess(&import.id, None).await.expect("requeued");
        let again = drain(&service).await;
        assert_eq!(again.len(), 1);
        let report = &again[0].report;
        assert_eq!(
            (report.inserted, report.updated),
            (0, 0),
            "{}",
            workload.dataset
        );
        assert_eq!(all_history(&s, &ds).await, before, "{}", workload.dataset);
    }
}

/// The same body twice, or one idempotency key with two bodies, is one import, and
/// its records are applied once.
pub async fn a_repeated_body_or_idempotency_key_is_one_import(s: Stores) {
    let service = service(&s, 16);
    let ds = dataset(&s, "once", SIMPLE).await;
    let body = b"id,group,value\n1,a,1\n2,a,2\n";
    let first = receive(&service, &ds, body, Some("key")).await;
    let same_body = receive(&service, &ds, body, None).await;
    let same_key = receive(&service, &ds, b"id,group,value\n3,b,3\n", Some("key")).await;
    assert_eq!((&same_body.id, &same_key.id), (&first.id, &first.id));
    assert_eq!(drain(&service).await.len(), 1);
    assert_eq!(all_history(&s, &ds).await, 2);
}

/// A `reject_document` workload document with a bad record stores no record and is
/// `failed` with the errors located.
pub async fn an_invalid_document_is_rejected_whole(s: Stores) {
    let service = service(&s, 2);
    let ds = dataset(&s, "exams", EXAM_RESULTS.contract).await;
    let (_, _, invalid) = EXAM_RESULTS.documents[1];
    let import = receive(&service, &ds, invalid, None).await;
    let processed = drain(&service).await;
    assert_eq!(processed[0].verdict, Verdict::Reject);
    assert!(all_records(&s, &ds).await.is_empty());
    let stored = s.vault.get(&import.id).await.expect("get");
    assert_eq!(stored.status, ImportStatus::Failed);
    let report = stored.report.expect("report");
    assert!(
        report.invalid > 0 && !report.errors.is_empty(),
        "{report:?}"
    );
    assert_eq!(s.datasets.get(&ds).await.expect("get").revision.get(), 0);
}

/// A CSV document whose header lacks required columns fails at once with one error
/// naming them, the columns found and, when the header looks split by another
/// character, that delimiter; nothing is applied and the rows are not reported one by
/// one.
pub async fn a_csv_header_without_required_columns_fails_with_one_error(s: Stores) {
    let semicolons = b"id;group;value\na1;a;1\na2;a;2\n";
    let processed = apply_document(&s, "semicolons", SIMPLE, semicolons).await;
    assert_eq!(processed.verdict, Verdict::Reject);
    assert_eq!(processed.report.errors.len(), 1, "{:?}", processed.report);
    let error = &processed.report.errors[0];
    assert_eq!(error.location.line, Some(1));
    assert_eq!(
        error.message,
        "the header lacks the required columns \"group\", \"id\", \"value\"; it has 1 \
         column: \"id;group;value\". The delimiter looks like ';' where the contract reads \
         ',': set \"csv\": {\"delimiter\": \";\"} in the contract, or send the file with ','"
    );
    assert_eq!(processed.report.inserted, 0);

    let renamed = b"ident,grp,value\na1,a,1\n";
    let processed = apply_document(&s, "renamed", SIMPLE, renamed).await;
    assert_eq!(processed.verdict, Verdict::Reject);
    assert_eq!(
        processed.report.errors[0].message,
        "the header lacks the required columns \"group\", \"id\"; it has 3 columns: \
         \"grp\", \"ident\", \"value\""
    );
    let ds = crate::DatasetName::parse("renamed").expect("name");
    assert!(all_records(&s, &ds).await.is_empty());

    // A header with the required columns (and others) is read as before.
    let extra = b"value,id,group,extra\n1,a1,a,x\n";
    let processed = apply_document(&s, "extra", SIMPLE, extra).await;
    assert_eq!(processed.verdict, Verdict::Commit, "{:?}", processed.report);
    assert_eq!(processed.report.inserted, 1);
}

/// Records list by canonical key, filtered by dimensions, page by page, with totals.
pub async fn records_are_listed_by_dimension_and_page(s: Stores) {
    let service = service(&s, 1000);
    let ds = dataset(&s, "pages", SIMPLE).await;
    let rows: String = (0..25)
        .map(|i| format!("k{i:02},{},{i}\n", ["a", "b"][i % 2]))
        .collect();
    import_simple(&service, &ds, &rows).await;
    let query = |group: Option<&str>, limit, offset| RecordQuery {
        filters: RecordFilter::equal_to(
            &group
                .map(|g| ("group".to_owned(), g.to_owned()))
                .into_iter()
                .collect(),
        ),
        order: crate::ports::RecordOrder::Key,
        limit,
        offset,
        after: None,
    };
    let page = s
        .records
        .list(&ds, &query(Some("a"), 5, 5))
        .await
        .expect("list");
    let keys: Vec<_> = page
        .records
        .iter()
        .map(|r| r.record.key.canonical())
        .collect();
    assert_eq!(keys, ["k10", "k12", "k14", "k16", "k18"]);
    assert_eq!(page.total, 13);
    let everything = s
        .records
        .list(&ds, &query(None, 100, 0))
        .await
        .expect("list");
    assert_eq!((everything.records.len(), everything.total), (25, 25));
    // A keyset cursor: after a key (bytewise), with the filters, the total unchanged.
    let after = RecordQuery {
        after: Some("k13".into()),
        ..query(Some("a"), 3, 0)
    };
    let page = s.records.list(&ds, &after).await.expect("list");
    let keys: Vec<_> = page
        .records
        .iter()
        .map(|r| r.record.key.canonical())
        .collect();
    assert_eq!(keys, ["k14", "k16", "k18"]);
    assert_eq!(page.total, 13);
    // Offsets without filters skip keys in order, after a cursor too, and past the
    // end give an empty page with the total.
    let keys_of = |page: crate::ports::RecordPage| -> Vec<String> {
        page.records
            .iter()
            .map(|r| r.record.key.canonical())
            .collect()
    };
    let page = s
        .records
        .list(&ds, &query(None, 3, 20))
        .await
        .expect("list");
    assert_eq!(page.total, 25);
    assert_eq!(keys_of(page), ["k20", "k21", "k22"]);
    let page = s
        .records
        .list(&ds, &query(None, 10, 24))
        .await
        .expect("list");
    assert_eq!(keys_of(page), ["k24"]);
    let page = s
        .records
        .list(&ds, &query(None, 10, 25))
        .await
        .expect("list");
    assert_eq!((page.records.len(), page.total), (0, 25));
    let after_and_offset = RecordQuery {
        after: Some("k05".into()),
        ..query(None, 2, 2)
    };
    let page = s.records.list(&ds, &after_and_offset).await.expect("list");
    assert_eq!(keys_of(page), ["k08", "k09"]);
    let past_the_end = RecordQuery {
        after: Some("k9".into()),
        ..query(None, 10, 0)
    };
    let page = s.records.list(&ds, &past_the_end).await.expect("list");
    assert!(page.records.is_empty());
    let none = s
        .records
        .list(&ds, &query(Some("zzz"), 10, 0))
        .await
        .expect("list");
    assert_eq!((none.records.len(), none.total), (0, 0));
    let undeclared = RecordQuery {
        filters: RecordFilter::equal_to(&[("colour".to_owned(), "red".to_owned())].into()),
        ..query(None, 10, 0)
    };
    let none = s.records.list(&ds, &undeclared).await.expect("list");
    assert_eq!(
        (none.records.len(), none.total),
        (0, 0),
        "no dimension colour"
    );
    let missing = RecordKey::try_new(vec!["nope".into()]).expect("key");
    assert!(matches!(
        s.records.get(&ds, &missing).await,
        Err(StoreError::NotFound)
    ));

    // Several values of one dimension keep any of them; none keeps nothing.
    let filtered = |values: &[&str], since| RecordQuery {
        filters: RecordFilter {
            dimensions: [(
                "group".to_owned(),
                values.iter().map(|v| (*v).to_owned()).collect(),
            )]
            .into(),
            updated_since: since,
        },
        ..query(None, 100, 0)
    };
    let either = s
        .records
        .list(&ds, &filtered(&["a", "zzz", "b"], None))
        .await;
    assert_eq!(either.expect("list").total, 25);
    let one = s.records.list(&ds, &filtered(&["b"], None)).await;
    assert_eq!(one.expect("list").total, 12);
    let neither = s.records.list(&ds, &filtered(&[], None)).await;
    assert_eq!(neither.expect("list").total, 0);
    // Records committed since a time: those a later import wrote.
    let since = chrono::Utc::now();
    sleep(Duration::from_millis(5)).await;
    import_simple(&service, &ds, "k03,b,100\nk30,a,1\n").await;
    let recent = RecordQuery {
        filters: RecordFilter {
            updated_since: Some(since),
            ..RecordFilter::default()
        },
        ..query(None, 100, 0)
    };
    let page = s.records.list(&ds, &recent).await.expect("list");
    assert_eq!(page.total, 2);
    assert_eq!(keys_of(page), ["k03", "k30"]);
    let page = s.records.list(&ds, &filtered(&["a"], Some(since))).await;
    assert_eq!(keys_of(page.expect("list")), ["k30"]);
    let scan = crate::ports::RecordScan {
        filters: recent.filters.clone(),
        after: None,
        limit: 10,
    };
    let scanned = s.records.scan(&ds, &scan).await.expect("scan");
    assert_eq!(scanned.len(), 2);
    let marks = s
        .records
        .marks(&ds, &recent.filters, 1)
        .await
        .expect("marks");
    assert_eq!(marks, ["k03", "k30"]);

    // By a measure: highest or lowest first, ties by key, with filters and offsets.
    let by_value = |descending, group: Option<&str>, limit, offset| RecordQuery {
        order: crate::ports::RecordOrder::Measure {
            name: "value".into(),
            descending,
        },
        ..query(group, limit, offset)
    };
    let page = s.records.list(&ds, &by_value(true, None, 3, 0)).await;
    let page = page.expect("list");
    assert_eq!(page.total, 26);
    assert_eq!(keys_of(page), ["k03", "k24", "k23"]);
    let page = s.records.list(&ds, &by_value(false, None, 3, 1)).await;
    assert_eq!(keys_of(page.expect("list")), ["k01", "k30", "k02"]);
    let page = s.records.list(&ds, &by_value(true, Some("a"), 2, 1)).await;
    assert_eq!(keys_of(page.expect("list")), ["k22", "k20"]);
    let unknown = RecordQuery {
        order: crate::ports::RecordOrder::Measure {
            name: "undeclared".into(),
            descending: true,
        },
        ..query(None, 2, 0)
    };
    let page = s.records.list(&ds, &unknown).await.expect("list");
    assert_eq!(keys_of(page), ["k00", "k01"], "no record has it: key order");
}

/// A dataset's total counts each key once, however many imports wrote it, and only
/// when an import that created it committed: rejected imports and reprocessing add
/// nothing, and imports writing the same new keys side by side count them once.
pub async fn the_total_counts_each_key_once(s: Stores) {
    let service = service(&s, 4);
    let ds = dataset(&s, "counted", SIMPLE).await;
    let total = |ds| {
        let s = &s;
        async move {
            let first = RecordQuery {
                limit: 1,
                ..RecordQuery::default()
            };
            let page = s.records.list(ds, &first).await.expect("list");
            let overview = s.records.list(ds, &RecordQuery::default()).await;
            assert_eq!(overview.expect("list").total, page.total);
            page.total
        }
    };
    assert_eq!(total(&ds).await, 0);
    let first = receive(
        &service,
        &ds,
        b"id,group,value\n1,a,1\n2,a,2\n3,b,3\n",
        None,
    )
    .await;
    drain(&service).await;
    assert_eq!(total(&ds).await, 3);
    receive(
        &service,
        &ds,
        b"id,group,value\n2,a,5\n3,b,6\n4,b,7\n",
        None,
    )
    .await;
    drain(&service).await;
    assert_eq!(total(&ds).await, 4, "two keys updated, one created");
    service.reprocess(&first.id, None).await.expect("requeued");
    drain(&service).await;
    assert_eq!(total(&ds).await, 4, "reprocessing creates nothing");
    let strict = dataset(&s, "counted-strict", EXAM_RESULTS.contract).await;
    let (_, _, invalid) = EXAM_RESULTS.documents[1];
    receive(&service, &strict, invalid, None).await;
    drain(&service).await;
    assert_eq!(total(&strict).await, 0, "a rejected import adds nothing");
    // Forty imports, each with ten keys every one of them writes and one of its own.
    for doc in 0..40 {
        let shared: String = (0..10).map(|k| format!("shared{k},g,{doc}\n")).collect();
        receive(
            &service,
            &ds,
            format!("id,group,value\n{shared}own{doc},g,1\n").as_bytes(),
            None,
        )
        .await;
    }
    run_workers_until_all_finished(&s, &service, &ds, 4).await;
    assert_eq!(all_records(&s, &ds).await.len(), 54);
    assert_eq!(total(&ds).await, 54);
}

/// Marks name every n-th key in order, with filters too; a page at any offset, deep
/// or not, read through the dataset service (which starts deep pages after a mark)
/// holds the keys a plain offset gives, before and after an import adds keys in front.
pub async fn deep_offsets_give_the_keys_a_plain_offset_gives(s: Stores) {
    use crate::datasets::{DatasetPorts, DatasetService};
    let service = service(&s, 1000);
    let ds = dataset(&s, "deep", SIMPLE).await;
    let rows: String = (0..3000)
        .map(|i| format!("k{i:05},{},{i}\n", ["a", "b", "c"][i % 3]))
        .collect();
    import_simple(&service, &ds, &rows).await;
    let none = RecordFilter::default();
    let marks = s.records.marks(&ds, &none, 1000).await.expect("marks");
    assert_eq!(marks, ["k00999", "k01999", "k02999"]);
    let group_b = RecordFilter::equal_to(&[("group".to_owned(), "b".to_owned())].into());
    let marks = s.records.marks(&ds, &group_b, 400).await.expect("marks");
    // Group b holds k00001, k00004, …: its 400th key is k01198.
    assert_eq!(marks, ["k01198", "k02398"]);
    let unknown = crate::DatasetName::parse("nothing-here").expect("name");
    assert!(
        s.records
            .marks(&unknown, &none, 10)
            .await
            .expect("marks")
            .is_empty()
    );

    let datasets = DatasetService::new(DatasetPorts {
        datasets: s.datasets.clone(),
        contracts: s.contracts.clone(),
        records: s.records.clone(),
        analytics: s.analytics.clone(),
        cache: Arc::new(crate::ports::NoCache),
    });
    let check = |expected: Vec<String>| {
        let (datasets, ds, group_b) = (&datasets, &ds, &group_b);
        async move {
            for offset in [0, 1023, 1024, 1500, 2048, 2100, 2999, 3000, 4000, 10_000] {
                for filters in [RecordFilter::default(), group_b.clone()] {
                    let query = RecordQuery {
                        filters: filters.clone(),
                        order: crate::ports::RecordOrder::Key,
                        limit: 7,
                        offset,
                        after: None,
                    };
                    let page = datasets.records(ds, &query).await.expect("page");
                    let keys: Vec<String> = page
                        .records
                        .iter()
                        .map(|r| r.record.key.canonical())
                        .collect();
                    let wanted: Vec<String> = expected
                        .iter()
                        .filter(|k| filters.is_empty() || group_of(k) == "b")
                        .skip(usize::try_from(offset).expect("offset"))
                        .take(7)
                        .cloned()
                        .collect();
                    assert_eq!(keys, wanted, "offset {offset}, filters {filters:?}");
                }
            }
        }
    };
    let mut expected: Vec<String> = (0..3000).map(|i| format!("k{i:05}")).collect();
    check(expected.clone()).await;
    // Keys added in front move every position: the next pages see them.
    receive(&service, &ds, b"id,group,value\na1,b,1\na2,b,2\n", None).await;
    drain(&service).await;
    expected.splice(0..0, ["a1".to_owned(), "a2".to_owned()]);
    check(expected).await;
}

/// The group `deep_offsets_give_the_keys_a_plain_offset_gives` gave a key.
fn group_of(key: &str) -> &'static str {
    match key.strip_prefix('k').and_then(|n| n.parse::<usize>().ok()) {
        Some(n) => ["a", "b", "c"][n % 3],
        None => "b",
    }
}

/// Only finished imports are requeued, with a contract version the dataset has; the
/// next run uses that version.
pub async fn only_finished_imports_are_reprocessed(s: Stores) {
    let service = service(&s, 16);
    let ds = dataset(&s, "reproc", SIMPLE).await;
    let import = receive(&service, &ds, b"id,group,value\n1,a,1\n", None).await;
    let busy = service.reprocess(&import.id, None).await;
    assert!(matches!(busy, Err(ReprocessError::Busy)), "{busy:?}");
    drain(&service).await;
    let v9 = crate::ContractVersion::try_new(9).expect("version");
    let unknown = service.reprocess(&import.id, Some(v9)).await;
    assert!(
        matches!(unknown, Err(ReprocessError::UnknownContract)),
        "{unknown:?}"
    );
    let missing = crate::ImportId::parse("missing").expect("id");
    let missing = service.reprocess(&missing, None).await;
    assert!(
        matches!(missing, Err(ReprocessError::NotFound)),
        "{missing:?}"
    );
    let v2 = s
        .contracts
        .publish(&ds, &contract(SIMPLE))
        .await
        .expect("v2")
        .version;
    let requeued = service
        .reprocess(&import.id, Some(v2))
        .await
        .expect("requeued");
    assert_eq!(
        (requeued.status, requeued.import.contract),
        (ImportStatus::Received, v2)
    );
    assert_eq!(requeued.report, None);
    assert_eq!(drain(&service).await.len(), 1);
    assert_eq!(
        s.vault.get(&import.id).await.expect("get").status,
        ImportStatus::Completed
    );
}

/// Four workers drain 100 imports of 10 new keys each: every key has exactly one
/// history entry, every import is completed, and shutdown stops them all.
pub async fn workers_apply_every_import_exactly_once(s: Stores) {
    let service = service(&s, 4);
    let ds = dataset(&s, "busy", SIMPLE).await;
    for doc in 0..100 {
        let rows: String = (0..10)
            .map(|r| format!("d{doc}-r{r},g{},{r}\n", doc % 3))
            .collect();
        receive(
            &service,
            &ds,
            format!("id,group,value\n{rows}").as_bytes(),
            None,
        )
        .await;
    }
    run_workers_until_all_finished(&s, &service, &ds, 4).await;
    let imports = s.vault.list(&ds, 200, 0).await.expect("list");
    assert_eq!(imports.len(), 100);
    assert!(imports.iter().all(|i| i.status == ImportStatus::Completed));
    let page = s
        .records
        .list(
            &ds,
            &RecordQuery {
                limit: 2000,
                ..RecordQuery::default()
            },
        )
        .await
        .expect("list");
    assert_eq!(page.total, 1000);
    for r in &page.records {
        let history = s
            .records
            .history(&ds, &r.record.key, &crate::ports::HistoryPage::ALL)
            .await
            .expect("history");
        assert_eq!(history.entries.len(), 1, "{}", r.record.key);
    }
    assert_eq!(s.datasets.get(&ds).await.expect("get").revision.get(), 100);
}

/// Imports `rows` of the SIMPLE contract (`id,group,value` lines) into `ds` and
/// processes the import.
async fn import_simple(
    service: &Arc<crate::ingest::ImportService>,
    ds: &crate::DatasetName,
    rows: &str,
) {
    let body = format!("id,group,value\n{rows}");
    receive(service, ds, body.as_bytes(), None).await;
    drain(service).await;
}

/// Runs `n` import workers side by side until every import of `ds` is finished, then
/// shuts them down and waits for them.
async fn run_workers_until_all_finished(
    s: &Stores,
    service: &Arc<crate::ingest::ImportService>,
    ds: &crate::DatasetName,
    n: usize,
) {
    let (trigger, shutdown) = shutdown_channel();
    let clock = Arc::new(super::SystemClock);
    let workers = (0..n).map(|i| {
        let worker = ImportWorker::new(service.clone(), clock.clone());
        let shutdown = shutdown.clone();
        async move { worker.run(&format!("worker-{i}"), shutdown).await }
    });
    let watch = async {
        while s
            .vault
            .list(ds, 200, 0)
            .await
            .expect("list")
            .iter()
            .any(|i| !i.status.is_finished())
        {
            sleep(Duration::from_millis(20)).await;
        }
        trigger.trigger();
    };
    futures_lite::future::zip(futures_join_all(workers), watch).await;
}

fn dry_run(s: &Stores, json: &str, body: &'static [u8]) -> SessionResult {
    let contract = contract(json);
    let mut session = MergeSession::new(&contract);
    for item in s.decoder.decode(contract.format(), Box::new(body)) {
        session.push(item);
    }
    session.finish()
}

async fn all_records(s: &Stores, ds: &crate::DatasetName) -> BTreeMap<RecordKey, Record> {
    let query = RecordQuery {
        limit: 100_000,
        ..RecordQuery::default()
    };
    let page = s.records.list(ds, &query).await.expect("list");
    page.records
        .into_iter()
        .map(|r| (r.record.key.clone(), r.record))
        .collect()
}

async fn all_history(s: &Stores, ds: &crate::DatasetName) -> usize {
    let mut n = 0;
    for key in all_records(s, ds).await.keys() {
        n += s
            .records
            .history(ds, key, &crate::ports::HistoryPage::ALL)
            .await
            .expect("history")
            .entries
            .len();
    }
    n
}

/// A worker told to shut down in the middle of an import rolls it back and releases
/// it: the import is `received` again, nothing of it is visible, and the next worker
/// processes it whole.
pub async fn shutdown_releases_the_import_in_progress(s: Stores) {
    let service = service(&s, 50);
    let ds = dataset(&s, "stopping", SIMPLE).await;
    let rows: String = (0..20_000).map(|r| format!("k{r},g,{r}\n")).collect();
    let import = receive(
        &service,
        &ds,
        format!("id,group,value\n{rows}").as_bytes(),
        None,
    )
    .await;
    let (trigger, shutdown) = shutdown_channel();
    let worker = ImportWorker::new(service.clone(), Arc::new(super::SystemClock));
    let stop = async {
        while s.vault.get(&import.id).await.expect("get").status != ImportStatus::Processing {
            sleep(Duration::from_millis(10)).await;
        }
        sleep(Duration::from_millis(100)).await;
        trigger.trigger();
    };
    futures_lite::future::zip(worker.run("stopping", shutdown), stop).await;
    let released = s.vault.get(&import.id).await.expect("get");
    assert_eq!(
        released.status,
        ImportStatus::Received,
        "released, not finished"
    );
    assert!(all_records(&s, &ds).await.is_empty(), "rolled back");
    let done = drain(&service).await;
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].report.inserted, 20_000);
}

/// What an applied document leaves in the outbox and the timer table, computed from a
/// dry run, for adapter tests that read those tables directly (their read ports come
/// with the delivery workers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SideEffects {
    /// `record.created` events.
    pub created: u64,
    /// `record.updated` events.
    pub updated: u64,
    /// Pending callback timers: canonical key → version of the change that set it.
    pub timers: BTreeMap<String, Option<i64>>,
}

/// The side effects of applying `body` under the contract `json` to an empty dataset.
pub fn expected_side_effects(s: &Stores, json: &str, body: &'static [u8]) -> SideEffects {
    let result = dry_run(s, json, body);
    let mut timers = BTreeMap::new();
    for change in &result.changes {
        let key = change.record.key.canonical();
        match change.callback_after {
            Some(_) => timers.insert(key, change.record.version.map(|v| v.get())),
            None => timers.remove(&key),
        };
    }
    SideEffects {
        created: result.report.inserted,
        updated: result.report.updated,
        timers,
    }
}

/// Receives and processes one document into a new dataset; the service's result.
pub async fn apply_document(
    s: &Stores,
    dataset_name: &str,
    json: &str,
    body: &[u8],
) -> crate::ingest::Processed {
    apply(s, dataset_name, json, body, false).await
}

/// [`apply_document`] into a dataset with a subscription to every kind of event, so
/// that its events are written.
pub async fn apply_document_watched(
    s: &Stores,
    dataset_name: &str,
    json: &str,
    body: &[u8],
) -> crate::ingest::Processed {
    apply(s, dataset_name, json, body, true).await
}

async fn apply(
    s: &Stores,
    dataset_name: &str,
    json: &str,
    body: &[u8],
    watched: bool,
) -> crate::ingest::Processed {
    let service = service(s, 16);
    let ds = dataset(s, dataset_name, json).await;
    if watched {
        let watcher = crate::ports::NewSubscription {
            dataset: ds.clone(),
            url: "https://receiver.example/hook".into(),
            events: None,
            secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
        };
        s.subscriptions.create(&watcher).await.expect("subscribed");
    }
    receive(&service, &ds, body, None).await;
    let mut done = drain(&service).await;
    assert_eq!(done.len(), 1);
    done.remove(0)
}

/// Imports `bodies` one after another into a new dataset `dataset_name` with contract
/// `json`, each processed before the next is received.
pub async fn apply_documents(s: &Stores, dataset_name: &str, json: &str, bodies: &[&[u8]]) {
    let service = service(s, 16);
    let ds = dataset(s, dataset_name, json).await;
    for body in bodies {
        receive(&service, &ds, body, None).await;
        assert_eq!(drain(&service).await.len(), 1);
    }
}

/// A decoder with a bug: it panics on the first record.
struct PanickingDecoder;

impl crate::ports::DocumentDecoder for PanickingDecoder {
    fn decode(
        &self,
        _: &crate::contract::DocumentFormat,
        _: Box<dyn std::io::Read + Send>,
    ) -> crate::ports::RecordStream {
        Box::new(std::iter::from_fn(|| {
            panic!("a decoder bug (expected by this test)")
        }))
    }
}

/// An import whose processing keeps failing (here a decoder that panics) is retried
/// when its lease expires, and after `max_attempts` marked failed with the reason,
/// instead of occupying workers forever.
pub async fn an_import_that_keeps_failing_is_given_up(s: Stores) {
    let settings = crate::ingest::IngestSettings {
        lease: Duration::from_millis(300),
        renew_every: Duration::from_millis(100),
        idle_poll: Duration::from_millis(20),
        max_attempts: 2,
        ..crate::ingest::IngestSettings::default()
    };
    let (ds, failed) = poisoned_import(&s, "poison", settings).await;
    assert_eq!(
        failed.status,
        ImportStatus::Failed,
        "given up after 2 attempts"
    );
    let report = failed.report.expect("report");
    assert!(
        report.errors[0].message.contains("failed 2 times"),
        "{report:?}"
    );
    assert!(all_records(&s, &ds).await.is_empty());
}

/// Receives a document into dataset `name` and lets one worker whose decoder panics
/// work on it (with `settings`) until it is failed, or for 10 s at most; the import
/// as it is then.
async fn poisoned_import(
    s: &Stores,
    name: &str,
    settings: crate::ingest::IngestSettings,
) -> (crate::DatasetName, crate::ports::ImportSummary) {
    let broken = Stores {
        decoder: Arc::new(PanickingDecoder),
        ..s.clone()
    };
    let ports = broken.ingest_ports(Arc::new(super::SystemClock));
    let service = Arc::new(crate::ingest::ImportService::new(ports, settings));
    let ds = dataset(s, name, SIMPLE).await;
    let import = receive(&service, &ds, b"id,group,value\n1,a,1\n", None).await;
    let (trigger, shutdown) = shutdown_channel();
    let worker = ImportWorker::new(service.clone(), Arc::new(super::SystemClock));
    let watch = async {
        for _ in 0..500 {
            if s.vault.get(&import.id).await.expect("get").status == ImportStatus::Failed {
                break;
            }
            sleep(Duration::from_millis(20)).await;
        }
        trigger.trigger();
    };
    futures_lite::future::zip(worker.run(name, shutdown), watch).await;
    (ds, s.vault.get(&import.id).await.expect("get"))
}

/// A record store whose units of work fail on their third batch, as a store that goes
/// away in the middle of an import would.
struct FailingRecords(Arc<dyn crate::ports::RecordStore>);

struct FailingWriter {
    inner: Box<dyn crate::ports::ImportWriter>,
    batches: u32,
}

#[async_trait::async_trait]
impl crate::ports::ImportWriter for FailingWriter {
    async fn load(
        &mut self,
        keys: &[RecordKey],
        identities: &[String],
    ) -> Result<
        (
            std::collections::HashMap<RecordKey, Record>,
            crate::ports::IdentityMap,
        ),
        StoreError,
    > {
        self.inner.load(keys, identities).await
    }

    async fn apply(&mut self, batch: &crate::merge::Batch) -> Result<(), StoreError> {
        self.batches += 1;
        if self.batches == 3 {
            return Err(StoreError::Unexpected(anyhow::anyhow!(
                "the store went away"
            )));
        }
        self.inner.apply(batch).await
    }

    async fn renew(&mut self, by: Duration) -> Result<chrono::DateTime<chrono::Utc>, StoreError> {
        self.inner.renew(by).await
    }

    async fn finish(
        self: Box<Self>,
        verdict: Verdict,
        report: &crate::ImportReport,
    ) -> Result<crate::ports::Finished, StoreError> {
        self.inner.finish(verdict, report).await
    }
}

#[async_trait::async_trait]
impl crate::ports::RecordStore for FailingRecords {
    async fn begin_apply(
        &self,
        lease: &crate::ports::Lease,
    ) -> Result<Box<dyn crate::ports::ImportWriter>, StoreError> {
        let inner = self.0.begin_apply(lease).await?;
        Ok(Box::new(FailingWriter { inner, batches: 0 }))
    }

    async fn get(
        &self,
        dataset: &crate::DatasetName,
        key: &RecordKey,
    ) -> Result<crate::ports::StoredRecord, StoreError> {
        self.0.get(dataset, key).await
    }

    async fn list(
        &self,
        dataset: &crate::DatasetName,
        query: &RecordQuery,
    ) -> Result<crate::ports::RecordPage, StoreError> {
        self.0.list(dataset, query).await
    }

    async fn scan(
        &self,
        dataset: &crate::DatasetName,
        scan: &crate::ports::RecordScan,
    ) -> Result<Vec<Record>, StoreError> {
        self.0.scan(dataset, scan).await
    }

    async fn marks(
        &self,
        dataset: &crate::DatasetName,
        filters: &RecordFilter,
        every: u64,
    ) -> Result<Vec<String>, StoreError> {
        self.0.marks(dataset, filters, every).await
    }

    async fn history(
        &self,
        dataset: &crate::DatasetName,
        key: &RecordKey,
        page: &crate::ports::HistoryPage,
    ) -> Result<crate::ports::HistoryEntries, StoreError> {
        self.0.history(dataset, key, page).await
    }

    async fn conflicts(
        &self,
        dataset: &crate::DatasetName,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<(crate::ImportId, crate::Conflict)>, StoreError> {
        self.0.conflicts(dataset, limit, offset).await
    }
}

/// A store error in the middle of an import ends processing with an error, keeps
/// nothing of the batches already written, and leaves the import to be processed
/// again, whole.
pub async fn a_store_error_mid_import_rolls_everything_back(s: Stores) {
    let failing = Stores {
        records: Arc::new(FailingRecords(s.records.clone())),
        ..s.clone()
    };
    let broken = service(&failing, 4);
    let ds = dataset(&s, "flaky", SIMPLE).await;
    let rows: String = (0..40).map(|r| format!("k{r:02},g,{r}\n")).collect();
    let body = format!("id,group,value\n{rows}");
    let import = receive(&broken, &ds, body.as_bytes(), None).await;
    let lease = broken.claim("w").await.expect("claim").expect("queued");
    let failed = broken.process(&lease).await;
    assert!(
        matches!(failed, Err(crate::ingest::ProcessError::Unexpected(_))),
        "{failed:?}"
    );
    assert!(
        all_records(&s, &ds).await.is_empty(),
        "two batches were written, none kept"
    );
    let status = s.vault.get(&import.id).await.expect("get").status;
    assert_eq!(
        status,
        ImportStatus::Processing,
        "still leased, not finished"
    );

    broken.release(&lease).await.expect("release");
    let done = drain(&service(&s, 4)).await;
    assert_eq!(done[0].report.inserted, 40);
    assert_eq!(all_history(&s, &ds).await, 40, "each record applied once");
}

/// Text with a NUL character (which SQL text types cannot hold) invalidates its record
/// with a located error; the rest of the document is applied.
pub async fn a_nul_character_invalidates_its_record_not_the_import(s: Stores) {
    let service = service(&s, 16);
    let ds = dataset(&s, "nul", SIMPLE).await;
    receive(&service, &ds, b"id,group,value\n1,a\0b,1\n2,a,2\n", None).await;
    let done = drain(&service).await;
    let report = &done[0].report;
    assert_eq!((report.inserted, report.invalid), (1, 1), "{report:?}");
    assert_eq!(report.errors[0].field.as_deref(), Some("group"));
    assert_eq!(all_records(&s, &ds).await.len(), 1);
}

/// A failed attempt is retried after a short back-off, not a whole lease later: with
/// a lease of an hour, an import that keeps failing reaches its last attempt within
/// seconds.
pub async fn a_failed_attempt_is_retried_after_a_back_off_not_a_lease(s: Stores) {
    let settings = crate::ingest::IngestSettings {
        lease: Duration::from_secs(3600),
        retry_backoff: Duration::from_millis(50),
        idle_poll: Duration::from_millis(20),
        max_attempts: 3,
        ..crate::ingest::IngestSettings::default()
    };
    let (_, failed) = poisoned_import(&s, "backoff", settings).await;
    assert_eq!(
        failed.status,
        ImportStatus::Failed,
        "three attempts within seconds, though the lease is an hour"
    );
}

/// At start-up, the imports that workers of a dead process on this host held are
/// taken back at once; a live process's and another host's are left alone.
pub async fn a_restart_takes_back_what_its_dead_predecessor_held(s: Stores) {
    let service = service(&s, 1000);
    let ds = dataset(&s, "restart", SIMPLE).await;
    for body in [
        &b"id,group,value\n1,a,1\n"[..],
        b"id,group,value\n2,a,1\n",
        b"id,group,value\n3,a,1\n",
        b"id,group,value\n4,a,1\n",
    ] {
        receive(&service, &ds, body, None).await;
    }
    let long = Duration::from_secs(3600);
    let name = crate::ingest::worker_name;
    for worker in [
        name("box-a", 41, 0),
        name("box-a", 42, 0),
        name("box-a-7", 41, 0),
        // A job worker of the dead process, holding an import for a reprocess.
        "box-a-41-job-0".to_owned(),
    ] {
        s.queue
            .claim(&worker, long)
            .await
            .expect("claim")
            .expect("an import");
    }
    let taken = service
        .take_back_abandoned("box-a", &|pid| pid == 42)
        .await
        .expect("taken back");
    assert_eq!(
        taken, 2,
        "only box-a's dead process 41 (an import worker and a job worker), not box-a-7's"
    );
    assert_eq!(
        s.queue.holders().await.expect("holders"),
        ["box-a-42-0", "box-a-7-41-0"]
    );
    assert!(s.queue.claim("next", long).await.expect("claim").is_some());
}

/// A client waiting for its import (`?wait=true`) is woken when this process finishes
/// processing it, not by its next poll (here, never).
pub async fn a_waiter_is_woken_when_its_import_is_processed(s: Stores) {
    let service = crate::ingest::ImportService::new(
        s.ingest_ports(Arc::new(super::Sleepless)),
        crate::ingest::IngestSettings::default(),
    );
    let ds = dataset(&s, "waited", SIMPLE).await;
    let id = receive(&service, &ds, b"id,group,value\na,g,1\n", None)
        .await
        .id;
    let waiting = async {
        let import = service.wait(&ds, &id, Duration::from_secs(3600)).await;
        Some(import.expect("wait"))
    };
    let processing = async {
        drain(&service).await;
        sleep(Duration::from_secs(10)).await;
        None
    };
    let import = futures_lite::future::or(waiting, processing).await;
    assert_eq!(
        import.map(|i| i.status),
        Some(ImportStatus::Completed),
        "the waiter was not woken when its import was processed"
    );
}

/// Deleting a dataset (ADR 37) waits for its imports, takes what it derived at once and
/// keeps its documents under a tombstone that holds the name, until a purge frees it;
/// a dataset created again under the name starts empty, and other datasets keep theirs.
pub async fn a_deleted_dataset_keeps_its_documents_until_purged(s: Stores) {
    use crate::ports::{CatalogError, ClaimLimits, DeliveryClaim, NewSubscription};
    let service = service(&s, 16);
    let ds = dataset(&s, "doomed", SIMPLE).await;
    let bystander = dataset(&s, "bystander", SIMPLE).await;
    let new = NewSubscription {
        dataset: ds.clone(),
        url: "https://receiver.example/hook".into(),
        events: None,
        secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
    };
    s.subscriptions.create(&new).await.expect("subscribed");
    let first = receive(&service, &ds, b"id,group,value\n1,a,1\n2,a,2\n", None).await;
    receive(&service, &bystander, b"id,group,value\n1,a,1\n", None).await;
    drain(&service).await;
    let second = receive(&service, &ds, b"id,group,value\n2,b,5\n3,b,3\n", None).await;

    let busy = s.datasets.delete(&ds, false).await;
    assert!(matches!(busy, Err(CatalogError::Busy(1))), "{busy:?}");
    assert_eq!(drain(&service).await.len(), 1);
    assert_eq!(
        all_records(&s, &ds).await.len(),
        3,
        "a refused delete deletes nothing"
    );

    let deleted = s.datasets.delete(&ds, false).await.expect("deleted");
    assert_eq!(
        (deleted.records, deleted.documents, deleted.purged),
        (3, 2, false)
    );
    assert!(matches!(
        s.datasets.get(&ds).await,
        Err(CatalogError::NotFound)
    ));
    let names: Vec<_> = s.datasets.list().await.expect("list");
    assert_eq!(
        names.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(),
        ["bystander"]
    );
    assert!(all_records(&s, &ds).await.is_empty());
    let key = RecordKey::parse("1", 1).expect("key");
    let history = s
        .records
        .history(&ds, &key, &crate::ports::HistoryPage::ALL)
        .await;
    assert!(matches!(history, Err(StoreError::NotFound)), "{history:?}");
    assert!(s.subscriptions.list(&ds).await.expect("list").is_empty());
    let claim = s
        .deliveries
        .claim(
            "w",
            chrono::Utc::now() + chrono::Duration::days(1),
            Duration::from_secs(30),
            &ClaimLimits::one(),
        )
        .await
        .expect("claim");
    assert!(
        matches!(claim, DeliveryClaim::Idle(_)),
        "its events went: {claim:?}"
    );
    for import in [&first, &second] {
        let kept = s.vault.get(&import.id).await.expect("the document is kept");
        assert_eq!(kept.import.dataset, ds);
    }
    assert!(matches!(
        s.datasets.create(&ds, &contract(SIMPLE)).await,
        Err(CatalogError::Deleted)
    ));
    assert!(matches!(
        s.datasets.delete(&ds, false).await,
        Err(CatalogError::NotFound)
    ));
    let refused = s.contracts.publish(&ds, &contract(SIMPLE)).await;
    assert!(
        matches!(refused, Err(CatalogError::NotFound)),
        "{refused:?}"
    );

    let purged = s.datasets.delete(&ds, true).await.expect("purged");
    assert_eq!(
        (purged.records, purged.documents, purged.purged),
        (0, 2, true)
    );
    assert!(
        s.vault.get(&first.id).await.is_err(),
        "the document is gone"
    );
    assert!(matches!(
        s.datasets.delete(&ds, true).await,
        Err(CatalogError::NotFound)
    ));

    let again = dataset(&s, "doomed", SIMPLE).await;
    assert_eq!(s.datasets.get(&again).await.expect("get").revision.get(), 0);
    // The same body as before is a new document of the new dataset.
    let fresh = receive(&service, &again, b"id,group,value\n1,a,1\n2,a,2\n", None).await;
    assert_ne!(fresh.id, first.id);
    drain(&service).await;
    assert_eq!(all_records(&s, &again).await.len(), 2);
    assert_eq!(all_records(&s, &bystander).await.len(), 1);
    let purged_at_once = s.datasets.delete(&bystander, true).await.expect("purged");
    assert_eq!((purged_at_once.records, purged_at_once.documents), (1, 1));
}

/// Deleting a record (ADR 40) is an import of a deletion document: once applied, the
/// key has no latest state and leaves the count, its history ends with a `deleted`
/// entry holding the state it had, subscribers get `record.deleted`, and the revision
/// moves. Asking again finds nothing to delete; a key created again after its deletion
/// is created, not updated.
pub async fn a_deleted_record_leaves_the_latest_state_and_stays_in_history(s: Stores) {
    use crate::ingest::DELETIONS_MEDIA_TYPE;
    use crate::ports::{ClaimLimits, DeliveryClaim, EventKind, HistoryPage, NewSubscription};
    let service = service(&s, 16);
    let ds = dataset(&s, "pruned", SIMPLE).await;
    let new = NewSubscription {
        dataset: ds.clone(),
        url: "https://receiver.example/hook".into(),
        events: Some(vec![EventKind::RecordDeleted]),
        secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
    };
    let subscription = s.subscriptions.create(&new).await.expect("subscribed");
    import_simple(&service, &ds, "a,g,1\nb,g,2\n").await;
    import_simple(&service, &ds, "a,h,3\n").await;
    let a = RecordKey::parse("a", 1).expect("key");
    let state = s.records.get(&ds, &a).await.expect("a has a record");
    let revision = s.datasets.get(&ds).await.expect("get").revision;

    let asked = service
        .delete_record(&ds, &state, "test", None)
        .await
        .expect("stored");
    assert!(asked.is_new);
    assert_eq!(asked.import.import.content_type, DELETIONS_MEDIA_TYPE);
    let done = drain(&service).await;
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].verdict, Verdict::Commit);
    assert_eq!((done[0].report.seen, done[0].report.deleted), (1, 1));
    assert!(done[0].revision > revision, "the revision moves");

    assert!(matches!(
        s.records.get(&ds, &a).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        all_records(&s, &ds)
            .await
            .keys()
            .cloned()
            .collect::<Vec<_>>(),
        [RecordKey::parse("b", 1).expect("key")]
    );
    let count = RecordQuery {
        limit: 0,
        ..RecordQuery::default()
    };
    assert_eq!(s.records.list(&ds, &count).await.expect("list").total, 1);
    let history = s
        .records
        .history(&ds, &a, &HistoryPage::ALL)
        .await
        .expect("history");
    let flags: Vec<bool> = history.entries.iter().map(|e| e.deleted).collect();
    assert_eq!(flags, [false, false, true]);
    let last = history.entries.last().expect("an entry");
    assert_eq!(last.record, state.record, "the state it had");
    assert_eq!(last.import, asked.import.id);

    // Asked again (a retry that crossed the first): a deletion of its own that finds
    // nothing to delete.
    let again = service
        .delete_record(&ds, &state, "test", None)
        .await
        .expect("stored");
    assert!(again.is_new);
    let done = drain(&service).await;
    assert_eq!(done.len(), 1);
    assert_eq!((done[0].report.deleted, done[0].report.unchanged), (0, 1));
    let count_before = s.records.list(&ds, &count).await.expect("list").total;
    assert_eq!(count_before, 1, "counted once");

    let claim = s
        .deliveries
        .claim(
            "w",
            chrono::Utc::now() + chrono::Duration::seconds(1),
            Duration::from_secs(30),
            &ClaimLimits::one(),
        )
        .await
        .expect("claim");
    let DeliveryClaim::Claimed(claimed) = claim else {
        panic!("the deletion's event: {claim:?}");
    };
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].subscription, subscription.id);
    assert_eq!(claimed[0].event.kind, EventKind::RecordDeleted);
    assert_eq!(claimed[0].event.payload["key"], "a");
    assert_eq!(
        claimed[0].event.payload["record"]["dimensions"]["group"],
        "h"
    );

    import_simple(&service, &ds, "a,g,9\n").await;
    let history = s
        .records
        .history(&ds, &a, &HistoryPage::ALL)
        .await
        .expect("history");
    assert_eq!(history.entries.len(), 4);
    assert!(!history.entries[3].deleted);
    assert_eq!(s.records.list(&ds, &count).await.expect("list").total, 2);
    let reports: Vec<(u64, u64)> = s
        .vault
        .list(&ds, 10, 0)
        .await
        .expect("imports")
        .iter()
        .filter_map(|i| i.report.as_ref().map(|r| (r.inserted, r.updated)))
        .collect();
    assert_eq!(
        reports[0],
        (1, 0),
        "created again, not updated: {reports:?}"
    );
}
