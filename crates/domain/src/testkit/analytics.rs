//! The analytics suite: the adapter's [`crate::ports::Analytics`] engine (the
//! `analytics` of [`Stores`]) over records imported through the adapter's own stores,
//! against the in-process reference engine and against values computed here, to 1e-9.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::Stores;
use super::ingest::apply_document;
use super::support::{SIMPLE, name};
use super::workloads::{ACCOUNTS, EXAM_RESULTS};
use crate::analytics::{Aggregate, InProcessAnalytics};
use crate::model::DatasetName;
use crate::ports::{Analytics, AnalyticsQuery, GroupAggregate, TopQuery};

/// The fractions every aggregate here asks for: the ends, the quartiles, and fractions
/// that fall between ranks.
const FRACTIONS: [f64; 7] = [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0];

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// Asserts two answers are the same groups with the same statistics to 1e-9.
fn assert_same(actual: &[GroupAggregate], expected: &[GroupAggregate], what: &str) {
    let groups = |a: &[GroupAggregate]| a.iter().map(|g| g.group.clone()).collect::<Vec<_>>();
    assert_eq!(groups(actual), groups(expected), "{what}: groups");
    for (a, e) in actual.iter().zip(expected) {
        assert_eq!(a.excluded, e.excluded, "{what}: excluded in {:?}", a.group);
        match (&a.aggregate, &e.aggregate) {
            (None, None) => {}
            (Some(a_), Some(e_)) => {
                assert_eq!(a_.count, e_.count, "{what}: count of {:?}", a.group);
                let pairs = [
                    ("sum", a_.sum, e_.sum),
                    ("mean", a_.mean, e_.mean),
                    ("stddev", a_.stddev, e_.stddev),
                    ("min", a_.min, e_.min),
                    ("max", a_.max, e_.max),
                ];
                for (name, x, y) in pairs {
                    assert!(close(x, y), "{what}: {name} of {:?}: {x} vs {y}", a.group);
                }
                assert_eq!(a_.percentiles.len(), e_.percentiles.len());
                for ((fa, x), (fe, y)) in a_.percentiles.iter().zip(&e_.percentiles) {
                    assert_eq!(fa, fe);
                    assert!(close(*x, *y), "{what}: p{fa} of {:?}: {x} vs {y}", a.group);
                }
            }
            (a_, e_) => panic!("{what}: {:?}: {a_:?} vs {e_:?}", a.group),
        }
    }
}

fn question(dataset: &DatasetName, measure: &str, group_by: Option<&str>) -> AnalyticsQuery {
    AnalyticsQuery {
        dataset: dataset.clone(),
        measure: measure.into(),
        group_by: group_by.map(str::to_owned),
        filters: BTreeMap::new(),
        percentiles: FRACTIONS.to_vec(),
    }
}

/// The adapter's answer, checked against the reference engine's on the same store.
async fn aggregate(s: &Stores, query: &AnalyticsQuery) -> Vec<GroupAggregate> {
    let actual = s.analytics.aggregate(query).await.expect("aggregate");
    let reference = InProcessAnalytics::new(s.records.clone());
    let expected = reference.aggregate(query).await.expect("reference");
    assert_same(&actual, &expected, "adapter vs reference engine");
    actual
}

fn group(name: Option<&str>, values: &[f64], excluded: u64) -> GroupAggregate {
    GroupAggregate {
        group: name.map(str::to_owned),
        aggregate: Aggregate::compute(values.to_vec(), &FRACTIONS).expect("fractions"),
        excluded,
    }
}

/// Groups of one value, of equal values and of spread values, grouped, filtered and
/// whole; a selection matching nothing has no groups.
pub async fn aggregates_match_the_reference_and_known_values(s: Stores) {
    let body = "id,group,value\n\
                a1,a,1\na2,a,2\na3,a,3.5\na4,a,10\n\
                b1,b,-5\n\
                c1,c,7\nc2,c,7\nc3,c,7\n";
    apply_document(&s, "stats", SIMPLE, body.as_bytes()).await;
    let ds = name("stats");
    let by_group = aggregate(&s, &question(&ds, "value", Some("group"))).await;
    let expected = [
        group(Some("a"), &[1.0, 2.0, 3.5, 10.0], 0),
        group(Some("b"), &[-5.0], 0),
        group(Some("c"), &[7.0, 7.0, 7.0], 0),
    ];
    assert_same(&by_group, &expected, "by group");
    let b = by_group[1].aggregate.as_ref().expect("one value");
    assert_eq!((b.count, b.stddev, b.min, b.max), (1, 0.0, -5.0, -5.0));
    let c = by_group[2].aggregate.as_ref().expect("equal values");
    assert_eq!((c.stddev, c.percentile(0.9)), (0.0, Some(7.0)));

    let whole = aggregate(&s, &question(&ds, "value", None)).await;
    let all = [1.0, 2.0, 3.5, 10.0, -5.0, 7.0, 7.0, 7.0];
    assert_same(&whole, &[group(None, &all, 0)], "whole dataset");

    let mut filtered = question(&ds, "value", Some("group"));
    filtered.filters.insert("group".into(), "a".into());
    let only_a = aggregate(&s, &filtered).await;
    assert_same(&only_a, &expected[..1], "filtered");

    filtered.filters.insert("group".into(), "z".into());
    assert!(aggregate(&s, &filtered).await.is_empty(), "no such group");
    let other = DatasetName::parse("nothing-here").expect("name");
    assert!(
        aggregate(&s, &question(&other, "value", None))
            .await
            .is_empty()
    );
}

