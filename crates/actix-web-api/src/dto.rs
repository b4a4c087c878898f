//! The wire types of `/v1`: request bodies (`…Body`) and responses (`…Response`).
//! They are the API's contract with its clients, kept apart from the domain types so
//! that the domain can change without changing what clients see.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use intake_domain::merge::Verdict;
use intake_domain::model::FieldDifference;
use intake_domain::ports::{
    Dataset, GroupAggregate, ImportSummary, PublishedContract, StoredRecord, TopRecord,
};
use intake_domain::{Conflict, ConflictKind, ImportId, ImportReport, ImportStatus, Location};
use intake_domain::{Record, RecordError};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

/// A new dataset with its first contract.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DatasetBody {
    /// 1–63 characters: lowercase letters, digits, `-` and `_`, starting with a letter.
    #[schema(example = "exam-results", pattern = r"^[a-z][a-z0-9_-]{0,62}$")]
    pub name: String,
    /// The first contract (version 1), as DESIGN §5 describes.
    #[schema(value_type = Object)]
    pub contract: Value,
}

/// A dataset.
#[derive(Debug, Serialize, ToSchema)]
pub struct DatasetResponse {
    /// Its name.
    pub name: String,
    /// The contract version new imports are processed with.
    pub current_contract: u32,
    /// Increases with every committed import.
    pub revision: u64,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Records in its latest state (only when one dataset is read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub records: Option<u64>,
}

impl DatasetResponse {
    pub(crate) fn new(d: &Dataset, records: Option<u64>) -> Self {
        Self {
            name: d.name.to_string(),
            current_contract: d.current_contract.get(),
            revision: d.revision.get(),
            created_at: d.created_at,
            records,
        }
    }
}

/// How to delete a dataset.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteDatasetQuery {
    /// Also remove its documents from the vault and free its name (default: the
    /// documents are kept, and the name stays taken until they are purged).
    #[serde(default)]
    pub purge: bool,
}

/// What deleting a dataset removed.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeletedDatasetResponse {
    /// Its name.
    pub name: String,
    /// Records its latest state held; they, their history, events, callbacks,
    /// subscriptions, sources and jobs are gone.
    pub records: u64,
    /// Documents it had in the vault: kept, or removed when `purged`.
    pub documents: u64,
    /// Whether the documents were removed and the name freed.
    pub purged: bool,
}

/// Every dataset, by name.
#[derive(Debug, Serialize, ToSchema)]
pub struct DatasetListResponse {
    /// The datasets.
    pub datasets: Vec<DatasetResponse>,
}

/// A published contract.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContractResponse {
    /// Its dataset.
    pub dataset: String,
    /// Its number (1, 2, 3…).
    pub version: u32,
    /// When it was published.
    pub published_at: DateTime<Utc>,
    /// The contract as written.
    #[schema(value_type = Object)]
    pub contract: Value,
}

impl From<&PublishedContract> for ContractResponse {
    fn from(c: &PublishedContract) -> Self {
        Self {
            dataset: c.dataset.to_string(),
            version: c.version.get(),
            published_at: c.published_at,
            contract: c.contract.to_json(),
        }
    }
}

/// Every contract version of a dataset, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContractListResponse {
    /// The versions.
    pub contracts: Vec<ContractResponse>,
}

/// A draft contract to try against a stored import.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DryRunBody {
    /// The import whose document is read.
    #[schema(pattern = r"^[A-Za-z0-9_-]{1,64}$")]
    pub import_id: String,
    /// The draft contract.
    #[schema(value_type = Object)]
    pub contract: Value,
}

/// Applied or rejected as a whole.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VerdictResponse {
    /// The valid records are applied.
    Commit,
    /// Nothing is applied.
    Reject,
}

impl From<Verdict> for VerdictResponse {
    fn from(v: Verdict) -> Self {
        match v {
            Verdict::Commit => Self::Commit,
            Verdict::Reject => Self::Reject,
        }
    }
}

/// What a draft contract would make of a stored document, merged into an empty
/// dataset. Nothing was written.
#[derive(Debug, Serialize, ToSchema)]
pub struct DryRunResponse {
    /// Whether the document would be applied.
    pub verdict: VerdictResponse,
    /// The report the import would get.
    pub report: ReportResponse,
    /// The first records it would produce, ordered by key.
    pub records: Vec<RecordResponse>,
    /// Records (distinct keys) it would produce in all.
    pub records_total: u64,
    /// The first conflicts it would report.
    pub conflicts: Vec<ConflictResponse>,
}

