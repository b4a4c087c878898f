//! The v1 compatibility guard (DESIGN §11, ADR 8): compares a released OpenAPI
//! document with a newer one and lists every change that could break a client written
//! against the released one. Additions (paths, operations, optional parameters, response
//! fields, enum values in requests) pass; removals and incompatible changes do not.
//!
//! Schemas are compared in the direction data flows. In a request the server must
//! accept at least what it accepted: no new required field or parameter, no narrowed
//! type, no tighter bound, no removed enum value. In a response the server must send at
//! least what it sent: no removed or newly optional field, no widened type (a client
//! cannot parse what it was never told about), no removed enum value.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// Which way a schema's data flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    /// From client to server: request bodies and parameters.
    Request,
    /// From server to client: response bodies and headers.
    Response,
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Every change from `released` to `current` that breaks a client of `released`, each
/// naming where it is (`GET /v1/datasets 200 application/json: datasets[].name: …`).
/// Empty when `current` only adds to `released`.
pub fn breaking_changes(released: &Value, current: &Value) -> Vec<String> {
    let mut checker = Checker {
        old_doc: released,
        new_doc: current,
        found: Vec::new(),
        seen: BTreeSet::new(),
    };
    checker.paths();
    checker.found
}

struct Checker<'a> {
    old_doc: &'a Value,
    new_doc: &'a Value,
    found: Vec<String>,
    /// The pairs of `$ref`s being compared (in one direction), so recursive schemas end.
    seen: BTreeSet<(String, String, bool)>,
}

fn object(value: &Value) -> &Map<String, Value> {
    static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    value
        .as_object()
        .unwrap_or_else(|| EMPTY.get_or_init(Map::new))
}

