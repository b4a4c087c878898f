//! The v1 compatibility guard (DESIGN §11, ADR 8): the OpenAPI document the code
//! generates may only add to the released one committed as `openapi/v1.json`.
//!
//! To record additions (new optional fields, routes, responses) in the released
//! document: `INTAKE_UPDATE_OPENAPI=1 cargo test -p intake-actix-web-api --test
//! compatibility`. It refuses to record a breaking change.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::path::PathBuf;

use intake_actix_web_api::openapi::compat::breaking_changes;
use intake_actix_web_api::openapi::v1_document;
use serde_json::Value;

fn released_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../openapi/v1.json")
}

fn released() -> Value {
    let path = released_path();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; the released v1 document", path.display()));
    serde_json::from_str(&text).expect("openapi/v1.json is JSON")
}

#[test]
fn v1_only_adds_to_the_released_document() {
    let released = released();
    let current = v1_document();
    let breaking = breaking_changes(&released, &current);
    assert!(
        breaking.is_empty(),
        "v1 changed incompatibly with openapi/v1.json (see ADR 8; v1 may only gain \
         optional fields; put the change in /v2 instead):\n{}",
        breaking.join("\n")
    );
    if std::env::var_os("INTAKE_UPDATE_OPENAPI").is_some() && current != released {
        let text = serde_json::to_string_pretty(&current).unwrap() + "\n";
        std::fs::write(released_path(), text).unwrap();
        eprintln!("recorded the additions in openapi/v1.json");
    }
}

#[test]
fn a_breaking_change_to_a_v1_response_fails_the_guard() {
    let released = released();
    let mut changed = v1_document();
    let dataset = &mut changed["components"]["schemas"]["DatasetResponse"];
    dataset["properties"]
        .as_object_mut()
        .unwrap()
        .remove("revision");
    dataset["properties"]["name"]["type"] = "integer".into();
    let breaking = breaking_changes(&released, &changed);
    let expected = [
        "GET /v1/datasets/{dataset} 200 application/json: revision: the response field was removed",
        "GET /v1/datasets/{dataset} 200 application/json: name: the type was widened",
        "GET /v1/datasets 200 application/json: datasets[].revision: the response field was removed",
    ];
    for expected in expected {
        assert!(
            breaking.iter().any(|b| b.starts_with(expected)),
            "expected {expected:?} in {breaking:#?}"
        );
    }
}

#[test]
fn a_removed_route_or_a_new_required_parameter_fails_the_guard() {
    let released = released();
    let mut changed = v1_document();
    let paths = changed["paths"].as_object_mut().unwrap();
    paths.remove("/v1/datasets/{dataset}/top");
    let aggregate = &mut paths["/v1/datasets/{dataset}/aggregate"]["get"];
    let parameters = aggregate["parameters"].as_array_mut().unwrap();
    parameters.push(
        serde_json::json!({"name": "percentiles", "in": "query", "required": true,
        "schema": {"type": "string"}}),
    );
    let breaking = breaking_changes(&released, &changed);
    assert!(
        breaking.contains(&"/v1/datasets/{dataset}/top: the path was removed".to_owned()),
        "{breaking:#?}"
    );
    assert!(
        breaking.iter().any(|b| b.starts_with(
            "GET /v1/datasets/{dataset}/aggregate query parameter percentiles: a new required"
        )),
        "{breaking:#?}"
    );
}

#[test]
fn the_v2_document_has_sparse_item_schemas() {
    let doc = intake_actix_web_api::openapi::v2_document();
    let fields = &doc["components"]["schemas"]["RecordResponseFields"];
    assert!(fields["properties"]["key"].is_object(), "{fields}");
    assert!(fields.get("required").is_none(), "{fields}");
    let page = &doc["components"]["schemas"]["RecordPage"]["properties"]["items"];
    assert_eq!(
        page["items"]["$ref"],
        "#/components/schemas/RecordResponseFields"
    );
}