/// Where an import is in its life.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StatusResponse {
    /// Stored, waiting for a worker.
    Received,
    /// A worker is on it.
    Processing,
    /// Applied.
    Completed,
    /// Rejected or given up; the document stays in the vault.
    Failed,
}

impl From<ImportStatus> for StatusResponse {
    fn from(s: ImportStatus) -> Self {
        match s {
            ImportStatus::Received => Self::Received,
            ImportStatus::Processing => Self::Processing,
            ImportStatus::Completed => Self::Completed,
            ImportStatus::Failed => Self::Failed,
        }
    }
}

/// One document received.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportResponse {
    /// Its id.
    pub id: String,
    /// Its dataset.
    pub dataset: String,
    /// The contract version it is (or was) processed with.
    pub contract_version: u32,
    /// The media type it arrived with.
    pub content_type: String,
    /// Where it came from (`api`, `cli`, …).
    pub source: String,
    /// Bytes stored.
    pub size: u64,
    /// Hex SHA-256 of the bytes.
    pub sha256: String,
    /// When it was stored.
    pub received_at: DateTime<Utc>,
    /// Where it is in its life.
    pub status: StatusResponse,
    /// The report, once processed.
    pub report: Option<ReportResponse>,
    /// Only in the answer to a document sent again (the same bytes, or the same
    /// `Idempotency-Key`): the import it repeats, which is the one shown (nothing new
    /// was stored or applied).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicate_of: Option<String>,
    /// Only while it is `processing`, when the instance answering is the one
    /// processing it: how far it has come.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<ProgressResponse>,
}

/// How far an import being processed has come.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProgressResponse {
    /// Records decoded so far, valid or not.
    pub records_seen: u64,
    /// Bytes of the document read so far.
    pub bytes_read: u64,
    /// The document's size.
    pub bytes_total: u64,
    /// Records decoded per second since this attempt started.
    pub records_per_second: f64,
    /// When this attempt started.
    pub started_at: DateTime<Utc>,
}

impl From<&intake_domain::ingest::ImportProgress> for ProgressResponse {
    fn from(p: &intake_domain::ingest::ImportProgress) -> Self {
        Self {
            records_seen: p.records_seen,
            bytes_read: p.bytes_read,
            bytes_total: p.bytes_total,
            records_per_second: (p.records_per_second * 10.0).round() / 10.0,
            started_at: p.started_at,
        }
    }
}

impl From<&ImportSummary> for ImportResponse {
    fn from(i: &ImportSummary) -> Self {
        Self {
            id: i.id.to_string(),
            dataset: i.import.dataset.to_string(),
            contract_version: i.import.contract.get(),
            content_type: i.import.content_type.clone(),
            source: i.import.source.clone(),
            size: i.size,
            sha256: i.sha256.clone(),
            received_at: i.received_at,
            status: i.status.into(),
            report: i.report.as_ref().map(ReportResponse::from),
            duplicate_of: None,
            progress: None,
        }
    }
}

/// A page of a dataset's imports, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportListResponse {
    /// The imports.
    pub imports: Vec<ImportResponse>,
    /// The page size asked for.
    pub limit: u32,
    /// Imports skipped.
    pub offset: u64,
}

/// Which contract version to reprocess an import with.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReprocessBody {
    /// A published version of the dataset's contract; the current one when absent.
    #[schema(minimum = 1)]
    pub contract_version: Option<u32>,
}

/// Where a record or an error is in its document (whichever the format can tell).
#[derive(Debug, Serialize, ToSchema)]
pub struct LocationResponse {
    /// 1-based position among the document's records.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<u64>,
    /// 1-based line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// 1-based column.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<u64>,
    /// CSV row (the header is row 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub row: Option<u64>,
    /// Element path (`root/record[3]`, `$.items[2]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

impl From<&Location> for LocationResponse {
    fn from(l: &Location) -> Self {
        Self {
            record: l.record,
            line: l.line,
            column: l.column,
            row: l.row,
            path: l.path.clone(),
        }
    }
}

/// One problem with one record, or with the document.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordErrorResponse {
    /// Where it is.
    pub location: LocationResponse,
    /// The contract field at fault, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

/// What processing an import did, record by record.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportResponse {
    /// Records found (valid or not).
    pub seen: u64,
    /// New keys.
    pub inserted: u64,
    /// Keys whose state changed.
    pub updated: u64,
    /// Records that changed nothing.
    pub unchanged: u64,
    /// Records older than the state held, ignored.
    pub superseded: u64,
    /// Records a deletion deleted (ADR 40); absent for an import of a document.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted: Option<u64>,
    /// Records that could not be decoded or mapped.
    pub invalid: u64,
    /// Conflicts reported.
    pub conflicts: u64,
    /// Ratios left out for a zero denominator.
    pub undefined_ratios: u64,
    /// The first 100 errors, in document order.
    pub errors: Vec<RecordErrorResponse>,
    /// Whether there were more errors than listed.
    pub errors_truncated: bool,
}

