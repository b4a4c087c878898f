//! The pull source conformance cases: what every store of
//! [`crate::ports::SourceStore`] must do, and a source's runs through the domain's
//! [`SourceWork`] over that store, with an adapter that serves pages from memory.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::support::{dataset, drain, name, service, sha256_hex};
use super::{Stores, SystemClock};
use crate::model::{ContractVersion, DatasetName};
use crate::ports::{
    ExternalSource, FetchRequest, Fetched, FetchedPage, NewImport, PageSaved, PageToSave, Progress,
    RecordQuery, SourceClaim, SourceError, SourceLease, SourceStoreError, UrlRefused, Validators,
};
use crate::sources::{
    Every, Health, Secrets, SourceKind, SourcePorts, SourceService, SourceSettings, SourceSpec,
    SourceWork,
};
use crate::work::{Claim, LeasedWork, WorkError};

/// Pages of `{"items": [...]}`, keyed by `id`, grouped by `group`.
const PAGES: &str = r#"{
  "format": "json",
  "records": "items",
  "fields": {
    "id": {"type": "string", "required": true},
    "group": {"type": "string", "required": true},
    "value": {"type": "number", "required": true}
  },
  "key": ["id"],
  "dimensions": ["group"],
  "measures": {"value": "value"},
  "merge": "last_wins",
  "on_invalid": "skip_record"
}"#;

const LEASE: Duration = Duration::from_secs(30);

fn spec(name: &str) -> SourceSpec {
    SourceSpec {
        name: name.into(),
        kind: SourceKind::JsonApi,
        url: "https://vendor.example/items".into(),
        schedule: Every::of(Duration::from_secs(300)),
        records: None,
        pagination: None,
        auth: None,
        incremental: None,
        paused: false,
    }
}

fn page_import(ds: &DatasetName, source: &str) -> NewImport {
    NewImport {
        dataset: ds.clone(),
        contract: ContractVersion::FIRST,
        content_type: "application/json".into(),
        source: crate::ports::source_label(source),
        idempotency_key: None,
    }
}

fn page(ds: &DatasetName, source: &str, body: &str) -> PageToSave {
    PageToSave {
        import: page_import(ds, source),
        body: body.as_bytes().to_vec(),
        sha256: sha256_hex(body.as_bytes()),
    }
}

fn progress(cursor: Option<&str>, watermark: Option<&str>, records: u64) -> Progress {
    let now = Utc::now();
    Progress {
        cursor: cursor.map(str::to_owned),
        run_watermark: watermark.map(str::to_owned),
        validators: Validators::default(),
        records,
        next_run_at: now + chrono::Duration::minutes(5),
        lease_until: now + chrono::Duration::seconds(30),
    }
}

async fn claim(s: &Stores, at: DateTime<Utc>) -> Option<SourceLease> {
    match s.sources.claim("w", at, LEASE).await.expect("claim") {
        SourceClaim::Claimed(l) => Some(*l),
        SourceClaim::Nothing { .. } => None,
    }
}

async fn imports_of(s: &Stores, ds: &DatasetName) -> usize {
    s.vault.list(ds, 1000, 0).await.expect("imports").len()
}