/// A result whose available marks are zero has no percentage: it is excluded from that
/// measure and counted, and a group of only such results has no aggregate, while its
/// obtained marks still count.
pub async fn an_undefined_ratio_is_excluded_and_counted(s: Stores) {
    let result = |test: &str, student: &str, available: u32, obtained: u32| {
        format!(
            "<mcq-test-result><student-number>{student}</student-number>\
             <test-id>{test}</test-id>\
             <summary-marks available=\"{available}\" obtained=\"{obtained}\"/></mcq-test-result>"
        )
    };
    let body = [
        result("1", "001", 20, 10),
        result("1", "002", 0, 0),
        result("1", "003", 10, 10),
        result("2", "001", 0, 0),
    ]
    .concat();
    let body = format!("<mcq-test-results>{body}</mcq-test-results>");
    let processed = apply_document(&s, "zeros", EXAM_RESULTS.contract, body.as_bytes()).await;
    assert_eq!(processed.report.seen, 4);
    let ds = name("zeros");
    let percent = aggregate(&s, &question(&ds, "percent", Some("test_id"))).await;
    let expected = [
        group(Some("1"), &[50.0, 100.0], 1),
        GroupAggregate {
            group: Some("2".into()),
            aggregate: None,
            excluded: 1,
        },
    ];
    assert_same(&percent, &expected, "percent");
    let obtained = aggregate(&s, &question(&ds, "obtained", Some("test_id"))).await;
    let expected = [
        group(Some("1"), &[10.0, 0.0, 10.0], 0),
        group(Some("2"), &[0.0], 0),
    ];
    assert_same(&obtained, &expected, "obtained");
}

/// Thousands of values with long fractions, in uneven groups: sums, deviations and
/// interpolated percentiles agree to 1e-9.
pub async fn many_values_agree_to_1e_9(s: Stores) {
    let mut body = String::from("id,group,value\n");
    let mut expected: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for i in 0..3_000_u32 {
        // xorshift: deterministic, spread over several magnitudes.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let group = format!("g{}", x % 7);
        #[allow(clippy::cast_precision_loss, reason = "test data")]
        let value = ((x >> 11) as f64 / (1u64 << 53) as f64 - 0.3) * 10f64.powi((i % 5) as i32);
        let value: f64 = format!("{value:.9}").parse().expect("number");
        let _ = writeln!(body, "r{i},{group},{value:.9}");
        expected.entry(group).or_default().push(value);
    }
    apply_document(&s, "many", SIMPLE, body.as_bytes()).await;
    let ds = name("many");
    let actual = aggregate(&s, &question(&ds, "value", Some("group"))).await;
    let expected: Vec<_> = expected.iter().map(|(g, v)| group(Some(g), v, 0)).collect();
    assert_same(&actual, &expected, "computed here");
}

