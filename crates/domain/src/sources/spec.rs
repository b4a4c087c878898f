//! What a pull source is, as a client declares it (DESIGN §9, issue 18): which adapter
//! fetches it (`kind`), from where, how often, where its records are, how its pages
//! follow one another, how it authenticates (a secret named, never given) and how it
//! asks only for what changed.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Which adapter fetches a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// Pages of a JSON API, records at a JSON path, followed by cursor, page number or
    /// `Link` header.
    JsonApi,
    /// One whole document (the contract's format) fetched with conditional requests.
    HttpFile,
}

impl SourceKind {
    /// Its name as given and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::JsonApi => "json_api",
            Self::HttpFile => "http_file",
        }
    }
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a JSON API's pages follow one another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Pagination {
    /// A response field names the next cursor, sent back as a query parameter; an
    /// absent or null cursor ends the run.
    Cursor {
        /// The query parameter the cursor is sent as.
        cursor_param: String,
        /// The JSON dotted path of the next cursor in a response.
        next_cursor: String,
    },
    /// Numbered pages (the first is 1); an empty or short page ends the run.
    Page {
        /// The query parameter of the page number.
        page_param: String,
        /// The query parameter of the page size, if the API takes one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size_param: Option<String>,
        /// Records per page: a page with fewer is the last.
        size: u32,
    },
    /// The `Link: <…>; rel="next"` header of each response (same host only).
    Link,
}

/// The header a source authenticates with; its value is `prefix` and the secret named.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceAuth {
    /// The header's name (`Authorization`, `X-Api-Key`).
    pub header: String,
    /// Put before the secret (`"Bearer "`).
    #[serde(default)]
    pub prefix: String,
    /// The secret's name: its value comes from `INTAKE_SECRET_<NAME>` or the
    /// `[secrets]` table of the configuration, never from the API.
    pub secret: String,
}

/// Asking only for what changed: `param` is sent with the highest `field` seen by the
/// last complete run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Incremental {
    /// The query parameter (`updated_since`).
    pub param: String,
    /// The record field (JSON dotted path within a record) whose highest value is sent.
    pub field: String,
}

/// A source as declared by a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// Its name, unique within its dataset (same rule as a dataset name).
    pub name: String,
    /// Which adapter fetches it.
    pub kind: SourceKind,
    /// The first page or the file (`http` or `https`).
    pub url: String,
    /// How often a run starts (`"30s"`, `"5m"`, `"1h"`).
    pub schedule: Every,
    /// Where the records are in a page (JSON dotted path); the contract's `records`
    /// when absent. `json_api` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<String>,
    /// How pages follow one another; one page per run when absent. `json_api` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pagination: Option<Pagination>,
    /// The header to authenticate with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<SourceAuth>,
    /// Asking only for what changed. `json_api` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incremental: Option<Incremental>,
    /// Whether runs are held.
    #[serde(default)]
    pub paused: bool,
}

/// A period written `"500ms"`, `"30s"`, `"5m"` or `"1h"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Every(Duration);

impl Every {
    /// The period.
    pub fn get(self) -> Duration {
        self.0
    }

    /// A period of `d`.
    pub fn of(d: Duration) -> Self {
        Self(d)
    }
}

impl TryFrom<String> for Every {
    type Error = String;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        crate::contract::parse_duration(&text)
            .map(Self)
            .ok_or_else(|| format!("{text:?} is not a period such as \"30s\", \"5m\" or \"1h\""))
    }
}

impl From<Every> for String {
    fn from(every: Every) -> Self {
        let ms = every.0.as_millis();
        match ms {
            0 => "0s".into(),
            ms if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
            ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
            ms if ms % 1_000 == 0 => format!("{}s", ms / 1_000),
            ms => format!("{ms}ms"),
        }
    }
}

