//! Analytics over HTTP: the Markr compatibility routes checked against statistics
//! computed here from the documents themselves, the `/v1` aggregate and top-k routes,
//! and answers that change as soon as an import commits.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::support::{TestApp, example};

/// One `<mcq-test-result>`: (test id, student number, available, obtained).
type Scan = (String, String, f64, f64);

fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text.find(start).expect(start) + start.len();
    let to = text[from..].find(end).expect(end) + from;
    &text[from..to]
}

/// The results of a Markr document, read with plain string search.
fn scans(document: &[u8]) -> Vec<Scan> {
    let text = std::str::from_utf8(document).unwrap();
    text.split("<mcq-test-result ")
        .skip(1)
        .map(|r| {
            let marks = between(r, "<summary-marks", ">");
            (
                between(r, "<test-id>", "<").to_owned(),
                between(r, "<student-number>", "<").to_owned(),
                between(marks, " available=\"", "\"").parse().unwrap(),
                between(marks, " obtained=\"", "\"").parse().unwrap(),
            )
        })
        .collect()
}

/// Percentages per test after merging rescans: per (test, student) the highest
/// available and the highest obtained marks, each kept on its own; a student number
/// is text.
fn percentages(documents: &[&[u8]]) -> BTreeMap<String, Vec<f64>> {
    let mut best: BTreeMap<(String, String), (f64, f64)> = BTreeMap::new();
    for (test, student, available, obtained) in documents.iter().flat_map(|d| scans(d)) {
        let entry = best.entry((test, student)).or_insert((available, obtained));
        entry.0 = entry.0.max(available);
        entry.1 = entry.1.max(obtained);
    }
    let mut tests: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for ((test, _), (available, obtained)) in best {
        let values = tests.entry(test).or_default();
        if available > 0.0 {
            values.push(obtained / available * 100.0);
        }
    }
    tests
}

/// The statistics the Markr route must give, by their textbook definitions.
fn statistics(values: &[f64]) -> BTreeMap<&'static str, f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len() as f64;
    let mean = sorted.iter().sum::<f64>() / n;
    let variance = sorted.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    let percentile = |p: f64| {
        let rank = p * (n - 1.0);
        let (low, high) = (rank.floor() as usize, rank.ceil() as usize);
        sorted[low] + (sorted[high] - sorted[low]) * (rank - rank.floor())
    };
    BTreeMap::from([
        ("mean", mean),
        ("stddev", variance.sqrt()),
        ("min", sorted[0]),
        ("max", sorted[sorted.len() - 1]),
        ("p25", percentile(0.25)),
        ("p50", percentile(0.5)),
        ("p75", percentile(0.75)),
        ("count", n),
    ])
}

fn assert_aggregate(answer: &Value, expected: &BTreeMap<&'static str, f64>, what: &str) {
    let fields: Vec<&String> = answer.as_object().expect("an object").keys().collect();
    assert_eq!(
        fields.len(),
        8,
        "{what}: exactly the Markr fields: {answer}"
    );
    for (field, value) in expected {
        let got = answer[*field]
            .as_f64()
            .unwrap_or_else(|| panic!("{what}: {field}"));
        // The Markr routes answer to 2 decimals.
        let value = (value * 100.0).round() / 100.0;
        assert!(
            (got - value).abs() < 1e-9,
            "{what}: {field} is {got}, expected {value}"
        );
    }
}

async fn markr_import(app: &TestApp, body: Vec<u8>) -> super::support::Answer {
    app.post_bytes("/import", Some("text/xml+markr"), body)
        .await
}