/// The account-update challenge's known answer: keeping the highest version per
/// account, the highest-token account of each subtype; and ties broken by key.
pub async fn top_k_gives_the_known_accounts_per_subtype(s: Stores) {
    let (_, _, body) = ACCOUNTS.documents[0];
    apply_document(&s, "accounts", ACCOUNTS.contract, body).await;
    let ds = name("accounts");
    let query = TopQuery {
        dataset: ds.clone(),
        measure: "tokens".into(),
        group_by: "subtype".into(),
        filters: BTreeMap::new(),
        k: 1,
    };
    let top = s.analytics.top(&query).await.expect("top");
    let got: Vec<(String, String, f64)> = top
        .iter()
        .map(|t| {
            let id = t.record.key.canonical();
            (t.group.clone(), id.chars().take(8).collect(), t.score)
        })
        .collect();
    let known = [
        ("account", "gkDF8QaR", 517.0),
        ("auction", "kbtvQBEr", 271.0),
        ("auctionData", "cYcekbx6", 960.0),
        ("escrow", "A72KnHfa", 880.0),
        ("masterEdition", "U5kG5d2y", 772.0),
        ("metadata", "ZBTDeX9W", 696.0),
        ("mint", "6BhkGCMV", 330.0),
    ];
    let known: Vec<_> = known
        .iter()
        .map(|(g, id, t)| ((*g).to_owned(), (*id).to_owned(), *t))
        .collect();
    assert_eq!(got, known);
    let reference = InProcessAnalytics::new(s.records.clone());
    for k in [1, 3, 100] {
        let query = TopQuery { k, ..query.clone() };
        let actual = s.analytics.top(&query).await.expect("top");
        assert_eq!(
            actual,
            reference.top(&query).await.expect("reference"),
            "k={k}"
        );
    }

    let body = "id,group,value\nb,x,5\na,x,5\nc,x,9\nd,x,1\ne,y,2\n";
    apply_document(&s, "ties", SIMPLE, body.as_bytes()).await;
    let query = TopQuery {
        dataset: name("ties"),
        measure: "value".into(),
        group_by: "group".into(),
        filters: BTreeMap::from([("group".to_owned(), "x".to_owned())]),
        k: 3,
    };
    let top = s.analytics.top(&query).await.expect("top");
    let keys: Vec<_> = top.iter().map(|t| t.record.key.canonical()).collect();
    assert_eq!(keys, ["c", "a", "b"], "highest first, ties by key");
    assert!(top.iter().all(|t| t.group == "x"));
}

/// Filters on another dimension than the one grouped by, a filter without grouping,
/// and both on the same dimension, over two dimensions: the adapter agrees with the
/// reference on each.
pub async fn filters_on_other_dimensions_agree(s: Stores) {
    let (_, _, body) = ACCOUNTS.documents[0];
    apply_document(&s, "accounts", ACCOUNTS.contract, body).await;
    let ds = name("accounts");
    let mut by_subtype = question(&ds, "tokens", Some("subtype"));
    let all = aggregate(&s, &by_subtype).await;
    assert_eq!(all.len(), 7);
    let programs: Vec<String> = s
        .records
        .scan(
            &ds,
            &crate::ports::RecordScan {
                limit: 1000,
                ..Default::default()
            },
        )
        .await
        .expect("scan")
        .iter()
        .filter_map(|r| r.dimensions.get("program").map(str::to_owned))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert!(!programs.is_empty());
    for program in &programs {
        by_subtype.filters.insert("program".into(), program.clone());
        assert!(!aggregate(&s, &by_subtype).await.is_empty(), "{program}");
    }
    let mut one = question(&ds, "tokens", None);
    one.filters.insert("subtype".into(), "mint".into());
    let mint = aggregate(&s, &one).await;
    assert_eq!(mint.len(), 1);
    assert_eq!(mint[0].group, None);
    one.filters.insert("program".into(), programs[0].clone());
    aggregate(&s, &one).await;
    let mut same = question(&ds, "tokens", Some("subtype"));
    same.filters.insert("subtype".into(), "mint".into());
    let grouped = aggregate(&s, &same).await;
    assert_eq!(grouped.len(), 1);
    assert_eq!(grouped[0].group.as_deref(), Some("mint"));
    assert_eq!(grouped[0].aggregate, mint[0].aggregate);
}

/// A record whose state changes moves between groups and changes its measure: no
/// answer counts its old state.
pub async fn a_changed_record_leaves_its_old_group(s: Stores) {
    let ds = name("moves");
    apply_document(
        &s,
        "moves",
        SIMPLE,
        b"id,group,value\na1,a,1\na2,a,2\nb1,b,5\n",
    )
    .await;
    let service = super::support::service(&s, 16);
    super::support::receive(&service, &ds, b"id,group,value\na1,b,10\n", None).await;
    super::support::drain(&service).await;
    let by_group = aggregate(&s, &question(&ds, "value", Some("group"))).await;
    let expected = [
        group(Some("a"), &[2.0], 0),
        group(Some("b"), &[5.0, 10.0], 0),
    ];
    assert_same(&by_group, &expected, "after the move");
    let whole = aggregate(&s, &question(&ds, "value", None)).await;
    assert_same(&whole, &[group(None, &[2.0, 5.0, 10.0], 0)], "whole");
}