/// One thing wrong with a declared source, for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecIssue {
    /// The field at fault (`pagination.size`).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl SpecIssue {
    fn new(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for SpecIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// The shortest schedule: a source is not a busy loop.
pub const MIN_SCHEDULE: Duration = Duration::from_secs(1);

impl SourceSpec {
    /// Everything wrong with the declaration that can be told without IO (the URL's
    /// addresses are checked by the adapter, the contract by the service).
    pub fn issues(&self) -> Vec<SpecIssue> {
        let mut issues = Vec::new();
        if let Err(e) = crate::DatasetName::parse(self.name.clone()) {
            let text = e.to_string().replace("dataset name", "source name");
            issues.push(SpecIssue::new("name", text));
        }
        match url::Url::parse(&self.url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
            Ok(u) => issues.push(SpecIssue::new(
                "url",
                format!("only http and https URLs with a host are fetched, not {u}"),
            )),
            Err(e) => issues.push(SpecIssue::new("url", format!("not a URL: {e}"))),
        }
        if self.schedule.get() < MIN_SCHEDULE {
            issues.push(SpecIssue::new("schedule", "the shortest schedule is 1s"));
        }
        if self.kind == SourceKind::HttpFile {
            for (field, given) in [
                ("records", self.records.is_some()),
                ("pagination", self.pagination.is_some()),
                ("incremental", self.incremental.is_some()),
            ] {
                if given {
                    let why = "an http_file source fetches one whole document: only json_api sources take it";
                    issues.push(SpecIssue::new(field, why));
                }
            }
        }
        match &self.pagination {
            Some(Pagination::Cursor {
                cursor_param,
                next_cursor,
            }) => {
                blank(&mut issues, "pagination.cursor_param", cursor_param);
                blank(&mut issues, "pagination.next_cursor", next_cursor);
            }
            Some(Pagination::Page {
                page_param,
                size_param,
                size,
            }) => {
                blank(&mut issues, "pagination.page_param", page_param);
                if let Some(p) = size_param {
                    blank(&mut issues, "pagination.size_param", p);
                }
                if !(1..=100_000).contains(size) {
                    issues.push(SpecIssue::new("pagination.size", "between 1 and 100000"));
                }
            }
            Some(Pagination::Link) | None => {}
        }
        if let Some(auth) = &self.auth {
            let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
            if auth.header.is_empty() || !auth.header.chars().all(token) {
                issues.push(SpecIssue::new("auth.header", "not a header name"));
            }
            if auth.prefix.chars().any(|c| c.is_control()) {
                issues.push(SpecIssue::new("auth.prefix", "holds a control character"));
            }
            if !is_secret_name(&auth.secret) {
                let why = "a secret's name is 1-64 of A-Z, 0-9 and '_' (its value is set as INTAKE_SECRET_<NAME> or under [secrets])";
                issues.push(SpecIssue::new("auth.secret", why));
            }
        }
        if let Some(inc) = &self.incremental {
            blank(&mut issues, "incremental.param", &inc.param);
            blank(&mut issues, "incremental.field", &inc.field);
        }
        if let Some(records) = &self.records {
            blank(&mut issues, "records", records);
        }
        issues
    }
}

fn blank(issues: &mut Vec<SpecIssue>, field: &str, value: &str) {
    if value.trim().is_empty() {
        issues.push(SpecIssue::new(field, "is empty"));
    }
}

/// Whether `name` may name a secret: 1-64 of `A-Z`, `0-9` and `_`.
pub fn is_secret_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// What a client may change of a source (`PATCH`); absent fields stay.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourcePatch {
    /// A new schedule.
    #[serde(default)]
    pub schedule: Option<Every>,
    /// New pagination (`null` removes it).
    #[serde(default, with = "nullable")]
    pub pagination: Option<Option<Pagination>>,
    /// A new records path (`null`: the contract's).
    #[serde(default, with = "nullable")]
    pub records: Option<Option<String>>,
    /// A new URL.
    #[serde(default)]
    pub url: Option<String>,
    /// New authentication (`null` removes it).
    #[serde(default, with = "nullable")]
    pub auth: Option<Option<SourceAuth>>,
    /// New incremental sync (`null` removes it).
    #[serde(default, with = "nullable")]
    pub incremental: Option<Option<Incremental>>,
    /// Hold or resume runs.
    #[serde(default)]
    pub paused: Option<bool>,
}

