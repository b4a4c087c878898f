//! Commands that talk to a running server through its REST API (`intake datasets`,
//! `intake aggregate`, `intake records`, and `intake replay`): tables for people by
//! default, the server's JSON with `--json`.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::{Value, json};

use crate::cli::{DatasetsAction, Server};

/// A client of the REST API.
pub(crate) struct Api {
    pub(crate) client: reqwest::Client,
    pub(crate) base: String,
    token: Option<String>,
}

impl Api {
    /// A client of `server`, with `token` when given.
    pub(crate) fn new(server: &str, token: Option<String>) -> anyhow::Result<Self> {
        Ok(Self {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .context("building the HTTP client")?,
            base: server.trim_end_matches('/').to_owned(),
            token,
        })
    }

    /// Sends a request; its status and JSON body (`null` when not JSON).
    pub(crate) async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> anyhow::Result<(u16, Value)> {
        let request = match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let response = request.send().await.with_context(|| {
            format!(
                "cannot reach {} (is `intake serve` running there?)",
                self.base
            )
        })?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.context("reading an answer")?;
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok((status, body))
    }

    /// GETs `path` with `query`, wanting a `200`.
    pub(crate) async fn get_with(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> anyhow::Result<Value> {
        let request = self.client.get(format!("{}{path}", self.base)).query(query);
        let (status, body) = self.send(request).await?;
        anyhow::ensure!(status == 200, "GET {path}: {status} {}", problem(&body));
        Ok(body)
    }

    /// GETs `path`, wanting a `200`.
    pub(crate) async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.get_with(path, &[]).await
    }
}

/// What a problem document says, with every field at fault.
pub(crate) fn problem(body: &Value) -> String {
    let mut said = body["detail"]
        .as_str()
        .or_else(|| body["title"].as_str())
        .map_or_else(|| body.to_string(), ToOwned::to_owned);
    for error in body["errors"].as_array().into_iter().flatten() {
        let field = error["field"].as_str().unwrap_or("");
        let message = error["message"].as_str().unwrap_or("");
        said.push_str(&format!("\n  {field}: {message}"));
    }
    said
}

/// Reads `NAME=VALUE`.
///
/// # Errors
/// When there is no `=` or no name.
pub fn parse_filter(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(format!("expected NAME=VALUE, got {text:?}")),
    }
}

/// Rows under a header, each column as wide as its widest cell.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        padded.join("  ").trim_end().to_owned()
    };
    let mut out = vec![line(header.to_vec())];
    out.extend(
        rows.iter()
            .map(|r| line(r.iter().map(String::as_str).collect())),
    );
    out.join("\n")
}