/// Sources are created (a name once per dataset), listed by name, changed (a restart
/// forgets the run in progress), reset and deleted.
pub async fn sources_are_created_listed_changed_and_deleted(s: Stores) {
    let ds = dataset(&s, "src-crud", PAGES).await;
    let now = Utc::now();
    let b = s.sources.create(&ds, &spec("b"), now).await.expect("b");
    assert_eq!(b.spec, spec("b"), "the declaration reads back as given");
    assert_eq!(b.state.cursor, None);
    assert_eq!((b.state.pages, b.state.failures), (0, 0));
    s.sources.create(&ds, &spec("a"), now).await.expect("a");
    assert!(matches!(
        s.sources.create(&ds, &spec("a"), now).await,
        Err(SourceStoreError::Taken)
    ));
    assert!(matches!(
        s.sources.create(&name("src-none"), &spec("a"), now).await,
        Err(SourceStoreError::NotFound)
    ));
    let other = dataset(&s, "src-crud-other", PAGES).await;
    s.sources
        .create(&other, &spec("a"), now)
        .await
        .expect("the same name in another dataset");
    let names: Vec<String> = s
        .sources
        .list(&ds)
        .await
        .expect("list")
        .into_iter()
        .map(|x| x.spec.name)
        .collect();
    assert_eq!(names, ["a", "b"]);

    // A page moves the cursor; a restart forgets it, a plain change keeps it.
    let lease = claim(&s, now).await.expect("due");
    let held = s
        .sources
        .get(&lease.source.dataset, &lease.source.spec.name)
        .await
        .expect("get");
    assert_eq!(held.state.held_by.as_deref(), Some("w"));
    s.sources
        .save_page(&lease, None, &progress(Some("c2"), Some("7"), 0))
        .await
        .expect("saved");
    let (lds, lname) = (&lease.source.dataset, lease.source.spec.name.as_str());
    let mut changed = lease.source.spec.clone();
    changed.schedule = Every::of(Duration::from_secs(60));
    let kept = s
        .sources
        .update(lds, &changed, false)
        .await
        .expect("update");
    assert_eq!(kept.spec.schedule, changed.schedule);
    assert_eq!(kept.state.cursor.as_deref(), Some("c2"));
    assert_eq!(kept.state.run_watermark.as_deref(), Some("7"));
    let restarted = s.sources.update(lds, &changed, true).await.expect("update");
    assert_eq!(restarted.state.cursor, None, "a restart forgets the cursor");
    assert_eq!(restarted.state.run_watermark, None);
    assert_eq!(restarted.state.held_by, None, "and the lease");
    assert!(matches!(
        s.sources
            .save_page(&lease, None, &progress(Some("c3"), None, 0))
            .await,
        Err(SourceStoreError::LeaseLost)
    ));

    let later = now + chrono::Duration::hours(1);
    let due = s
        .sources
        .schedule(lds, lname, later, false)
        .await
        .expect("s");
    assert_eq!(due.state.next_run_at.timestamp(), later.timestamp());
    assert!(matches!(
        s.sources.schedule(lds, "nope", later, true).await,
        Err(SourceStoreError::NotFound)
    ));

    s.sources.delete(&ds, "a").await.expect("deleted");
    assert!(matches!(
        s.sources.get(&ds, "a").await,
        Err(SourceStoreError::NotFound)
    ));
    assert!(matches!(
        s.sources.delete(&ds, "a").await,
        Err(SourceStoreError::NotFound)
    ));
    assert_eq!(s.sources.list(&ds).await.expect("list").len(), 1);
}

/// A page's import and its source's cursor are saved together: a stale holder saves
/// neither, the same bytes again give the first import and still move the cursor, and
/// the last page of a run makes its highest value the watermark and frees the source.
pub async fn a_page_and_its_cursor_are_saved_together(s: Stores) {
    let ds = dataset(&s, "src-pages", PAGES).await;
    let now = Utc::now();
    s.sources.create(&ds, &spec("v"), now).await.expect("v");
    let lease = claim(&s, now).await.expect("due");
    assert_eq!(lease.attempt, 1);
    let first = r#"{"items": [{"id": "a", "group": "g", "value": 1}]}"#;
    let saved = s
        .sources
        .save_page(
            &lease,
            Some(page(&ds, "v", first)),
            &progress(Some("c1"), Some("5"), 1),
        )
        .await
        .expect("saved");
    let Some(PageSaved::New(import)) = saved else {
        panic!("a new import: {saved:?}")
    };
    assert_eq!(import.import.source, "source:v");
    assert_eq!(import.status, crate::ImportStatus::Received);
    assert_eq!(import.size, first.len() as u64);
    assert_eq!(
        super::support::read_back(&s, &import).await,
        first.as_bytes()
    );
    let v = s.sources.get(&ds, "v").await.expect("v");
    assert_eq!(v.state.cursor.as_deref(), Some("c1"));
    assert_eq!((v.state.pages, v.state.records), (1, 1));

    // The same bytes: the first import, and the cursor moves on.
    let again = s
        .sources
        .save_page(
            &lease,
            Some(page(&ds, "v", first)),
            &progress(Some("c2"), Some("9"), 1),
        )
        .await
        .expect("saved");
    assert!(
        matches!(&again, Some(PageSaved::Duplicate(i)) if i.id == import.id),
        "{again:?}"
    );
    assert_eq!(imports_of(&s, &ds).await, 1, "nothing stored twice");
    let v = s.sources.get(&ds, "v").await.expect("v");
    assert_eq!(v.state.cursor.as_deref(), Some("c2"));

    // A stale holder saves nothing at all.
    let mut stale = lease.clone();
    stale.token = "not-the-token".into();
    let second = r#"{"items": [{"id": "b", "group": "g", "value": 2}]}"#;
    assert!(matches!(
        s.sources
            .save_page(
                &stale,
                Some(page(&ds, "v", second)),
                &progress(Some("c3"), None, 1)
            )
            .await,
        Err(SourceStoreError::LeaseLost)
    ));
    assert_eq!(imports_of(&s, &ds).await, 1, "no import without the cursor");
    let v = s.sources.get(&ds, "v").await.expect("v");
    assert_eq!(
        v.state.cursor.as_deref(),
        Some("c2"),
        "no cursor without the import"
    );

    // The last page completes the run.
    let last = progress(None, Some("9"), 1);
    s.sources
        .save_page(&lease, Some(page(&ds, "v", second)), &last)
        .await
        .expect("saved");
    let v = s.sources.get(&ds, "v").await.expect("v");
    assert_eq!(v.state.cursor, None, "the next run starts at the start");
    assert_eq!(v.state.watermark.as_deref(), Some("9"));
    assert_eq!(v.state.run_watermark, None);
    assert_eq!(v.state.held_by, None);
    assert!(v.state.last_success_at.is_some());
    assert_eq!(
        v.state.next_run_at.timestamp(),
        last.next_run_at.timestamp()
    );
    assert_eq!((v.state.pages, v.state.records), (3, 3));
    assert_eq!(claim(&s, now).await, None, "not due until its schedule");
    assert!(claim(&s, last.next_run_at).await.is_some());
}

