//! `/v2` over HTTP (ADR 13): cursor pages that stay stable while records are added,
//! sparse fieldsets, several measures and any percentiles per aggregate; and v1
//! answering as before beside it.

use std::collections::BTreeSet;

use serde_json::Value;

use super::support::{TestApp, example};

fn customers(ids: impl IntoIterator<Item = u32>) -> Vec<u8> {
    let mut csv = String::from("id,first_name,last_name,email,phone\n");
    for i in ids {
        csv.push_str(&format!("c-{i:03},First{i},Last{i},c{i}@example.com,\n"));
    }
    csv.into_bytes()
}

/// Every page of `path` from its first, following `next_cursor`.
async fn pages(app: &TestApp, path: &str) -> Vec<Value> {
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            None => path.to_owned(),
            Some(c) => format!("{path}&cursor={c}"),
        };
        let page = app.get(&url).await;
        assert_eq!(page.status, 200, "{url}: {}", page.body);
        cursor = page.body["next_cursor"].as_str().map(str::to_owned);
        pages.push(page.body);
        if cursor.is_none() {
            return pages;
        }
        assert!(pages.len() < 100, "the cursor must end");
    }
}

fn keys(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].as_str().unwrap().to_owned())
        .collect()
}

pub async fn v2_pages_with_cursors_that_stay_stable_under_inserts(app: &TestApp) {
    assert_eq!(
        app.create_example("customers", "customers.json")
            .await
            .status,
        201
    );
    let first = app
        .import("customers", "text/csv", customers((0..50).step_by(2)))
        .await;
    assert_eq!(first.body["report"]["inserted"], 25, "{}", first.body);

    // Page 1, then records land before and after the cursor, then the rest.
    let page = app.get("/v2/datasets/customers/records?limit=10").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.body["total"], 25);
    let mut seen = keys(&page.body);
    assert_eq!(seen.first().map(String::as_str), Some("c-000"));
    let cursor = page.body["next_cursor"]
        .as_str()
        .expect("more pages")
        .to_owned();
    let added = app
        .import("customers", "text/csv", customers([1, 3, 49, 51]))
        .await;
    assert_eq!(added.body["report"]["inserted"], 4, "{}", added.body);
    let mut cursor = Some(cursor);
    while let Some(c) = cursor {
        let page = app
            .get(&format!(
                "/v2/datasets/customers/records?limit=10&cursor={c}"
            ))
            .await;
        assert_eq!(page.status, 200, "{}", page.body);
        seen.extend(keys(&page.body));
        cursor = page.body["next_cursor"].as_str().map(str::to_owned);
    }
    let originals: Vec<String> = (0..50).step_by(2).map(|i| format!("c-{i:03}")).collect();
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no record twice: {seen:?}");
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(sorted, seen, "in key order");
    for key in &originals {
        assert!(
            seen.contains(key),
            "{key} was there all along and is listed"
        );
    }
    assert!(
        !seen.contains(&"c-001".to_owned()),
        "added before the cursor: not listed"
    );
    assert!(seen.contains(&"c-049".to_owned()) && seen.contains(&"c-051".to_owned()));
    assert_eq!(seen.len(), 27);
    // Imports page newest first, before the last one seen: one arriving meanwhile
    // goes on the front, and the pages already begun carry on unshifted.
    let newest = app
        .get("/v2/datasets/customers/imports?limit=1&fields=id")
        .await;
    assert_eq!(
        newest.body["items"][0]["id"], added.body["id"],
        "{}",
        newest.body
    );
    let cursor = newest.body["next_cursor"].as_str().unwrap().to_owned();
    let later = app.import("customers", "text/csv", customers([99])).await;
    assert_eq!(later.status, 200);
    let older = app
        .get(&format!(
            "/v2/datasets/customers/imports?limit=1&cursor={cursor}"
        ))
        .await;
    assert_eq!(
        older.body["items"][0]["id"], first.body["id"],
        "{}",
        older.body
    );
    assert_eq!(older.body["items"][0]["status"], "completed");
    assert_eq!(older.body["next_cursor"], Value::Null);
    // The offset pages of v1 are unchanged beside it.
    let v1 = app
        .get("/v1/datasets/customers/records?limit=3&offset=1")
        .await;
    assert_eq!(v1.body["offset"], 1);
    assert_eq!(v1.body["records"][0]["key"], "c-001");

    // Sparse fieldsets, and refusals naming the parameter.
    let sparse = app
        .get("/v2/datasets/customers/records?limit=2&fields=key,attributes")
        .await;
    for item in sparse.body["items"].as_array().unwrap() {
        let members: BTreeSet<&str> = item
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(members, BTreeSet::from(["attributes", "key"]), "{item}");
    }
    let unknown = app
        .get("/v2/datasets/customers/records?fields=key,colour")
        .await;
    let problem = unknown.problem(400, "bad_request");
    assert_eq!(problem["errors"][0]["field"], "fields");
    assert!(
        problem["detail"].as_str().unwrap().contains("colour"),
        "{problem}"
    );
    let forged = app.get("/v2/datasets/customers/records?cursor=zz").await;
    assert_eq!(
        forged.problem(400, "bad_request")["errors"][0]["field"],
        "cursor"
    );

    // Datasets page by name; a cursor of one list is refused by another.
    assert_eq!(
        app.create_example("accounts", "accounts.json").await.status,
        201
    );
    assert_eq!(
        app.create_example("exam-results", "exam-results.json")
            .await
            .status,
        201
    );
    let all = pages(app, "/v2/datasets?limit=2&fields=name").await;
    assert_eq!(all.len(), 2);
    let names: Vec<Value> = all
        .iter()
        .flat_map(|p| p["items"].as_array().unwrap().clone())
        .collect();
    assert_eq!(
        names,
        serde_json::json!([{"name": "accounts"}, {"name": "customers"}, {"name": "exam-results"}])
            .as_array()
            .unwrap()
            .clone()
    );
    let stray = app.get("/v2/datasets?colour=red").await;
    assert_eq!(
        stray.problem(400, "bad_request")["errors"][0]["field"],
        "colour"
    );
    let dataset_cursor = all[0]["next_cursor"].as_str().unwrap();
    let mixed = app
        .get(&format!(
            "/v2/datasets/customers/records?cursor={dataset_cursor}"
        ))
        .await;
    mixed.problem(400, "bad_request");
}