/// A number for people: to 2 decimals, without them when it is whole there.
fn number(value: &Value) -> String {
    let Some(x) = value.as_f64() else {
        return "-".to_owned();
    };
    let cents = (x * 100.0).round();
    if cents % 100.0 == 0.0 {
        format!("{:.0}", cents / 100.0)
    } else {
        format!("{:.2}", cents / 100.0)
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

fn print(server: &Server, body: &Value, human: impl FnOnce(&Value) -> String) {
    if server.json {
        println!("{}", serde_json::to_string_pretty(body).unwrap_or_default());
    } else {
        println!("{}", human(body));
    }
}

/// `intake datasets list|create|show|delete`.
///
/// # Errors
/// When the server is unreachable or refuses (its problem is said).
pub async fn datasets(
    server: &Server,
    action: DatasetsAction,
) -> anyhow::Result<std::process::ExitCode> {
    let api = Api::new(&server.server, server.token.clone())?;
    match action {
        DatasetsAction::List => {
            let body = api.get("/v1/datasets").await?;
            print(server, &body, |body| {
                let rows: Vec<Vec<String>> = body["datasets"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|d| {
                        vec![
                            text(&d["name"]),
                            text(&d["current_contract"]),
                            text(&d["revision"]),
                            text(&d["created_at"]),
                        ]
                    })
                    .collect();
                if rows.is_empty() {
                    return "no datasets".to_owned();
                }
                table(&["NAME", "CONTRACT", "REVISION", "CREATED"], &rows)
            });
        }
        DatasetsAction::Create { name, contract } => {
            let bytes = std::fs::read(&contract)
                .with_context(|| format!("reading {}", contract.display()))?;
            let contract_json: Value = serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is not JSON", contract.display()))?;
            let request = api
                .client
                .post(format!("{}/v1/datasets", api.base))
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(json!({"name": name, "contract": contract_json}).to_string());
            let (status, body) = api.send(request).await?;
            anyhow::ensure!(
                status == 201,
                "creating {name}: {status} {}",
                problem(&body)
            );
            print(server, &body, |body| {
                format!(
                    "created {} with contract version {}",
                    text(&body["name"]),
                    text(&body["current_contract"])
                )
            });
        }
        DatasetsAction::Delete { name, purge } => {
            let request = api
                .client
                .delete(format!("{}/v1/datasets/{name}", api.base))
                .query(&[("purge", purge)]);
            let (status, body) = api.send(request).await?;
            anyhow::ensure!(
                status == 200,
                "deleting {name}: {status} {}",
                problem(&body)
            );
            print(server, &body, |body| {
                let documents = if body["purged"] == true {
                    "removed"
                } else {
                    "kept in the vault (--purge removes them)"
                };
                format!(
                    "deleted {}: {} records; its {} documents {documents}",
                    text(&body["name"]),
                    text(&body["records"]),
                    text(&body["documents"])
                )
            });
        }
        DatasetsAction::Show { name } => {
            let dataset = api.get(&format!("/v1/datasets/{name}")).await?;
            let contracts = api.get(&format!("/v1/datasets/{name}/contracts")).await?;
            let imports = api
                .get_with(&format!("/v1/datasets/{name}/imports"), &[("limit", "5")])
                .await?;
            let body = json!({"dataset": dataset, "contracts": contracts, "imports": imports});
            print(server, &body, show);
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

fn show(body: &Value) -> String {
    let d = &body["dataset"];
    let mut out = vec![
        format!("dataset   {}", text(&d["name"])),
        format!("contract  version {}", text(&d["current_contract"])),
        format!("records   {}", text(&d["records"])),
        format!("revision  {}", text(&d["revision"])),
        format!("created   {}", text(&d["created_at"])),
        String::new(),
    ];
    let versions: Vec<Vec<String>> = body["contracts"]["contracts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| vec![text(&c["version"]), text(&c["published_at"])])
        .collect();
    out.push(table(&["VERSION", "PUBLISHED"], &versions));
    out.push(String::new());
    let imports: Vec<Vec<String>> = body["imports"]["imports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| {
            let report = &i["report"];
            vec![
                text(&i["id"]),
                text(&i["status"]),
                text(&i["received_at"]),
                text(&report["seen"]),
                text(&report["inserted"]),
                text(&report["updated"]),
                text(&report["invalid"]),
            ]
        })
        .collect();
    if imports.is_empty() {
        out.push("no imports".to_owned());
    } else {
        out.push(table(
            &[
                "IMPORT", "STATUS", "RECEIVED", "SEEN", "INSERTED", "UPDATED", "INVALID",
            ],
            &imports,
        ));
    }
    out.join("\n")
}

/// What `intake aggregate` asks.
pub struct Question<'a> {
    /// The dataset.
    pub dataset: &'a str,
    /// The measure.
    pub measure: &'a str,
    /// The dimension to group by.
    pub group_by: Option<&'a str>,
    /// `dimension = value` filters.
    pub filters: &'a [(String, String)],
}

/// `intake aggregate`.
///
/// # Errors
/// When the server is unreachable or refuses (its problem is said).
pub async fn aggregate(
    server: &Server,
    question: &Question<'_>,
) -> anyhow::Result<std::process::ExitCode> {
    let api = Api::new(&server.server, server.token.clone())?;
    let mut query: Vec<(&str, &str)> = vec![("measure", question.measure)];
    if let Some(group_by) = question.group_by {
        query.push(("group_by", group_by));
    }
    query.extend(
        question
            .filters
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str())),
    );
    let path = format!("/v1/datasets/{}/aggregate", question.dataset);
    let body = api.get_with(&path, &query).await?;
    print(server, &body, |body| {
        let rows: Vec<Vec<String>> = body["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|g| {
                let mut row = vec![text(&g["group"]), text(&g["count"])];
                row.extend(
                    ["mean", "stddev", "min", "p25", "p50", "p75", "max"]
                        .iter()
                        .map(|f| number(&g[*f])),
                );
                row
            })
            .collect();
        if rows.is_empty() {
            return "no records".to_owned();
        }
        let group = question.group_by.unwrap_or("GROUP").to_ascii_uppercase();
        table(
            &[
                &group, "COUNT", "MEAN", "STDDEV", "MIN", "P25", "P50", "P75", "MAX",
            ],
            &rows,
        )
    });
    Ok(std::process::ExitCode::SUCCESS)
}

/// `intake records`.
///
/// # Errors
/// When the server is unreachable or refuses (its problem is said).
pub async fn records(
    server: &Server,
    dataset: &str,
    filters: &[(String, String)],
    limit: u32,
) -> anyhow::Result<std::process::ExitCode> {
    let api = Api::new(&server.server, server.token.clone())?;
    let limit = limit.to_string();
    let mut query: Vec<(&str, &str)> = vec![("limit", &limit)];
    query.extend(filters.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let body = api
        .get_with(&format!("/v1/datasets/{dataset}/records"), &query)
        .await?;
    print(server, &body, |body| {
        let records = body["records"].as_array().cloned().unwrap_or_default();
        if records.is_empty() {
            return "no records".to_owned();
        }
        let names = |part: &str| -> BTreeSet<String> {
            records
                .iter()
                .filter_map(|r| r[part].as_object())
                .flat_map(|o| o.keys().cloned())
                .collect()
        };
        let (dimensions, measures) = (names("dimensions"), names("measures"));
        // A dataset with neither (customers) shows its other fields instead.
        let attributes = if dimensions.is_empty() && measures.is_empty() {
            names("attributes")
        } else {
            BTreeSet::new()
        };
        let mut header = vec!["KEY".to_owned()];
        header.extend(dimensions.iter().cloned());
        header.extend(measures.iter().cloned());
        header.extend(attributes.iter().cloned());
        let rows: Vec<Vec<String>> = records
            .iter()
            .map(|r| {
                let mut row = vec![text(&r["key"])];
                row.extend(dimensions.iter().map(|d| text(&r["dimensions"][d])));
                row.extend(measures.iter().map(|m| number(&r["measures"][m])));
                row.extend(attributes.iter().map(|a| text(&r["attributes"][a])));
                row
            })
            .collect();
        let header: Vec<&str> = header.iter().map(String::as_str).collect();
        format!(
            "{}\n{} of {} records",
            table(&header, &rows),
            rows.len(),
            text(&body["total"])
        )
    });
    Ok(std::process::ExitCode::SUCCESS)
}