/// Claimers racing never hold the same source; a held source is claimed again only
/// once its lease lapses, and a paused one never.
pub async fn concurrent_claimers_never_share_a_source(s: Stores) {
    let ds = dataset(&s, "src-race", PAGES).await;
    let now = Utc::now();
    for i in 0..6 {
        s.sources
            .create(&ds, &spec(&format!("s{i}")), now)
            .await
            .expect("created");
    }
    let mut paused = spec("held");
    paused.paused = true;
    s.sources.create(&ds, &paused, now).await.expect("paused");
    let claims = (0..8).map(|_| {
        let s = s.clone();
        async move {
            let mut mine = Vec::new();
            while let Some(l) = claim(&s, now).await {
                mine.push(l.source.spec.name);
            }
            mine
        }
    });
    let all: Vec<String> = futures_util::future::join_all(claims)
        .await
        .into_iter()
        .flatten()
        .collect();
    let distinct: BTreeSet<&String> = all.iter().collect();
    assert_eq!(all.len(), 6, "each source claimed once: {all:?}");
    assert_eq!(distinct.len(), 6);
    assert!(!all.contains(&"held".to_owned()), "a paused source waits");
    let after = now + chrono::Duration::seconds(31);
    let again = claim(&s, after)
        .await
        .expect("a lapsed lease is claimed again");
    assert_eq!(again.attempt, 1, "a lapsed lease is not a failure");
}

/// A failure counts, ends the lease and makes the source due at the retry time with
/// its cursor kept; the next claim is the next attempt; a saved page clears it all.
pub async fn failures_are_counted_until_a_page_clears_them(s: Stores) {
    let ds = dataset(&s, "src-fail", PAGES).await;
    let now = Utc::now();
    s.sources.create(&ds, &spec("v"), now).await.expect("v");
    let lease = claim(&s, now).await.expect("due");
    s.sources
        .save_page(&lease, None, &progress(Some("c1"), None, 0))
        .await
        .expect("saved");
    let retry = now + chrono::Duration::seconds(2);
    s.sources
        .fail(&lease, retry, "HTTP 500 from vendor.example", false)
        .await
        .expect("failed");
    assert!(matches!(
        s.sources.fail(&lease, retry, "again", false).await,
        Err(SourceStoreError::LeaseLost)
    ));
    let v = s.sources.get(&ds, "v").await.expect("v");
    assert_eq!(v.state.failures, 1);
    assert_eq!(
        v.state.last_error.as_deref(),
        Some("HTTP 500 from vendor.example")
    );
    assert_eq!(v.state.cursor.as_deref(), Some("c1"), "the cursor stays");
    assert!(!v.state.degraded);
    assert_eq!(claim(&s, now).await, None, "not before the retry");
    let second = claim(&s, retry).await.expect("due again");
    assert_eq!(second.attempt, 2);
    s.sources
        .fail(&second, retry, "timed out", true)
        .await
        .expect("failed");
    let v = s.sources.get(&ds, "v").await.expect("v");
    assert!(v.state.degraded);
    assert_eq!(v.state.failures, 2);
    let third = claim(&s, retry).await.expect("due again");
    assert_eq!(third.attempt, 3);
    s.sources
        .release(&third)
        .await
        .expect("a release is not a failure");
    let fourth = claim(&s, retry).await.expect("claimable at once");
    assert_eq!(fourth.attempt, 3);
    s.sources
        .save_page(&fourth, None, &progress(Some("c2"), None, 0))
        .await
        .expect("saved");
    let v = s.sources.get(&ds, "v").await.expect("v");
    assert_eq!((v.state.failures, v.state.degraded), (0, false));
    assert_eq!(v.state.last_error, None);

    // A reset forgets where the source was.
    let reset = s
        .sources
        .schedule(&ds, "v", now, true)
        .await
        .expect("reset");
    assert_eq!(reset.state.cursor, None);
    assert_eq!(reset.state.held_by, None);
}

