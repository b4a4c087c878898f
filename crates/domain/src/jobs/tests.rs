use chrono::{TimeZone as _, Utc};

use super::rollup::tests_support::{apply_all, change};

#[test]
fn a_rollup_ends_where_a_fresh_aggregate_of_the_latest_state_is() {
    // Three imports: two records of test 1, then one moves to test 2 with a new value,
    // then a record of test 2 loses its measure.
    let t = |s| Utc.timestamp_opt(s, 0).single().expect("time");
    let changes = vec![
        change(1, "a", t(1), "k1", Some(("1", 50.0)), None),
        change(2, "a", t(1), "k2", Some(("1", 70.0)), None),
        change(3, "b", t(2), "k1", Some(("2", 90.0)), Some(("1", 50.0))),
        change(4, "c", t(3), "k3", Some(("2", 10.0)), None),
        change(5, "c", t(3), "k3", None, Some(("2", 10.0))),
    ];
    let points = apply_all(&changes, 2);
    let at = |import: &str, group: &str| {
        points
            .iter()
            .rfind(|p| p.import.as_str().ends_with(import) && p.group == group)
            .unwrap_or_else(|| panic!("a point for {import}/{group}"))
    };
    assert_eq!(at("a", "1").count, 2);
    assert_eq!(at("a", "1").mean, Some(60.0));
    assert_eq!(at("b", "1").count, 1, "k1 left test 1");
    assert_eq!(at("b", "1").mean, Some(70.0));
    assert_eq!(at("b", "2").mean, Some(90.0));
    assert_eq!(at("c", "2").count, 1, "k3 came and lost its measure");
    assert_eq!(at("c", "2").stddev, Some(0.0));
    assert!(
        !points
            .iter()
            .any(|p| p.import.as_str().ends_with('b') && p.group == "3")
    );
}

#[test]
fn pages_of_any_size_give_the_same_series() {
    let t = |s| Utc.timestamp_opt(s, 0).single().expect("time");
    let mut changes = Vec::new();
    for i in 0..40_i64 {
        let import = ["a", "b", "c"][usize::try_from(i / 15).expect("small")];
        let group = if i % 3 == 0 { "x" } else { "y" };
        #[allow(clippy::cast_precision_loss)]
        let value = (i * 7 % 13) as f64 + 0.1;
        let previous = (i >= 20).then_some((group, value - 1.0));
        change_into(
            &mut changes,
            i + 1,
            import,
            t(i / 15),
            &format!("k{}", i % 20),
            Some((group, value)),
            previous,
        );
    }
    let whole = apply_all(&changes, 1000);
    for page in [1, 2, 7, 15] {
        assert_eq!(apply_all(&changes, page), whole, "pages of {page}");
    }
}

fn change_into(
    into: &mut Vec<crate::ports::RecordChange>,
    seq: i64,
    import: &str,
    at: chrono::DateTime<Utc>,
    key: &str,
    now: Option<(&str, f64)>,
    before: Option<(&str, f64)>,
) {
    into.push(change(seq, import, at, key, now, before));
}

#[test]
fn imports_written_side_by_side_give_one_point_per_import_and_group() {
    // PostgreSQL numbers the changes of two imports committing together in turn.
    let t = |s| Utc.timestamp_opt(s, 0).single().expect("time");
    let changes = vec![
        change(1, "a", t(1), "k1", Some(("1", 10.0)), None),
        change(2, "b", t(1), "k2", Some(("1", 20.0)), None),
        change(3, "a", t(1), "k3", Some(("1", 30.0)), None),
    ];
    let page = super::rollup::tests_support::apply_page(&changes);
    let keys: Vec<(&str, &str)> = page
        .iter()
        .map(|p| (p.import.as_str(), p.group.as_str()))
        .collect();
    assert_eq!(keys, [("import-b", "1"), ("import-a", "1")], "{page:?}");
    assert_eq!(page[1].count, 3, "a's point as the page left it");
}

#[test]
fn a_deleted_record_leaves_its_group_and_one_created_again_joins_it_once() {
    use super::rollup::tests_support::deletion;
    let t = |s| Utc.timestamp_opt(s, 0).single().expect("time");
    let changes = vec![
        change(1, "a", t(1), "k1", Some(("1", 40.0)), None),
        change(2, "a", t(1), "k2", Some(("1", 80.0)), None),
        deletion(3, "d", t(2), "k1", ("1", 40.0)),
        // Created again: the store gives no previous state after a deletion.
        change(4, "e", t(3), "k1", Some(("1", 20.0)), None),
    ];
    let points = apply_all(&changes, 2);
    let at = |import: &str| {
        points
            .iter()
            .rfind(|p| p.import.as_str().ends_with(import) && p.group == "1")
            .unwrap_or_else(|| panic!("a point for {import}"))
    };
    assert_eq!((at("a").count, at("a").mean), (2, Some(60.0)));
    assert_eq!((at("d").count, at("d").mean), (1, Some(80.0)), "k1 left");
    assert_eq!((at("e").count, at("e").mean), (2, Some(50.0)), "k1 is back");
}
