//! The analytics use cases with mocked ports: what is checked, and how rendered
//! answers are cached and keyed.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::Utc;
use futures_lite::future::block_on;

use super::*;
use crate::analytics::Aggregate;
use crate::contract::Contract;
use crate::datasets::DatasetPorts;
use crate::model::{ContractVersion, Revision};
use crate::ports::{
    Cache, MockAnalytics, MockContractStore, MockDatasetStore, MockRecordStore, PublishedContract,
};

const CONTRACT: &str = r#"{
  "format": "csv",
  "fields": {"id": {"type": "string", "required": true},
             "group": {"type": "string", "required": true},
             "value": {"type": "number", "required": true}},
  "key": ["id"],
  "dimensions": ["group"],
  "measures": {"value": "value"},
  "merge": "last_wins",
  "on_invalid": "skip_record"
}"#;

/// A cache in a map that records the keys it is asked for.
#[derive(Default)]
struct MapCache {
    entries: Mutex<HashMap<String, Vec<u8>>>,
}

#[async_trait::async_trait]
impl Cache for MapCache {
    async fn get(&self, key: &CacheKey) -> Option<Vec<u8>> {
        self.entries.lock().unwrap().get(&key.to_string()).cloned()
    }

    async fn put(&self, key: &CacheKey, value: Vec<u8>) {
        self.entries.lock().unwrap().insert(key.to_string(), value);
    }
}

fn name() -> DatasetName {
    DatasetName::parse("exams").unwrap()
}

fn answer() -> Vec<GroupAggregate> {
    vec![GroupAggregate {
        group: Some("a".into()),
        aggregate: Aggregate::compute(vec![1.0, 2.0], &Aggregate::QUARTILES).unwrap(),
        excluded: 1,
    }]
}

/// A service over a dataset whose revision is read from `revision` at each call.
fn service(
    revision: Arc<AtomicU64>,
    analytics: MockAnalytics,
    cache: Arc<dyn Cache>,
) -> DatasetService {
    let created_at = Utc::now();
    let mut datasets = MockDatasetStore::new();
    datasets.expect_get().returning(move |name| {
        Ok(Dataset {
            name: name.clone(),
            current_contract: ContractVersion::FIRST,
            revision: Revision::new(revision.load(Ordering::SeqCst)),
            created_at,
        })
    });
    let mut contracts = MockContractStore::new();
    contracts.expect_get().returning(|dataset, version| {
        Ok(PublishedContract {
            dataset: dataset.clone(),
            version,
            contract: Contract::parse(CONTRACT).unwrap(),
            published_at: Utc::now(),
        })
    });
    DatasetService::new(DatasetPorts {
        datasets: Arc::new(datasets),
        contracts: Arc::new(contracts),
        records: Arc::new(MockRecordStore::new()),
        analytics: Arc::new(analytics),
        cache,
    })
}

fn query(measure: &str, group_by: Option<&str>) -> AnalyticsQuery {
    AnalyticsQuery {
        dataset: name(),
        measure: measure.into(),
        group_by: group_by.map(str::to_owned),
        filters: BTreeMap::new(),
        percentiles: Aggregate::QUARTILES.to_vec(),
    }
}

/// Renders `q`'s answer through the cache as a route does, counting renderings.
fn rendered(service: &DatasetService, q: &AnalyticsQuery, renders: &AtomicU64) -> Vec<u8> {
    let render = || async {
        renders.fetch_add(1, Ordering::SeqCst);
        let answer = service.aggregate(q).await?;
        Ok::<_, DatasetError>(serde_json::to_vec(&answer).unwrap())
    };
    block_on(service.rendered(&q.dataset, "aggregate", q, render)).unwrap()
}

#[test]
fn an_answer_is_rendered_once_per_revision_and_sent_as_its_bytes() {
    let revision = Arc::new(AtomicU64::new(1));
    let mut analytics = MockAnalytics::new();
    analytics
        .expect_aggregate()
        .times(2)
        .returning(|_| Ok(answer()));
    let service = service(revision.clone(), analytics, Arc::new(MapCache::default()));
    let q = query("value", Some("group"));
    let renders = AtomicU64::new(0);
    let first = rendered(&service, &q, &renders);
    assert_eq!(first, serde_json::to_vec(&answer()).unwrap());
    assert_eq!(rendered(&service, &q, &renders), first, "cached");
    assert_eq!(renders.load(Ordering::SeqCst), 1);
    revision.store(2, Ordering::SeqCst);
    assert_eq!(rendered(&service, &q, &renders), first);
    assert_eq!(
        renders.load(Ordering::SeqCst),
        2,
        "rendered again after an import"
    );
    rendered(&service, &q, &renders);
    assert_eq!(renders.load(Ordering::SeqCst), 2);
}