/// A vendor API served from memory: pages by cursor (`"1"`, `"2"`, …), failing the
/// fetches listed in `failures` once each, counting fetches.
struct Vendor {
    pages: Vec<String>,
    failures: Mutex<Vec<usize>>,
    fetched: Mutex<Vec<Option<String>>>,
}

impl Vendor {
    fn new(pages: Vec<String>, failures: Vec<usize>) -> Arc<Self> {
        Arc::new(Self {
            pages,
            failures: Mutex::new(failures),
            fetched: Mutex::new(Vec::new()),
        })
    }
}

#[async_trait::async_trait]
impl ExternalSource for Vendor {
    fn kind(&self) -> SourceKind {
        SourceKind::JsonApi
    }

    async fn fetch(&self, request: &FetchRequest) -> Result<Fetched, SourceError> {
        let n: usize = request
            .cursor
            .as_deref()
            .map_or(0, |c| c.parse().expect("n"));
        self.fetched
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(request.cursor.clone());
        {
            let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(i) = failures.iter().position(|f| *f == n) {
                failures.remove(i);
                return Err(SourceError::Unavailable {
                    reason: format!("HTTP 503 on page {n}"),
                    retry_after: None,
                });
            }
        }
        assert_eq!(request.records, ["items"], "the contract's records path");
        let body = self.pages[n].clone();
        let records = body.matches("\"id\"").count() as u64;
        Ok(Fetched::Page(FetchedPage {
            body: body.into_bytes(),
            next: (n + 1 < self.pages.len()).then(|| (n + 1).to_string()),
            records,
            highest: Some(n.to_string()),
            validators: Validators::default(),
        }))
    }

    async fn check_url(&self, _url: &str) -> Result<(), UrlRefused> {
        Ok(())
    }
}

fn sources_over(s: &Stores, vendor: Arc<Vendor>) -> Arc<SourceService> {
    let ports = SourcePorts {
        store: s.sources.clone(),
        datasets: s.datasets.clone(),
        contracts: s.contracts.clone(),
        adapters: vec![vendor],
        clock: Arc::new(SystemClock),
    };
    let settings = SourceSettings {
        secrets: Secrets::new([("VENDOR_TOKEN".to_owned(), "s3cret".to_owned())]),
        ..SourceSettings::default()
    };
    Arc::new(SourceService::new(ports, settings))
}

/// Claims the source and runs it; on a failure, records it due at once.
async fn run_once(work: &SourceWork) -> Result<(), WorkError> {
    let Claim::Items(items) = work.claim("w", Utc::now()).await.expect("claim") else {
        panic!("a due source")
    };
    let outcome = work.work(&items[0]).await;
    if let Err(WorkError::Failed { error, .. }) = &outcome {
        work.fail(&items[0], Some(Utc::now()), &error.to_string())
            .await
            .expect("failure recorded");
    }
    outcome
}

