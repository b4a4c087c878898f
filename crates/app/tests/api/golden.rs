//! Golden v1 exchanges (ADR 8): requests recorded in `openapi/golden/v1.json` with the
//! answers v1 gave when they were recorded, replayed against the real server. Each
//! recorded status, header and body member must come back the same; members added since
//! (v1 may gain optional fields) are allowed.
//!
//! In the file, `"<any>"` matches any value (ids, timestamps, request ids), and
//! `{name}` in a path, body or expected string stands for what an earlier exchange
//! captured (`"capture": "name"` takes the `id` member of its answer).
//!
//! To record the file again after adding exchanges (never to paper over a change):
//! `INTAKE_RECORD_GOLDEN=1 cargo test -p intake-app --test api sqlite::v1_golden`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{Map, Value, json};

use super::support::{TestApp, example};

fn golden_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../openapi/golden/v1.json")
}

type Vars = BTreeMap<String, String>;

fn substitute(text: &str, vars: &Vars) -> String {
    vars.iter().fold(text.to_owned(), |text, (name, value)| {
        text.replace(&format!("{{{name}}}"), value)
    })
}

fn substitute_value(value: &Value, vars: &Vars) -> Value {
    match value {
        Value::String(s) => Value::String(substitute(s, vars)),
        Value::Array(items) => items.iter().map(|v| substitute_value(v, vars)).collect(),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| (k.clone(), substitute_value(v, vars)))
            .collect::<Map<_, _>>()
            .into(),
        other => other.clone(),
    }
}

fn close(e: Option<f64>, a: Option<f64>) -> bool {
    match (e, a) {
        (Some(e), Some(a)) => (e - a).abs() <= 1e-9 * e.abs().max(1.0),
        _ => false,
    }
}

/// Where `actual` differs from `expected` (extra object members are allowed).
fn differences(at: &str, expected: &Value, actual: &Value, found: &mut Vec<String>) {
    match (expected, actual) {
        (Value::String(s), _) if s == "<any>" => {}
        (Value::Object(e), Value::Object(a)) => {
            for (key, e) in e {
                match a.get(key) {
                    Some(a) => differences(&format!("{at}.{key}"), e, a, found),
                    None => found.push(format!("{at}.{key}: missing")),
                }
            }
        }
        (Value::Array(e), Value::Array(a)) if e.len() == a.len() => {
            for (i, (e, a)) in e.iter().zip(a).enumerate() {
                differences(&format!("{at}[{i}]"), e, a, found);
            }
        }
        // Statistics are floating point: SQL and Rust may differ in the last bits.
        (Value::Number(e), Value::Number(a)) if close(e.as_f64(), a.as_f64()) => {}
        (e, a) if e == a => {}
        (e, a) => found.push(format!("{at}: expected {e}, got {a}")),
    }
}

/// What the recorder writes for an answer: ids, timestamps and request ids become
/// `<any>`, captured values their `{name}`.
fn masked(key: &str, value: &Value, vars: &Vars) -> Value {
    match value {
        Value::String(s) => {
            if let Some((name, _)) = vars.iter().find(|(_, v)| s.contains(v.as_str())) {
                return Value::String(s.replace(&vars[name], &format!("{{{name}}}")));
            }
            let volatile = key.ends_with("_at") || key == "instance" || key == "request_id";
            if volatile || uuid::Uuid::parse_str(s).is_ok() {
                "<any>".into()
            } else {
                value.clone()
            }
        }
        Value::Array(items) => items.iter().map(|v| masked(key, v, vars)).collect(),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| (k.clone(), masked(k, v, vars)))
            .collect::<Map<_, _>>()
            .into(),
        other => other.clone(),
    }
}

/// Replays every exchange in order against `app`.
pub async fn v1_golden_exchanges_replay(app: &TestApp) {
    let text = std::fs::read_to_string(golden_path()).expect("openapi/golden/v1.json");
    let mut golden: Value = serde_json::from_str(&text).expect("golden JSON");
    let record = std::env::var_os("INTAKE_RECORD_GOLDEN").is_some();
    let mut vars = Vars::new();
    let mut failures = Vec::new();
    let exchanges = golden["exchanges"].as_array_mut().expect("exchanges");
    for exchange in exchanges.iter_mut() {
        let name = exchange["name"].as_str().unwrap_or("?").to_owned();
        let request = &exchange["request"];
        let method = request["method"].as_str().expect("method");
        let path = substitute(request["path"].as_str().expect("path"), &vars);
        let mut req = app
            .client
            .request(method.parse().expect("a method"), app.url(&path));
        for (header, value) in request["headers"].as_object().into_iter().flatten() {
            let value = substitute(value.as_str().expect("a header value"), &vars);
            req = req.insert_header((header.as_str(), value));
        }
        let res = if let Some(body) = request.get("json") {
            req.send_json(&substitute_value(body, &vars)).await
        } else if let Some(file) = request["file"].as_str() {
            let (folder, file) = file.split_once('/').expect("folder/file");
            req.send_body(example(folder, file)).await
        } else {
            req.send().await
        };
        let answer = TestApp::answer(res.expect("sent")).await;
        if let Some(capture) = request["capture"].as_str() {
            let id = answer.body["id"].as_str().expect("an id to capture");
            vars.insert(capture.to_owned(), id.to_owned());
        }
        let mut actual = json!({
            "status": answer.status.as_u16(),
            "headers": {"content-type": answer.header("content-type")},
            "body": answer.body,
        });
        if let Some(location) = answer.header("location") {
            actual["headers"]["location"] = location.into();
        }
        if record {
            exchange["response"] = masked("", &actual, &vars);
            continue;
        }
        let expected = substitute_value(&exchange["response"], &vars);
        let mut found = Vec::new();
        differences(&name, &expected, &actual, &mut found);
        failures.extend(found);
    }
    if record {
        let text = serde_json::to_string_pretty(&golden).expect("json") + "\n";
        std::fs::write(golden_path(), text).expect("recorded");
        return;
    }
    assert!(
        failures.is_empty(),
        "v1 answers differ from the golden exchanges (ADR 8):\n{}",
        failures.join("\n")
    );
}