impl From<&ImportReport> for ReportResponse {
    fn from(r: &ImportReport) -> Self {
        let error = |e: &RecordError| RecordErrorResponse {
            location: (&e.location).into(),
            field: e.field.clone(),
            message: e.message.clone(),
        };
        Self {
            seen: r.seen,
            inserted: r.inserted,
            updated: r.updated,
            unchanged: r.unchanged,
            superseded: r.superseded,
            deleted: (r.deleted > 0).then_some(r.deleted),
            invalid: r.invalid,
            conflicts: r.conflicts,
            undefined_ratios: r.undefined_ratios,
            errors: r.errors.iter().map(error).collect(),
            errors_truncated: r.errors_truncated,
        }
    }
}

/// A record's state.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordResponse {
    /// The canonical key: components joined by `/` (`%` and `/` inside a component
    /// escaped as `%25` and `%2F`). URL-encode it as one path segment.
    #[schema(example = "9863/002299")]
    pub key: String,
    /// The key's components, in contract order.
    pub key_components: Vec<String>,
    /// Its version, when the contract has a version field.
    pub version: Option<i64>,
    /// Values to group and filter by.
    pub dimensions: BTreeMap<String, String>,
    /// Numeric values, derived ratios included.
    pub measures: BTreeMap<String, f64>,
    /// Every other field.
    #[schema(value_type = Object)]
    pub attributes: Value,
    /// The import that produced this state (absent in a dry run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub import_id: Option<String>,
    /// When this state was committed (absent in a dry run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
    /// In a history, `true` for the entry of a deletion: the record had this state
    /// until the import `import_id` deleted it at `updated_at` (absent otherwise).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    #[schema(value_type = Option<bool>)]
    pub deleted: bool,
}

impl From<&Record> for RecordResponse {
    fn from(r: &Record) -> Self {
        Self {
            key: r.key.canonical(),
            key_components: r.key.components().to_vec(),
            version: r.version.map(|v| v.get()),
            dimensions: r
                .dimensions
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            measures: r.measures.iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            attributes: r.attributes.to_json(),
            import_id: None,
            updated_at: None,
            deleted: false,
        }
    }
}

impl From<&StoredRecord> for RecordResponse {
    fn from(s: &StoredRecord) -> Self {
        Self {
            import_id: Some(s.import.to_string()),
            updated_at: Some(s.updated_at),
            deleted: s.deleted,
            ..Self::from(&s.record)
        }
    }
}

/// A page of records, ordered by key.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordListResponse {
    /// The records.
    pub records: Vec<RecordResponse>,
    /// Records matching the filters in all.
    pub total: u64,
    /// The page size asked for.
    pub limit: u32,
    /// Records skipped.
    pub offset: u64,
}

/// A record deleted: the state it had, and the import that deleted it (ADR 40).
#[derive(Debug, Serialize, ToSchema)]
pub struct DeletedRecordResponse {
    /// The canonical key.
    pub key: String,
    /// The state the record had when the deletion was asked.
    pub record: RecordResponse,
    /// The deletion, an import of the dataset: `completed` once applied (its report
    /// counts `deleted`), `received` or `processing` when the answer came first.
    pub import: ImportResponse,
}

/// Every accepted state of one record, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryResponse {
    /// The canonical key.
    pub key: String,
    /// The states.
    pub history: Vec<RecordResponse>,
    /// With `limit`, when more states follow: pass it as `cursor` for the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// A page of a record's history: every state when `limit` is left out (as before