#[test]
fn a_dataset_created_again_under_its_name_meets_none_of_the_old_answers() {
    let cache = Arc::new(MapCache::default());
    let q = query("value", None);
    let renders = AtomicU64::new(0);
    for _ in 0..2 {
        // Each service sees a dataset of the same name and revision, created anew.
        let mut analytics = MockAnalytics::new();
        analytics
            .expect_aggregate()
            .times(1)
            .returning(|_| Ok(answer()));
        let service = service(Arc::new(AtomicU64::new(1)), analytics, cache.clone());
        rendered(&service, &q, &renders);
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    assert_eq!(renders.load(Ordering::SeqCst), 2);
    assert_eq!(cache.entries.lock().unwrap().len(), 2);
}

#[test]
fn failures_are_not_cached() {
    let cache = Arc::new(MapCache::default());
    let service = service(
        Arc::new(AtomicU64::new(1)),
        MockAnalytics::new(),
        cache.clone(),
    );
    let q = query("score", None);
    for _ in 0..2 {
        let render = || async {
            service.aggregate(&q).await?;
            Ok::<_, DatasetError>(Vec::new())
        };
        let answer = block_on(service.rendered(&q.dataset, "aggregate", &q, render));
        assert!(matches!(answer, Err(DatasetError::UnknownMeasure { .. })));
    }
    assert!(cache.entries.lock().unwrap().is_empty());
}

#[test]
fn names_outside_the_contract_are_refused_naming_them() {
    let service = service(
        Arc::new(AtomicU64::new(0)),
        MockAnalytics::new(),
        Arc::new(crate::ports::NoCache),
    );
    let measure = block_on(service.aggregate(&query("score", None)));
    assert!(
        matches!(&measure, Err(DatasetError::UnknownMeasure { name, measures })
            if name == "score" && measures == &["value"]),
        "{measure:?}"
    );
    let dimension = block_on(service.aggregate(&query("value", Some("grp"))));
    assert!(
        matches!(&dimension, Err(DatasetError::UnknownDimension { name, .. }) if name == "grp"),
        "{dimension:?}"
    );
    let mut bad = query("value", None);
    bad.percentiles = vec![1.5];
    assert!(matches!(
        block_on(service.aggregate(&bad)),
        Err(DatasetError::InvalidQuery { .. })
    ));
    let top = TopQuery {
        dataset: name(),
        measure: "value".into(),
        group_by: "group".into(),
        filters: BTreeMap::new(),
        k: 0,
    };
    assert!(matches!(
        block_on(service.top(&top)),
        Err(DatasetError::InvalidQuery { .. })
    ));
}

#[test]
fn a_filter_value_with_a_nul_matches_nothing_without_asking_the_engine() {
    let service = service(
        Arc::new(AtomicU64::new(0)),
        MockAnalytics::new(),
        Arc::new(crate::ports::NoCache),
    );
    let mut q = query("value", Some("group"));
    q.filters.insert("group".into(), "a\0".into());
    assert_eq!(block_on(service.aggregate(&q)).unwrap(), Vec::new());
}

#[test]
fn requests_missing_the_same_answer_at_once_render_it_once() {
    let mut analytics = MockAnalytics::new();
    analytics
        .expect_aggregate()
        .times(1)
        .returning(|_| Ok(answer()));
    // No cache: the waiting requests get the bytes from the one that rendered them.
    let revision = Arc::new(AtomicU64::new(1));
    let service = service(revision, analytics, Arc::new(crate::ports::NoCache));
    let q = query("value", Some("group"));
    let renders = AtomicU64::new(0);
    let (open, gate) = async_channel::bounded::<()>(1);
    let render = || async {
        renders.fetch_add(1, Ordering::SeqCst);
        // Held until every request has asked.
        let _ = gate.recv().await;
        let answer = service.aggregate(&q).await?;
        Ok::<_, DatasetError>(serde_json::to_vec(&answer).unwrap())
    };
    let requests = (0..8).map(|_| service.rendered(&q.dataset, "aggregate", &q, render));
    let opener = async {
        futures_lite::future::yield_now().await;
        open.close();
    };
    let (answers, ()) = block_on(futures_lite::future::zip(
        futures_util::future::join_all(requests),
        opener,
    ));
    assert_eq!(renders.load(Ordering::SeqCst), 1, "rendered once");
    let expected = serde_json::to_vec(&answer()).unwrap();
    assert!(answers.into_iter().all(|a| a.unwrap() == expected));
}