pub async fn v2_aggregates_several_measures_with_any_percentiles(app: &TestApp) {
    assert_eq!(
        app.create_example("exam-results", "exam-results.json")
            .await
            .status,
        201
    );
    let sample = example("data", "markr-sample-results.xml");
    assert_eq!(
        app.import("exam-results", "text/xml+markr", sample)
            .await
            .status,
        200
    );

    let path = "/v2/datasets/exam-results/aggregate?measures=percent,obtained\
                &percentiles=0.1,0.5,0.99&group_by=test_id";
    let answer = app.get(path).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        answer.body["measures"],
        serde_json::json!(["percent", "obtained"])
    );
    assert_eq!(
        answer.body["percentiles"],
        serde_json::json!([0.1, 0.5, 0.99])
    );
    let group = &answer.body["groups"][0];
    assert_eq!(group["group"], "9863");
    let v1 = app
        .get("/v1/datasets/exam-results/aggregate?measure=percent&group_by=test_id")
        .await;
    let v1 = &v1.body["groups"][0];
    let percent = &group["measures"]["percent"];
    for field in ["count", "sum", "mean", "stddev", "min", "max", "excluded"] {
        assert_eq!(percent[field], v1[field], "{field} as v1 gives it");
    }
    let fractions: Vec<f64> = percent["percentiles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["fraction"].as_f64().unwrap())
        .collect();
    assert_eq!(fractions, [0.1, 0.5, 0.99]);
    assert_eq!(percent["percentiles"][1]["value"], v1["p50"]);
    assert_eq!(group["measures"]["obtained"]["count"], 81);
    assert!(group["measures"]["obtained"]["max"].as_f64().unwrap() <= 20.0);

    let sparse = app
        .get("/v2/datasets/exam-results/aggregate?measures=percent&fields=count,mean")
        .await;
    let statistics = &sparse.body["groups"][0]["measures"]["percent"];
    assert_eq!(
        statistics.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["count", "mean"]
    );
    assert_eq!(
        sparse.body["groups"][0]["group"],
        Value::Null,
        "one group of all"
    );

    for (bad, field) in [
        ("measures=percent&percentiles=1.5", "percentiles"),
        ("measures=percent&percentiles=0.5,,0.9", "percentiles"),
        ("percentiles=0.5", "measures"),
        ("measures=nope", "measure"),
        ("measures=percent&group_by=colour", "colour"),
    ] {
        let answer = app
            .get(&format!("/v2/datasets/exam-results/aggregate?{bad}"))
            .await;
        let problem = answer.problem(400, "bad_request");
        assert_eq!(problem["errors"][0]["field"], field, "{bad}: {problem}");
    }

    // Conflicts page by position: the pages together are v1's list.
    let all = pages(app, "/v2/datasets/exam-results/conflicts?limit=7").await;
    let v2: Vec<Value> = all
        .iter()
        .flat_map(|p| p["items"].as_array().unwrap().clone())
        .collect();
    let v1 = app
        .get("/v1/datasets/exam-results/conflicts?limit=1000")
        .await;
    assert_eq!(&Value::Array(v2), &v1.body["conflicts"]);
    assert_eq!(all.len(), 3, "19 conflicts in pages of 7");

    let spec = app.get("/openapi/v2.json").await;
    assert_eq!(spec.status, 200);
    assert!(spec.body["paths"]["/v2/datasets/{dataset}/aggregate"]["get"].is_object());
    let fields = &spec.body["components"]["schemas"]["RecordResponseFields"];
    assert!(fields["properties"]["key"].is_object() && fields.get("required").is_none());
}