/// pages existed), else at most `limit` (1–1000) after `cursor`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// States at most, 1–1000 (default: every state).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// What kind of disagreement a conflict is.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConflictKindResponse {
    /// One identity key with different identity fields (a student number, two names).
    Identity,
    /// One version of a record with different contents.
    SameVersion,
    /// A repeated key with different contents under `first_wins`.
    DuplicateKey,
}

/// A field on which the data held and the data that arrived disagree.
#[derive(Debug, Serialize, ToSchema)]
pub struct DifferenceResponse {
    /// The field.
    pub field: String,
    /// What was held (`null`: absent): text, a number, a boolean or JSON.
    #[schema(value_type = Value)]
    pub existing: Value,
    /// What arrived (`null`: absent).
    #[schema(value_type = Value)]
    pub incoming: Value,
}

/// A disagreement found while merging.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConflictResponse {
    /// The import that reported it (absent in a dry run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub import_id: Option<String>,
    /// Its kind.
    pub kind: ConflictKindResponse,
    /// The canonical key of the incoming record.
    pub key: String,
    /// The identity key, for identity conflicts.
    pub identity: Option<String>,
    /// The fields that disagree.
    pub differences: Vec<DifferenceResponse>,
    /// Where the incoming record was.
    pub location: LocationResponse,
}

impl ConflictResponse {
    pub(crate) fn new(import: Option<&ImportId>, c: &Conflict) -> Self {
        let value = |v: &Option<intake_domain::FieldValue>| {
            v.as_ref()
                .map_or(Value::Null, intake_domain::FieldValue::to_json)
        };
        let difference = |d: &FieldDifference| DifferenceResponse {
            field: d.field.clone(),
            existing: value(&d.existing),
            incoming: value(&d.incoming),
        };
        Self {
            import_id: import.map(ToString::to_string),
            kind: match c.kind {
                ConflictKind::Identity => ConflictKindResponse::Identity,
                ConflictKind::SameVersion => ConflictKindResponse::SameVersion,
                ConflictKind::DuplicateKey => ConflictKindResponse::DuplicateKey,
            },
            key: c.key.canonical(),
            identity: c.identity.clone(),
            differences: c.differences.iter().map(difference).collect(),
            location: (&c.location).into(),
        }
    }
}

/// A page of a dataset's conflicts, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConflictListResponse {
    /// The conflicts.
    pub conflicts: Vec<ConflictResponse>,
    /// The page size asked for.
    pub limit: u32,
    /// Conflicts skipped.
    pub offset: u64,
}

/// A page: `limit` items (1–1000, default 100) after skipping `offset`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page size, 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// Items to skip (default 0).
    pub offset: Option<u64>,
}

/// `?wait=true` on an import.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImportQuery {
    /// Answer with the finished import (or `202` if processing outlasts the wait).
    pub wait: Option<bool>,
}

/// `/healthz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthResponse {
    /// Always `ok` while the process serves.
    pub status: String,
    /// The service's version.
    pub version: String,
    /// Seconds since it started.
    pub uptime_seconds: u64,
}

/// One dependency as `/readyz` found it.
#[derive(Debug, Serialize, ToSchema)]
pub struct DependencyResponse {
    /// What it is (`sqlite`, `postgres`, …).
    pub name: String,
    /// `up` or `down`.
    pub status: String,
    /// No longer sent: why a dependency is down (a cause chain can name hosts) goes
    /// to the log, never to anyone who can reach `/readyz`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(deprecated)]
    pub error: Option<String>,
}

/// `/readyz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReadyResponse {
    /// `ready` when every dependency is up; `degraded` when only optional ones (Redis)
    /// are down; `unavailable` otherwise.
    pub status: String,
    /// Each dependency by name: `up`, `down`, or `degraded` (an optional one, such
    /// as Redis, that is down).
    pub checks: std::collections::BTreeMap<String, String>,
    /// Each dependency (the same answers as `checks`, as a list).
    pub dependencies: Vec<DependencyResponse>,
}

/// The statistics of one group. With every record of the group excluded (an undefined
/// ratio), `count` is 0 and the statistics are `null`.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupAggregateResponse {
    /// The group's value of `group_by` (`null` without grouping).
    pub group: Option<String>,
    /// Values aggregated.
    pub count: u64,
    /// Their sum.
    pub sum: Option<f64>,
    /// Their mean.
    pub mean: Option<f64>,
    /// Population standard deviation.
    pub stddev: Option<f64>,
    /// The smallest.
    pub min: Option<f64>,
    /// The largest.
    pub max: Option<f64>,
    /// 25th percentile (linear interpolation between closest ranks).
    pub p25: Option<f64>,
    /// Median.
    pub p50: Option<f64>,
    /// 75th percentile.
    pub p75: Option<f64>,
    /// Records of the group without this measure (an undefined ratio), left out.
    pub excluded: u64,
}