impl SourcePatch {
    /// `spec` with this patch applied.
    pub fn apply(&self, spec: &SourceSpec) -> SourceSpec {
        let mut next = spec.clone();
        if let Some(s) = self.schedule {
            next.schedule = s;
        }
        if let Some(p) = &self.pagination {
            next.pagination.clone_from(p);
        }
        if let Some(r) = &self.records {
            next.records.clone_from(r);
        }
        if let Some(u) = &self.url {
            next.url.clone_from(u);
        }
        if let Some(a) = &self.auth {
            next.auth.clone_from(a);
        }
        if let Some(i) = &self.incremental {
            next.incremental.clone_from(i);
        }
        if let Some(p) = self.paused {
            next.paused = p;
        }
        next
    }

    /// Whether the way pages are found changes (the run in progress then starts over).
    pub fn moves_pages(&self) -> bool {
        self.pagination.is_some() || self.url.is_some() || self.records.is_some()
    }
}

/// A field that may be absent (leave it), `null` (clear it) or a value.
mod nullable {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        Option::<T>::deserialize(d).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> SourceSpec {
        serde_json::from_value(json).expect("a spec")
    }

    #[test]
    fn the_issue_example_parses_and_round_trips() {
        let s = spec(serde_json::json!({
            "name": "vendor", "kind": "json_api", "url": "https://api.example/items",
            "schedule": "5m", "records": "data.items",
            "pagination": {"kind": "cursor", "cursor_param": "cursor", "next_cursor": "meta.next"},
            "auth": {"header": "Authorization", "prefix": "Bearer ", "secret": "VENDOR_TOKEN"}
        }));
        assert_eq!(s.schedule.get(), Duration::from_secs(300));
        assert!(s.issues().is_empty(), "{:?}", s.issues());
        let back = serde_json::to_value(&s).unwrap();
        assert_eq!(back["schedule"], "5m");
        assert_eq!(back["pagination"]["kind"], "cursor");
        assert_eq!(spec(back), s);
    }

    #[test]
    fn mistakes_are_named_by_field() {
        let s = spec(serde_json::json!({
            "name": "Vendor", "kind": "http_file", "url": "ftp://x/y", "schedule": "500ms",
            "pagination": {"kind": "link"},
            "auth": {"header": "Bad Header", "secret": "lower"}
        }));
        let fields: Vec<String> = s.issues().into_iter().map(|i| i.field).collect();
        assert_eq!(
            fields,
            [
                "name",
                "url",
                "schedule",
                "pagination",
                "auth.header",
                "auth.secret"
            ]
        );
        let bad: Result<SourceSpec, _> = serde_json::from_value(serde_json::json!({
            "name": "v", "kind": "json_api", "url": "https://a.example/", "schedule": "often"
        }));
        assert!(bad.unwrap_err().to_string().contains("not a period"));
    }

    #[test]
    fn a_patch_leaves_what_it_does_not_name_and_clears_what_is_null() {
        let s = spec(serde_json::json!({
            "name": "v", "kind": "json_api", "url": "https://a.example/", "schedule": "1m",
            "records": "items", "pagination": {"kind": "link"}
        }));
        let patch: SourcePatch = serde_json::from_value(serde_json::json!({
            "pagination": {"kind": "page", "page_param": "page", "size": 100},
            "records": null
        }))
        .unwrap();
        let next = patch.apply(&s);
        assert_eq!(next.records, None);
        assert_eq!(next.schedule, s.schedule);
        assert!(matches!(
            next.pagination,
            Some(Pagination::Page { size: 100, .. })
        ));
        assert!(patch.moves_pages());
    }
}