/// The brief's sample and the example documents, posted as the scanners post them:
/// every field of every test's aggregate matches what the documents say; the brief's
/// published answer for test 9863 holds; bad documents are refused whole.
pub async fn markr_documents_give_the_aggregates_the_documents_imply(app: &TestApp) {
    let sample = example("data", "markr-sample-results.xml");
    let results = example("data", "exam-results.xml");
    for document in [&sample, &results] {
        let done = markr_import(app, document.clone()).await;
        assert_eq!(done.status, 200, "{}", done.body);
        assert_eq!(done.body, json!({"imported": scans(document).len()}));
    }
    let expected = percentages(&[&sample, &results]);
    for (test, values) in &expected {
        let answer = app.get(&format!("/results/{test}/aggregate")).await;
        if values.is_empty() {
            answer.problem(404, "not_found");
            continue;
        }
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_aggregate(&answer.body, &statistics(values), test);
    }
    // Published with the brief, to 2 decimals: answered exactly so.
    let known = app.get("/results/9863/aggregate").await.body;
    assert_eq!(
        known,
        json!({"mean": 50.8, "stddev": 9.92, "min": 30.0, "max": 75.0,
               "p25": 45.0, "p50": 50.0, "p75": 55.0, "count": 81})
    );
    assert!(
        expected["5678"].is_empty(),
        "the example's zero-available test"
    );
    app.get("/results/5678/aggregate")
        .await
        .problem(404, "not_found");
    app.get("/results/0000/aggregate")
        .await
        .problem(404, "not_found");

    let revision = app.get("/v1/datasets/exam-results").await.body["revision"].clone();
    let invalid = markr_import(app, example("data", "exam-results-invalid.xml")).await;
    let problem = invalid.problem(400, "bad_request");
    let error = problem["error"].as_str().expect("an error member");
    assert!(error.contains("result 2"), "names the result: {error}");
    assert!(
        error.contains("student_number") || error.contains("obtained"),
        "names the field: {error}"
    );
    let wrong_root = b"<results><mcq-test-result><test-id>1</test-id></mcq-test-result></results>";
    let refused = markr_import(app, wrong_root.to_vec()).await;
    let error = refused.problem(400, "bad_request")["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(error.contains("mcq-test-results"), "{error}");
    let dataset = app.get("/v1/datasets/exam-results").await.body;
    assert_eq!(dataset["revision"], revision, "nothing stored from them");
    assert_eq!(
        app.get("/results/4000/aggregate").await.status,
        404,
        "Ada's valid result in the rejected document was not kept"
    );

    let json = app
        .post_bytes("/import", Some("application/xml"), sample.clone())
        .await;
    json.problem(415, "unsupported_media_type");
    app.post_bytes("/import", None, sample)
        .await
        .problem(415, "unsupported_media_type");
}

fn result(test: &str, student: &str, available: u32, obtained: u32) -> String {
    format!(
        "<mcq-test-result><student-number>{student}</student-number><test-id>{test}</test-id>\
         <summary-marks available=\"{available}\" obtained=\"{obtained}\"/></mcq-test-result>"
    )
}

fn document(results: &[String]) -> Vec<u8> {
    format!("<mcq-test-results>{}</mcq-test-results>", results.concat()).into_bytes()
}

/// An answer is never older than the last committed import: each import into a test
/// changes its next aggregate, through the Markr route and `/v1` alike.
pub async fn an_import_changes_the_next_aggregate_at_once(app: &TestApp) {
    let first = document(&[result("77", "001", 10, 5), result("77", "002", 10, 10)]);
    assert_eq!(markr_import(app, first).await.status, 200);
    let v1 = "/v1/datasets/exam-results/aggregate?measure=percent&group_by=test_id&test_id=77";
    for _ in 0..2 {
        let answer = app.get("/results/77/aggregate").await.body;
        assert_eq!(
            (answer["count"].clone(), answer["mean"].clone()),
            (json!(2), json!(75.0))
        );
        assert_eq!(app.get(v1).await.body["groups"][0]["mean"], 75.0);
    }
    let rescan = document(&[result("77", "001", 10, 9), result("77", "003", 10, 0)]);
    assert_eq!(markr_import(app, rescan).await.status, 200);
    let answer = app.get("/results/77/aggregate").await.body;
    assert_eq!(answer["count"], 3);
    assert_eq!(answer["mean"], 63.33, "to 2 decimals (190 / 3)");
    assert_eq!(answer["min"], 0.0);
    let group = &app.get(v1).await.body["groups"][0];
    assert_eq!(
        (group["count"].clone(), group["max"].clone()),
        (json!(3), json!(100.0))
    );
}

/// `/v1/…/aggregate` groups and filters any dataset; `/v1/…/top` gives the account
/// challenge's known answer; questions about names the contract lacks are refused
/// naming them.
pub async fn aggregate_and_top_answer_and_refuse_bad_questions(app: &TestApp) {
    app.create_example("accounts", "accounts.json").await;
    let done = app
        .import(
            "accounts",
            "application/json",
            example("data", "account-updates.json"),
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.body);

    let top = app
        .get("/v1/datasets/accounts/top?measure=tokens&group_by=subtype&k=1")
        .await;
    assert_eq!(top.status, 200, "{}", top.body);
    let got: Vec<(String, String, f64)> = top.body["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            let best = &g["records"][0];
            assert_eq!(best["rank"], 1);
            let id: String = best["record"]["key"]
                .as_str()
                .unwrap()
                .chars()
                .take(8)
                .collect();
            (
                g["group"].as_str().unwrap().to_owned(),
                id,
                best["score"].as_f64().unwrap(),
            )
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
        .map(|(g, i, t)| (g.to_string(), i.to_string(), *t))
        .collect();
    assert_eq!(got, known);
    let three = app
        .get("/v1/datasets/accounts/top?measure=tokens&group_by=subtype&subtype=mint&k=3")
        .await
        .body;
    let groups = three["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "filtered to one subtype");
    let scores: Vec<f64> = groups[0]["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["score"].as_f64().unwrap())
        .collect();
    assert!(
        scores.windows(2).all(|w| w[0] >= w[1]),
        "highest first: {scores:?}"
    );

    let by_subtype = app
        .get("/v1/datasets/accounts/aggregate?measure=tokens&group_by=subtype")
        .await;
    assert_eq!(by_subtype.status, 200, "{}", by_subtype.body);
    let groups = by_subtype.body["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 7);
    let total: u64 = groups.iter().map(|g| g["count"].as_u64().unwrap()).sum();
    assert_eq!(total, 12, "one latest state per account");
    let whole = app
        .get("/v1/datasets/accounts/aggregate?measure=tokens")
        .await;
    assert_eq!(whole.body["groups"][0]["count"], 12);
    assert_eq!(whole.body["groups"][0]["group"], Value::Null);
    let none = app
        .get("/v1/datasets/accounts/aggregate?measure=tokens&subtype=nothing")
        .await;
    assert_eq!(none.body["groups"], json!([]));

    let bad = [
        ("/v1/datasets/accounts/aggregate", "measure"),
        ("/v1/datasets/accounts/aggregate?measure=token", "measure"),
        (
            "/v1/datasets/accounts/aggregate?measure=tokens&group_by=kind",
            "kind",
        ),
        (
            "/v1/datasets/accounts/aggregate?measure=tokens&colour=red",
            "colour",
        ),
        ("/v1/datasets/accounts/top?measure=tokens", "group_by"),
        (
            "/v1/datasets/accounts/top?measure=tokens&group_by=subtype&k=0",
            "k",
        ),
        (
            "/v1/datasets/accounts/top?measure=tokens&group_by=subtype&k=many",
            "k",
        ),
        (
            "/v1/datasets/accounts/top?measure=tokens&group_by=subtype&k=1001",
            "k",
        ),
    ];
    for (path, field) in bad {
        let answer = app.get(path).await;
        let problem = answer.problem(400, "bad_request");
        assert_eq!(problem["errors"][0]["field"], field, "{path}: {problem}");
    }
    app.get("/v1/datasets/nothing/aggregate?measure=x")
        .await
        .problem(404, "not_found");
    app.get("/v1/datasets/nothing/top?measure=x&group_by=y")
        .await
        .problem(404, "not_found");
}

fn redis_url() -> String {
    std::env::var("INTAKE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// How many keys Redis holds under `prefix` (`KEYS`, spoken in RESP over a socket).
fn redis_keys(prefix: &str) -> usize {
    use std::io::{Read as _, Write as _};
    let address = redis_url()
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .to_owned();
    let mut socket = std::net::TcpStream::connect(&address)
        .unwrap_or_else(|e| panic!("this test needs Redis at {address}: {e}"));
    let pattern = format!("{prefix}*");
    let command = format!("*2\r\n$4\r\nKEYS\r\n${}\r\n{pattern}\r\n", pattern.len());
    socket.write_all(command.as_bytes()).unwrap();
    let mut reply = [0u8; 64];
    let n = socket.read(&mut reply).unwrap();
    let reply = std::str::from_utf8(&reply[..n]).unwrap();
    assert!(reply.starts_with('*'), "{reply}");
    reply[1..reply.find('\r').unwrap()].parse().unwrap()
}

/// With `redis_url` set, answers are cached in Redis under the deployment's prefix,
/// and an import still changes the next answer at once.
#[actix_web::test]
async fn answers_are_cached_in_redis_and_an_import_changes_them() {
    let prefix = format!("intake-test-{}:", uuid::Uuid::now_v7().simple());
    let app = super::support::spawn_app_with(super::support::Db::Sqlite, |s| {
        s.redis_url = Some(redis_url().into());
        s.redis_prefix = prefix.clone();
    })
    .await;
    super::run(&app, async {
        let first = document(&[result("5", "001", 10, 5)]);
        assert_eq!(markr_import(&app, first).await.status, 200);
        assert_eq!(app.get("/results/5/aggregate").await.body["mean"], 50.0);
        assert_eq!(redis_keys(&prefix), 1, "the answer is in Redis");
        assert_eq!(app.get("/results/5/aggregate").await.body["mean"], 50.0);
        let rescan = document(&[result("5", "001", 10, 7)]);
        assert_eq!(markr_import(&app, rescan).await.status, 200);
        assert_eq!(app.get("/results/5/aggregate").await.body["mean"], 70.0);
        assert_eq!(redis_keys(&prefix), 2, "one answer per revision");
    })
    .await;
    app.stop().await;
}

/// A cache that cannot be reached (Redis configured at a closed port) only costs
/// speed: every answer is still right.
#[actix_web::test]
async fn a_cache_at_a_closed_port_costs_speed_not_answers() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = super::support::spawn_app_with(super::support::Db::Sqlite, |s| {
        s.redis_url = Some(format!("redis://127.0.0.1:{port}").into());
    })
    .await;
    super::run(&app, async {
        let first = document(&[result("6", "001", 10, 5), result("6", "002", 10, 10)]);
        assert_eq!(markr_import(&app, first).await.status, 200);
        for _ in 0..3 {
            let answer = app.get("/results/6/aggregate").await;
            assert_eq!(answer.status, 200, "{}", answer.body);
            assert_eq!(answer.body["mean"], 75.0);
        }
        let rescan = document(&[result("6", "003", 10, 0)]);
        assert_eq!(markr_import(&app, rescan).await.status, 200);
        assert_eq!(app.get("/results/6/aggregate").await.body["mean"], 50.0);
    })
    .await;
    app.stop().await;
}

/// Answers that change only with their dataset's revision carry an `ETag` and
/// `Cache-Control: no-cache`; `If-None-Match` with that tag is a `304` without a body,
/// in JSON or XML, until an import commits; routes whose answers change otherwise
/// (imports) carry no tag.
pub async fn answers_carry_an_etag_and_a_matching_if_none_match_is_304(app: &TestApp) {
    let first = document(&[result("88", "001", 10, 5), result("88", "002", 10, 10)]);
    assert_eq!(markr_import(app, first).await.status, 200);
    let paths = [
        "/v1/datasets/exam-results/aggregate?measure=percent&group_by=test_id",
        "/v1/datasets/exam-results/top?measure=percent&group_by=test_id&k=1",
        "/v1/datasets/exam-results/records?limit=1",
        "/v1/datasets/exam-results/records/88%2F001",
        "/v1/datasets/exam-results/records/88%2F001/history",
        "/v2/datasets/exam-results/records?limit=1",
        "/v2/datasets/exam-results/aggregate?measures=percent",
    ];
    let mut tags = Vec::new();
    for path in paths {
        let answer = app.get(path).await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.body);
        let tag = answer
            .header("etag")
            .unwrap_or_else(|| panic!("{path}: no ETag"));
        assert!(tag.starts_with("W/\""), "{path}: {tag}");
        assert_eq!(answer.header("cache-control"), Some("no-cache"), "{path}");
        for accept in ["application/json", "application/xml"] {
            let again = app
                .client
                .get(app.url(path))
                .insert_header(("If-None-Match", tag))
                .insert_header(("Accept", accept))
                .send()
                .await
                .unwrap();
            let again = TestApp::answer(again).await;
            assert_eq!(again.status, 304, "{path} ({accept})");
            assert!(again.bytes.is_empty(), "{path}: a 304 has no body");
            assert_eq!(again.header("etag"), Some(tag), "{path}");
        }
        tags.push(tag.to_owned());
    }

    // An import commits: every old tag is stale, and the new answer has a new tag.
    let second = document(&[result("88", "003", 10, 0)]);
    assert_eq!(markr_import(app, second).await.status, 200);
    for (path, old) in paths.iter().zip(&tags) {
        let answer = app.get_with(path, ("If-None-Match", old)).await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.body);
        assert_ne!(answer.header("etag"), Some(old.as_str()), "{path}");
    }
    let imports = app.get("/v1/datasets/exam-results/imports").await;
    assert_eq!(imports.status, 200);
    assert_eq!(
        imports.header("etag"),
        None,
        "imports change without a revision"
    );
    let unknown = app.get("/v1/datasets/nope/records").await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.header("etag"), None);
}

/// A record's history is every state without `limit` (as before pages existed), and a
/// page at a time with `limit` and the `next_cursor` each page gives.
pub async fn a_records_history_is_paged_with_limit_and_cursor(app: &TestApp) {
    for obtained in [5, 7, 9] {
        let doc = document(&[result("66", "001", 10, obtained)]);
        assert_eq!(markr_import(app, doc).await.status, 200);
    }
    let path = "/v1/datasets/exam-results/records/66%2F001/history";
    let obtained = |answer: &Value| -> Vec<Value> {
        let states = answer["history"].as_array().unwrap();
        states
            .iter()
            .map(|s| s["measures"]["obtained"].clone())
            .collect()
    };
    let all = app.get(path).await;
    assert_eq!(all.status, 200, "{}", all.body);
    assert_eq!(obtained(&all.body), [json!(5.0), json!(7.0), json!(9.0)]);
    assert!(all.body.get("next_cursor").is_none(), "{}", all.body);

    let first = app.get(&format!("{path}?limit=2")).await.body;
    assert_eq!(obtained(&first), [json!(5.0), json!(7.0)]);
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let rest = app
        .get(&format!("{path}?limit=2&cursor={cursor}"))
        .await
        .body;
    assert_eq!(obtained(&rest), [json!(9.0)]);
    assert!(rest.get("next_cursor").is_none(), "{rest}");

    app.get(&format!("{path}?limit=0"))
        .await
        .problem(400, "bad_request");
    app.get(&format!("{path}?cursor=abc"))
        .await
        .problem(400, "bad_request");
}

/// With `Accept: text/csv` or `application/x-ndjson`, a record list streams every
/// matching record (several pages of the store's reads), in key order, and an
/// aggregate answers a row per group; other routes stay JSON or XML (`406`), and a
/// bad filter is still a problem document.
pub async fn records_and_aggregates_export_as_csv_and_ndjson(app: &TestApp) {
    let contract = json!({"format": "csv",
        "fields": {"id": {"type": "string", "required": true},
                   "group": {"type": "string", "required": true},
                   "value": {"type": "number", "required": true},
                   "note": {"type": "string"}},
        "key": ["id"], "dimensions": ["group"], "measures": {"value": "value"},
        "merge": "last_wins", "on_invalid": "skip_record"});
    let created = app
        .post_json(
            "/v1/datasets",
            &json!({"name": "exported", "contract": contract}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let mut doc = String::from("id,group,value,note\n");
    for i in 0..2500 {
        doc.push_str(&format!(
            "k{i:05},g{},{}.5,\"a, \"\"quoted\"\" note\"\n",
            i % 3,
            i
        ));
    }
    let done = app.import("exported", "text/csv", doc.into_bytes()).await;
    assert_eq!(done.body["status"], "completed", "{}", done.body);

    let csv = app
        .get_with(
            "/v1/datasets/exported/records?limit=5",
            ("accept", "text/csv"),
        )
        .await;
    assert_eq!(csv.status, 200);
    assert_eq!(csv.header("content-type"), Some("text/csv; charset=utf-8"));
    let text = String::from_utf8(csv.bytes.clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "key,group,value,version,attributes");
    assert_eq!(lines.len(), 2501, "every record, not a page of 5");
    assert_eq!(
        lines[1],
        "k00000,g0,0.5,,\"{\"\"id\"\":\"\"k00000\"\",\"\"note\"\":\"\"a, \\\"\"quoted\\\"\" note\"\"}\"",
        "quoted as RFC 4180 has it"
    );
    let keys: Vec<&str> = lines[1..].iter().map(|l| &l[..6]).collect();
    assert!(
        keys.windows(2).all(|w| w[0] < w[1]),
        "key order, none twice"
    );

    let filtered = app
        .get_with(
            "/v1/datasets/exported/records?group=g1",
            ("accept", "text/csv"),
        )
        .await;
    let text = String::from_utf8(filtered.bytes.clone()).unwrap();
    assert_eq!(text.lines().count(), 1 + 833, "the filter holds");
    assert!(text.lines().skip(1).all(|l| l.contains(",g1,")));

    let ndjson = app
        .get_with(
            "/v1/datasets/exported/records",
            ("accept", "application/x-ndjson"),
        )
        .await;
    assert_eq!(ndjson.header("content-type"), Some("application/x-ndjson"));
    let text = String::from_utf8(ndjson.bytes.clone()).unwrap();
    let records: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(records.len(), 2500);
    assert_eq!(records[2499]["key"], "k02499");
    assert_eq!(records[2499]["measures"]["value"], 2499.5);

    let aggregate = app
        .get_with(
            "/v1/datasets/exported/aggregate?measure=value&group_by=group",
            ("accept", "text/csv"),
        )
        .await;
    let text = String::from_utf8(aggregate.bytes.clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "group,count,sum,mean,stddev,min,p25,p50,p75,max,excluded"
    );
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines[1].starts_with("g0,834,"), "{text}");

    let one = app
        .get_with(
            "/v1/datasets/exported/records/k00001",
            ("accept", "text/csv"),
        )
        .await;
    one.problem(406, "not_acceptable");
    let bad = app
        .get_with(
            "/v1/datasets/exported/records?colour=red",
            ("accept", "text/csv"),
        )
        .await;
    bad.problem(400, "bad_request");
}