impl From<&GroupAggregate> for GroupAggregateResponse {
    fn from(g: &GroupAggregate) -> Self {
        let a = g.aggregate.as_ref();
        let p = |f: f64| a.and_then(|a| a.percentile(f));
        Self {
            group: g.group.clone(),
            count: a.map_or(0, |a| a.count),
            sum: a.map(|a| a.sum),
            mean: a.map(|a| a.mean),
            stddev: a.map(|a| a.stddev),
            min: a.map(|a| a.min),
            max: a.map(|a| a.max),
            p25: p(0.25),
            p50: p(0.5),
            p75: p(0.75),
            excluded: g.excluded,
        }
    }
}

/// Aggregates of a measure per group, groups ordered by value.
#[derive(Debug, Serialize, ToSchema)]
pub struct AggregateResponse {
    /// The dataset.
    pub dataset: String,
    /// The measure aggregated.
    pub measure: String,
    /// The dimension grouped by (`null`: one group of every record).
    pub group_by: Option<String>,
    /// The dimension filters applied.
    pub filters: BTreeMap<String, String>,
    /// One entry per group with at least one record; none when nothing matched.
    pub groups: Vec<GroupAggregateResponse>,
}

/// A record and its rank in its group.
#[derive(Debug, Serialize, ToSchema)]
pub struct RankedRecordResponse {
    /// 1 for the highest.
    pub rank: u32,
    /// The measure's value.
    pub score: f64,
    /// The record.
    pub record: RecordResponse,
}

/// The top records of one group, highest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct TopGroupResponse {
    /// The group's value of `group_by`.
    pub group: String,
    /// Up to `k` records; ties by key.
    pub records: Vec<RankedRecordResponse>,
}

/// The `k` records with the highest value of a measure in each group.
#[derive(Debug, Serialize, ToSchema)]
pub struct TopResponse {
    /// The dataset.
    pub dataset: String,
    /// The measure ranked by.
    pub measure: String,
    /// The dimension grouped by.
    pub group_by: String,
    /// Records per group asked for.
    pub k: u32,
    /// The groups, ordered by value.
    pub groups: Vec<TopGroupResponse>,
}

impl TopGroupResponse {
    /// Groups consecutive records of the same group (the engines order by group).
    pub fn group(top: &[TopRecord]) -> Vec<Self> {
        let mut groups: Vec<Self> = Vec::new();
        for t in top {
            match groups.last_mut() {
                Some(g) if g.group == t.group => {}
                _ => groups.push(Self {
                    group: t.group.clone(),
                    records: Vec::new(),
                }),
            }
            if let Some(g) = groups.last_mut() {
                g.records.push(RankedRecordResponse {
                    rank: u32::try_from(g.records.len() + 1).unwrap_or(u32::MAX),
                    score: t.score,
                    record: RecordResponse::from(&t.record),
                });
            }
        }
        groups
    }
}

/// What `POST /import` (Markr) stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct MarkrImportResponse {
    /// Results in the document.
    pub imported: u64,
}

/// The Markr aggregate of one test: the percentage scores' statistics.
#[derive(Debug, Serialize, ToSchema)]
pub struct MarkrAggregateResponse {
    /// Mean percentage.
    pub mean: f64,
    /// Population standard deviation.
    pub stddev: f64,
    /// Lowest percentage.
    pub min: f64,
    /// Highest percentage.
    pub max: f64,
    /// 25th percentile (linear interpolation).
    pub p25: f64,
    /// Median.
    pub p50: f64,
    /// 75th percentile.
    pub p75: f64,
    /// Results with a percentage (a result with zero available marks has none).
    pub count: u64,
}

/// Who is calling and what it may do.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionResponse {
    /// The token's name (absent with authentication off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caller: Option<String>,
    /// Its scopes, `admin` implying the others: `read`, `write`, `admin`.
    pub scopes: Vec<String>,
    /// Whether the server asks for tokens at all.
    pub authentication: bool,
}