/// The set of JSON types a schema allows (`None`: any).
fn types(schema: &Value) -> Option<BTreeSet<String>> {
    let mut set: BTreeSet<String> = match schema.get("type") {
        Some(Value::String(t)) => [t.clone()].into(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .map(Into::into)
            .collect(),
        _ => return None,
    };
    if schema.get("nullable").and_then(Value::as_bool) == Some(true) {
        set.insert("null".into());
    }
    // An integer is a number: a request that took numbers still takes integers.
    if set.contains("number") {
        set.insert("integer".into());
    }
    Some(set)
}

/// A location inside `at` (a body's root ends with `:`).
fn child(at: &str, inner: &str) -> String {
    if at.ends_with(':') {
        format!("{at} {inner}")
    } else {
        format!("{at}{inner}")
    }
}

fn required(schema: &Value) -> BTreeSet<&str> {
    schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

impl Checker<'_> {
    /// Records a finding; `at` ends with `:` when it is a body's root.
    fn report(&mut self, at: &str, what: impl std::fmt::Display) {
        let at = at.strip_suffix(':').unwrap_or(at);
        self.found.push(format!("{at}: {what}"));
    }

    fn paths(&mut self) {
        let old_paths = object(&self.old_doc["paths"]).clone();
        let new_paths = object(&self.new_doc["paths"]).clone();
        for (path, old_item) in &old_paths {
            let Some(new_item) = new_paths.get(path) else {
                self.report(path, "the path was removed");
                continue;
            };
            for method in METHODS {
                let Some(old_op) = old_item.get(method) else {
                    continue;
                };
                let at = format!("{} {path}", method.to_uppercase());
                match new_item.get(method) {
                    None => self.report(&at, "the operation was removed"),
                    Some(new_op) => self.operation(&at, old_item, old_op, new_item, new_op),
                }
            }
        }
    }

    /// Parameters of an operation, with those of its path item, by `(in, name)`.
    fn parameters<'v>(item: &'v Value, op: &'v Value) -> Vec<(String, &'v Value)> {
        let all = [item, op];
        all.iter()
            .filter_map(|v| v.get("parameters").and_then(Value::as_array))
            .flatten()
            .map(|p| {
                let place = p["in"].as_str().unwrap_or("?");
                let name = p["name"].as_str().unwrap_or("?");
                (format!("{place} parameter {name}"), p)
            })
            .collect()
    }

    fn operation(
        &mut self,
        at: &str,
        old_item: &Value,
        old_op: &Value,
        new_item: &Value,
        new_op: &Value,
    ) {
        let old_params = Self::parameters(old_item, old_op);
        let new_params = Self::parameters(new_item, new_op);
        for (name, new_param) in &new_params {
            let old = old_params.iter().find(|(n, _)| n == name).map(|(_, p)| *p);
            let now_required = new_param["required"].as_bool() == Some(true);
            match old {
                None if now_required => {
                    self.report(&format!("{at} {name}"), "a new required parameter");
                }
                None => {}
                Some(old) => {
                    if now_required && old["required"].as_bool() != Some(true) {
                        self.report(&format!("{at} {name}"), "the parameter became required");
                    }
                    self.schema(
                        &format!("{at} {name}"),
                        &old["schema"],
                        &new_param["schema"],
                        Flow::Request,
                    );
                }
            }
        }
        for (name, _) in &old_params {
            if !new_params.iter().any(|(n, _)| n == name) {
                self.report(&format!("{at} {name}"), "the parameter was removed");
            }
        }
        self.request_body(at, &old_op["requestBody"], &new_op["requestBody"]);
        let old_responses = object(&old_op["responses"]).clone();
        for (status, old_response) in &old_responses {
            let at = format!("{at} {status}");
            match new_op["responses"].get(status) {
                None => self.report(&at, "the response was removed"),
                Some(new_response) => self.response(&at, old_response, new_response),
            }
        }
    }

    fn request_body(&mut self, at: &str, old: &Value, new: &Value) {
        let new_required = new["required"].as_bool() == Some(true);
        if old.is_null() {
            if new_required {
                self.report(at, "a new required request body");
            }
            return;
        }
        if new.is_null() {
            // The body is ignored now: clients that send it are still served.
            return;
        }
        if new_required && old["required"].as_bool() != Some(true) {
            self.report(at, "the request body became required");
        }
        for (media, old_content) in object(&old["content"]).clone() {
            let at = format!("{at} request {media}");
            match new["content"].get(&media) {
                None => self.report(&at, "the request media type is no longer accepted"),
                Some(new_content) => self.schema(
                    &format!("{at}:"),
                    &old_content["schema"],
                    &new_content["schema"],
                    Flow::Request,
                ),
            }
        }
    }

    fn response(&mut self, at: &str, old: &Value, new: &Value) {
        let (old, _) = Self::resolve(self.old_doc, old);
        let (new, _) = Self::resolve(self.new_doc, new);
        for (media, old_content) in object(&old["content"]).clone() {
            let at = format!("{at} {media}");
            match new["content"].get(&media) {
                None => self.report(&at, "the response media type was removed"),
                Some(new_content) => self.schema(
                    &format!("{at}:"),
                    &old_content["schema"],
                    &new_content["schema"],
                    Flow::Response,
                ),
            }
        }
        for name in object(&old["headers"]).keys() {
            if new["headers"].get(name).is_none() {
                self.report(
                    &format!("{at} header {name}"),
                    "the response header was removed",
                );
            }
        }
    }

    /// Follows `$ref`s into `components`; gives the schema and the ref it came from.
    fn resolve<'d>(doc: &'d Value, schema: &'d Value) -> (&'d Value, Option<String>) {
        let mut schema = schema;
        let mut name = None;
        for _ in 0..32 {
            let Some(reference) = schema.get("$ref").and_then(Value::as_str) else {
                break;
            };
            name = Some(reference.to_owned());
            let pointer = reference.trim_start_matches('#');
            schema = doc.pointer(pointer).unwrap_or(&Value::Null);
        }
        (schema, name)
    }

    fn schema(&mut self, at: &str, old: &Value, new: &Value, flow: Flow) {
        let (old, old_ref) = Self::resolve(self.old_doc, old);
        let (new, new_ref) = Self::resolve(self.new_doc, new);
        // A schema that contains itself is compared once per path through it.
        let key = old_ref
            .zip(new_ref)
            .map(|(o, n)| (o, n, flow == Flow::Request));
        if let Some(key) = &key
            && !self.seen.insert(key.clone())
        {
            return;
        }
        self.schema_body(at, old, new, flow);
        if let Some(key) = &key {
            self.seen.remove(key);
        }
    }

    fn schema_body(&mut self, at: &str, old: &Value, new: &Value, flow: Flow) {
        if old.is_null() || old.as_object().is_some_and(Map::is_empty) {
            // Any value was allowed: a response may now say more, a request may not.
            if flow == Flow::Request
                && !(new.is_null() || object(new).is_empty())
                && let Some(t) = types(new)
            {
                self.report(at, format!("any value was accepted; now only {t:?}"));
            }
            return;
        }
        self.types(at, old, new, flow);
        self.enums(at, old, new, flow);
        if flow == Flow::Request {
            self.bounds(at, old, new);
        }
        self.composition(at, old, new, flow);
        self.properties(at, old, new, flow);
        if let (Some(old_items), Some(new_items)) = (old.get("items"), new.get("items")) {
            self.schema(&child(at, "[]"), old_items, new_items, flow);
        }
        if let (Some(o), Some(n)) = (
            old.get("additionalProperties").filter(|v| v.is_object()),
            new.get("additionalProperties").filter(|v| v.is_object()),
        ) {
            self.schema(&child(at, "{*}"), o, n, flow);
        }
    }

    fn types(&mut self, at: &str, old: &Value, new: &Value, flow: Flow) {
        let (Some(old_types), new_types) = (types(old), types(new)) else {
            return;
        };
        let Some(new_types) = new_types else {
            if flow == Flow::Response {
                self.report(at, format!("was {old_types:?}, now any type"));
            }
            return;
        };
        let lost: Vec<_> = old_types.difference(&new_types).collect();
        let gained: Vec<_> = new_types.difference(&old_types).collect();
        match flow {
            Flow::Request if !lost.is_empty() => {
                self.report(
                    at,
                    format!("the type was narrowed: {lost:?} no longer accepted"),
                );
            }
            Flow::Response if !gained.is_empty() => {
                self.report(
                    at,
                    format!("the type was widened: {gained:?} may now be sent"),
                );
            }
            _ => {}
        }
        if flow == Flow::Response && !lost.is_empty() && new_types.is_empty() {
            self.report(at, "the type was removed");
        }
        if old.get("format") != new.get("format") && old.get("format").is_some() {
            let (o, n) = (&old["format"], &new["format"]);
            self.report(at, format!("the format changed from {o} to {n}"));
        }
    }

    fn enums(&mut self, at: &str, old: &Value, new: &Value, flow: Flow) {
        let Some(old_values) = old.get("enum").and_then(Value::as_array) else {
            return;
        };
        let Some(new_values) = new.get("enum").and_then(Value::as_array) else {
            if flow == Flow::Response {
                self.report(at, "the value is no longer one of a fixed set");
            }
            return;
        };
        for value in old_values {
            if !new_values.contains(value) {
                self.report(at, format!("the enum value {value} was removed"));
            }
        }
        if flow == Flow::Response {
            for value in new_values {
                if !old_values.contains(value) {
                    self.report(at, format!("the enum value {value} may now be sent"));
                }
            }
        }
    }

    /// Bounds a request value must meet: none may tighten.
    fn bounds(&mut self, at: &str, old: &Value, new: &Value) {
        let number = |v: &Value, k: &str| v.get(k).and_then(Value::as_f64);
        for key in ["maxLength", "maxItems", "maximum", "exclusiveMaximum"] {
            if let Some(n) = number(new, key)
                && number(old, key).is_none_or(|o| n < o)
            {
                self.report(at, format!("{key} tightened to {n}"));
            }
        }
        for key in ["minLength", "minItems", "minimum", "exclusiveMinimum"] {
            if let Some(n) = number(new, key)
                && number(old, key).is_none_or(|o| n > o)
            {
                self.report(at, format!("{key} tightened to {n}"));
            }
        }
        if let Some(pattern) = new.get("pattern")
            && old.get("pattern") != Some(pattern)
        {
            self.report(at, format!("the pattern changed to {pattern}"));
        }
    }

    /// `oneOf`/`anyOf`/`allOf`: compared member by member.
    fn composition(&mut self, at: &str, old: &Value, new: &Value, flow: Flow) {
        for key in ["oneOf", "anyOf", "allOf"] {
            let Some(old_members) = old.get(key).and_then(Value::as_array) else {
                continue;
            };
            let Some(new_members) = new.get(key).and_then(Value::as_array) else {
                self.report(at, format!("{key} was removed"));
                continue;
            };
            let fewer = new_members.len() < old_members.len();
            let more = new_members.len() > old_members.len();
            if (flow == Flow::Request && fewer) || (flow == Flow::Response && more) {
                let (o, n) = (old_members.len(), new_members.len());
                self.report(at, format!("{key} went from {o} to {n} alternatives"));
            }
            for (i, (o, n)) in old_members.iter().zip(new_members).enumerate() {
                self.schema(&child(at, &format!("<{key} {i}>")), o, n, flow);
            }
        }
    }

    fn properties(&mut self, at: &str, old: &Value, new: &Value, flow: Flow) {
        let old_props = object(&old["properties"]);
        let new_props = object(&new["properties"]);
        let (old_required, new_required) = (required(old), required(new));
        let prefix = |name: &str| {
            if at.ends_with(':') {
                child(at, name)
            } else {
                format!("{at}.{name}")
            }
        };
        for (name, old_prop) in old_props {
            let at = prefix(name);
            let Some(new_prop) = new_props.get(name) else {
                match flow {
                    Flow::Response => self.report(&at, "the response field was removed"),
                    Flow::Request if new["additionalProperties"] == Value::Bool(false) => {
                        self.report(&at, "the request field is no longer accepted");
                    }
                    Flow::Request => {}
                }
                continue;
            };
            let was = old_required.contains(name.as_str());
            let is = new_required.contains(name.as_str());
            if flow == Flow::Response && was && !is {
                self.report(&at, "the response field is no longer always sent");
            }
            if flow == Flow::Request && is && !was {
                self.report(&at, "the request field became required");
            }
            self.schema(&at, old_prop, new_prop, flow);
        }
        if flow == Flow::Request {
            for name in new_required {
                if !old_props.contains_key(name) {
                    self.report(&prefix(name), "a new required request field");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn doc(response: Value, body: Value) -> Value {
        json!({
            "openapi": "3.1.0",
            "paths": {"/v1/things": {"post": {
                "parameters": [{"name": "limit", "in": "query", "required": false,
                                "schema": {"type": "integer", "minimum": 1}}],
                "requestBody": {"required": true, "content": {"application/json": {"schema": body}}},
                "responses": {"200": {"description": "ok",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Thing"}}}}}
            }}},
            "components": {"schemas": {"Thing": response}}
        })
    }

    fn thing() -> Value {
        json!({"type": "object", "required": ["name", "kind"], "properties": {
            "name": {"type": "string"},
            "kind": {"type": "string", "enum": ["a", "b"]},
            "count": {"type": ["integer", "null"], "format": "int64"},
            "next": {"$ref": "#/components/schemas/Thing"}
        }})
    }

    fn body() -> Value {
        json!({"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string", "maxLength": 63},
            "note": {"type": "string"}
        }})
    }

    #[test]
    fn the_same_document_and_additions_pass() {
        let old = doc(thing(), body());
        assert_eq!(breaking_changes(&old, &old), Vec::<String>::new());
        let mut new = old.clone();
        new["components"]["schemas"]["Thing"]["properties"]["extra"] = json!({"type": "string"});
        new["paths"]["/v1/things"]["post"]["requestBody"]["content"]["application/json"]["schema"]
            ["properties"]["optional"] = json!({"type": "boolean"});
        new["paths"]["/v1/other"] = json!({"get": {"responses": {}}});
        new["paths"]["/v1/things"]["get"] = json!({"responses": {}});
        new["paths"]["/v1/things"]["post"]["responses"]["404"] = json!({"description": "no"});
        let bound = &mut new["paths"]["/v1/things"]["post"]["parameters"][0]["schema"];
        bound["minimum"] = json!(0);
        assert_eq!(breaking_changes(&old, &new), Vec::<String>::new());
    }

    fn one(old: &Value, new: &Value, expected: &str) {
        let found = breaking_changes(old, new);
        assert!(
            found.iter().any(|f| f.contains(expected)),
            "expected {expected:?} in {found:#?}"
        );
    }

    #[test]
    fn removals_and_incompatible_changes_are_named() {
        let old = doc(thing(), body());
        let mut new = old.clone();
        new["paths"].as_object_mut().unwrap().remove("/v1/things");
        one(&old, &new, "/v1/things: the path was removed");

        let mut new = old.clone();
        new["components"]["schemas"]["Thing"]["properties"]
            .as_object_mut()
            .unwrap()
            .remove("name");
        one(
            &old,
            &new,
            "POST /v1/things 200 application/json: name: the response field was removed",
        );

        let mut new = old.clone();
        new["components"]["schemas"]["Thing"]["required"] = json!(["name"]);
        one(
            &old,
            &new,
            "kind: the response field is no longer always sent",
        );

        let mut new = old.clone();
        new["components"]["schemas"]["Thing"]["properties"]["kind"]["enum"] = json!(["a"]);
        one(&old, &new, "the enum value \"b\" was removed");

        let mut new = old.clone();
        new["components"]["schemas"]["Thing"]["properties"]["name"]["type"] = json!("integer");
        one(&old, &new, "name: the type was widened");

        let mut new = old.clone();
        let request = &mut new["paths"]["/v1/things"]["post"]["requestBody"]["content"]["application/json"]
            ["schema"];
        request["required"] = json!(["name", "note"]);
        one(&old, &new, "note: the request field became required");

        let mut new = old.clone();
        let request = &mut new["paths"]["/v1/things"]["post"]["requestBody"]["content"]["application/json"]
            ["schema"];
        request["properties"]["name"]["maxLength"] = json!(10);
        one(&old, &new, "maxLength tightened to 10");

        let mut new = old.clone();
        new["paths"]["/v1/things"]["post"]["parameters"][0]["schema"]["type"] = json!("boolean");
        one(&old, &new, "query parameter limit: the type was narrowed");

        let mut new = old.clone();
        new["paths"]["/v1/things"]["post"]["parameters"][0]["required"] = json!(true);
        one(
            &old,
            &new,
            "query parameter limit: the parameter became required",
        );

        let mut new = old.clone();
        new["paths"]["/v1/things"]["post"]["responses"]
            .as_object_mut()
            .unwrap()
            .remove("200");
        one(&old, &new, "POST /v1/things 200: the response was removed");
    }

    #[test]
    fn recursive_schemas_end() {
        let old = doc(thing(), body());
        let mut new = old.clone();
        new["components"]["schemas"]["Thing"]["properties"]["next"] = json!({"type": "string"});
        // `next` was a Thing (an object): now a string may be sent.
        one(&old, &new, "next: the type was widened");
    }
}