fn vendor_pages(n: usize, per_page: usize) -> Vec<String> {
    (0..n)
        .map(|p| {
            let items: Vec<String> = (0..per_page)
                .map(|i| {
                    format!(
                        r#"{{"id": "r{p}-{i}", "group": "g{}", "value": {i}}}"#,
                        i % 3
                    )
                })
                .collect();
            format!(r#"{{"items": [{}]}}"#, items.join(", "))
        })
        .collect()
}

/// A run saves every page once through the ordinary pipeline; a failed fetch is
/// retried from the page it failed on, not from the start.
pub async fn a_run_saves_every_page_once_and_resumes_where_it_failed(s: Stores) {
    let ds = dataset(&s, "src-run", PAGES).await;
    let vendor = Vendor::new(vendor_pages(5, 20), vec![3]);
    let sources = sources_over(&s, vendor.clone());
    let view = sources.create(&ds, spec("v")).await.expect("created");
    assert_eq!(view.status, Health::Healthy);
    let work = SourceWork::new(sources.clone());
    assert!(run_once(&work).await.is_err(), "page 3 fails once");
    let v = sources.get(&ds, "v").await.expect("v");
    assert_eq!(v.source.state.cursor.as_deref(), Some("3"));
    assert_eq!(v.source.state.failures, 1);
    run_once(&work).await.expect("the rest of the run");
    let fetched = vendor
        .fetched
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let numbered: Vec<Option<&str>> = fetched.iter().map(Option::as_deref).collect();
    assert_eq!(
        numbered,
        [None, Some("1"), Some("2"), Some("3"), Some("3"), Some("4")],
        "resumed at the failed page"
    );
    let v = sources.get(&ds, "v").await.expect("v");
    assert_eq!((v.source.state.pages, v.source.state.records), (5, 100));
    assert_eq!(v.source.state.failures, 0);
    assert_eq!(v.source.state.watermark.as_deref(), Some("4"));
    assert_eq!(v.source.state.cursor, None);

    let imports = service(&s, 100);
    let processed = drain(&imports).await;
    assert_eq!(processed.len(), 5, "one import per page");
    let all = RecordQuery {
        limit: 1,
        ..RecordQuery::default()
    };
    assert_eq!(s.records.list(&ds, &all).await.expect("list").total, 100);
    assert_eq!(v.status, Health::Healthy);
}

/// Records of a page that fail the contract (a vendor renamed a field) make the
/// source degraded with the field and the count; reprocessing the page with a contract
/// that reads the new name makes it healthy again, with every record present.
pub async fn a_source_whose_records_fail_the_contract_is_degraded(s: Stores) {
    let ds = dataset(&s, "src-drift", PAGES).await;
    let renamed =
        r#"{"items": [{"id": "a", "grp": "g", "value": 1}, {"id": "b", "grp": "g", "value": 2}]}"#;
    let vendor = Vendor::new(vec![renamed.to_owned()], vec![]);
    let sources = sources_over(&s, vendor);
    sources.create(&ds, spec("v")).await.expect("created");
    run_once(&SourceWork::new(sources.clone()))
        .await
        .expect("fetched");
    let imports = service(&s, 100);
    let done = drain(&imports).await;
    assert_eq!(done[0].report.invalid, 2);
    let v = sources.get(&ds, "v").await.expect("v");
    assert_eq!(v.status, Health::Degraded);
    let reason = v.reason.expect("a reason");
    assert!(
        reason.starts_with("2 records in 1 pages failed the contract on fields group"),
        "{reason}"
    );

    let fixed = PAGES.replace(
        r#""group": {"type": "string", "required": true}"#,
        r#""group": {"path": "grp", "type": "string", "required": true}"#,
    );
    let fixed = crate::Contract::parse(&fixed).expect("contract");
    let published = s.contracts.publish(&ds, &fixed).await.expect("published");
    let faulty = s
        .sources
        .faulty_imports(&ds, "source:v", 10)
        .await
        .expect("faulty");
    imports
        .reprocess(&faulty[0].id, Some(published.version))
        .await
        .expect("requeued");
    drain(&imports).await;
    let v = sources.get(&ds, "v").await.expect("v");
    assert_eq!(v.status, Health::Healthy, "{:?}", v.reason);
    assert_eq!(v.reason, None);
    let all = RecordQuery {
        limit: 10,
        ..RecordQuery::default()
    };
    assert_eq!(s.records.list(&ds, &all).await.expect("list").total, 2);
}

/// When its attempts are spent, a source is degraded with the last error as its
/// reason and is due again at its schedule, not given up; a page saved makes it
/// healthy again.
pub async fn a_source_whose_attempts_are_spent_is_degraded_not_given_up(s: Stores) {
    let ds = dataset(&s, "src-spent", PAGES).await;
    let vendor = Vendor::new(vendor_pages(1, 2), vec![0]);
    let sources = sources_over(&s, vendor);
    sources.create(&ds, spec("v")).await.expect("created");
    let work = SourceWork::new(sources.clone());
    assert!(!work.gives_up());
    let Claim::Items(items) = work.claim("w", Utc::now()).await.expect("claim") else {
        panic!("a due source")
    };
    assert!(work.work(&items[0]).await.is_err());
    let before = Utc::now();
    work.fail(&items[0], None, "HTTP 503 on page 0")
        .await
        .expect("recorded");
    let v = sources.get(&ds, "v").await.expect("v");
    assert_eq!(v.status, Health::Degraded);
    assert_eq!(
        v.reason.as_deref(),
        Some("1 attempts in a row failed; the last: HTTP 503 on page 0")
    );
    let due = v.source.state.next_run_at;
    assert!(
        due >= before + chrono::Duration::seconds(299),
        "at its schedule (5m): {due}"
    );
    assert!(
        matches!(
            work.claim("w", Utc::now()).await.expect("claim"),
            Claim::Nothing { .. }
        ),
        "not before its schedule"
    );
    sources.run_now(&ds, "v", false).await.expect("run now");
    run_once(&work).await.expect("fetched");
    let v = sources.get(&ds, "v").await.expect("v");
    assert_eq!(v.status, Health::Healthy, "{:?}", v.reason);
}

/// A backfill job pulls every page of a source from its first, each an import, and
/// leaves the source's own state alone; a fetch that fails makes the runtime try the
/// job again from its latest checkpoint, and the page fetched again is the import the
/// vault already holds. A backfill names a source the dataset has, and `since` only for
/// a source with an incremental parameter.
pub async fn a_backfill_pulls_every_page_and_resumes_from_its_checkpoint(s: Stores) {
    use crate::jobs::{BackfillSpec, JobApiError, JobSettings, JobSpec};
    let ds = dataset(&s, "src-backfill", PAGES).await;
    let vendor = Vendor::new(vendor_pages(5, 4), vec![3]);
    let sources = sources_over(&s, vendor.clone());
    sources.create(&ds, spec("v")).await.expect("created");
    let imports = service(&s, 100);
    let settings = JobSettings {
        checkpoint_items: 2,
        idle_poll: Duration::from_millis(50),
        ..JobSettings::default()
    };
    let wakeups = crate::work::Wakeups::default();
    let jobs = super::jobs::job_service(&s, &imports, sources.clone(), settings, &wakeups);
    let backfill = |source: &str, since: Option<&str>| {
        JobSpec::Backfill(BackfillSpec {
            source: source.into(),
            since: since.map(str::to_owned),
        })
    };
    for (bad, field) in [
        (backfill("nope", None), "source"),
        (backfill("v", Some("2026-01-01")), "since"),
    ] {
        match jobs.create(&ds, bad).await {
            Err(JobApiError::Invalid { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{other:?}"),
        }
    }
    let before = sources.get(&ds, "v").await.expect("v").source.state;
    let job = jobs
        .create(&ds, backfill("v", None))
        .await
        .expect("created");
    let view = super::jobs::run_until_completed(&jobs, wakeups, &ds, &job.id).await;
    assert_eq!((view.done, view.total), (5, Some(5)), "five pages");
    assert_eq!(
        view.attempts, 1,
        "progress after the retry clears the attempts"
    );
    let fetched = vendor
        .fetched
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let numbered: Vec<Option<&str>> = fetched.iter().map(Option::as_deref).collect();
    assert_eq!(
        numbered,
        [
            None,
            Some("1"),
            Some("2"),
            Some("3"),
            Some("2"),
            Some("3"),
            Some("4")
        ],
        "resumed from the checkpoint after page 2 (pages 1 and 2 done)"
    );
    let after = sources.get(&ds, "v").await.expect("v").source.state;
    assert_eq!(
        (after.cursor, after.watermark, after.pages),
        (before.cursor, before.watermark, before.pages),
        "the source's own runs are left alone"
    );
    let processed = drain(&imports).await;
    assert_eq!(processed.len(), 5, "one import per page, none twice");
    let all = RecordQuery {
        limit: 1,
        ..RecordQuery::default()
    };
    assert_eq!(s.records.list(&ds, &all).await.expect("list").total, 20);
}
