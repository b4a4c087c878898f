//! Deleting records (ADR 40). A deletion is a small JSON document in the vault,
//! `{"delete": [{"key": "9863/002299", "import": "…", "updated_at": "…"}],
//! "requested_at": "…"}`, naming each key, the state it had when the deletion was
//! asked, and when. A worker applies it like any import, in one unit of work: each key that
//! has a record loses it, with a `deleted` history entry holding the state it had, a
//! `record.deleted` event and its pending callback cancelled. A key with no record
//! by then changes nothing (`unchanged`); the state named is a record of what was
//! asked, not a condition.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::pipeline::store;
use super::service::ProcessError;
use crate::contract::Contract;
use crate::merge::{Batch, Change, ChangeKind, Verdict};
use crate::model::{ImportReport, Location, RecordError, RecordKey};
use crate::ports::{ImportWriter, StoredRecord, VaultReader};

/// The media type of a deletion document.
pub const MEDIA_TYPE: &str = "application/vnd.intake.deletions+json";

/// Whether a media type names a deletion document, parameters and case aside.
pub(super) fn is_deletion(media_type: &str) -> bool {
    media_type
        .split(';')
        .next()
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case(MEDIA_TYPE))
}

/// The largest deletion document read (ours hold one key).
const MAX_BYTES: usize = 16 << 20;

#[derive(Serialize, Deserialize)]
struct Document {
    delete: Vec<Deletion>,
    /// When it was asked: two requests are two documents, so a deletion that failed
    /// never stands in for a later one (the vault keeps the first of identical ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    requested_at: Option<DateTime<Utc>>,
}

#[derive(Serialize, Deserialize)]
struct Deletion {
    /// The canonical key.
    key: String,
    /// The import the state came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    import: Option<String>,
    /// When the state was committed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    updated_at: Option<DateTime<Utc>>,
}

/// The deletion document of these states, asked at `at`.
pub(super) fn document(states: &[StoredRecord], at: DateTime<Utc>) -> Vec<u8> {
    let document = Document {
        requested_at: Some(at),
        delete: states
            .iter()
            .map(|s| Deletion {
                key: s.record.key.canonical(),
                import: Some(s.import.to_string()),
                updated_at: Some(s.updated_at),
            })
            .collect(),
    };
    serde_json::to_vec(&document).unwrap_or_default()
}

/// Applies a deletion document through the import's writer; the caller finishes it.
pub(super) async fn apply(
    mut reader: Box<dyn VaultReader>,
    contract: &Contract,
    writer: &mut dyn ImportWriter,
) -> Result<(Verdict, ImportReport), ProcessError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = reader.next_chunk().await.map_err(anyhow::Error::new)? {
        bytes.extend_from_slice(&chunk);
        if bytes.len() > MAX_BYTES {
            return Ok(refused(format!(
                "a deletion document holds at most {MAX_BYTES} bytes"
            )));
        }
    }
    let document: Document = match serde_json::from_slice(&bytes) {
        Ok(d) => d,
        Err(e) => return Ok(refused(format!("not a deletion document: {e}"))),
    };
    let arity = contract.key_fields().len();
    let mut report = ImportReport {
        seen: document.delete.len() as u64,
        ..ImportReport::default()
    };
    let mut keys = Vec::with_capacity(document.delete.len());
    for (i, deletion) in document.delete.iter().enumerate() {
        let location = Location {
            record: Some(i as u64 + 1),
            ..Location::default()
        };
        match RecordKey::parse(&deletion.key, arity) {
            Ok(key) => keys.push((key, location)),
            Err(e) => {
                report.invalid += 1;
                report.push_error(RecordError {
                    location,
                    field: None,
                    message: e.to_string(),
                });
            }
        }
    }
    let wanted: Vec<RecordKey> = keys.iter().map(|(k, _)| k.clone()).collect();
    let (mut states, _) = writer.load(&wanted, &[]).await.map_err(store)?;
    let mut batch = Batch::default();
    for (key, location) in keys {
        // A key named twice is deleted once.
        match states.remove(&key) {
            Some(record) => {
                report.deleted += 1;
                batch.changes.push(Change {
                    kind: ChangeKind::Deleted,
                    record,
                    location,
                    callback_after: None,
                });
            }
            None => report.unchanged += 1,
        }
    }
    if !batch.changes.is_empty() {
        writer.apply(&batch).await.map_err(store)?;
    }
    Ok((Verdict::Commit, report))
}

/// The verdict on a document that is not a deletion document: nothing is applied.
fn refused(message: String) -> (Verdict, ImportReport) {
    let mut report = ImportReport::default();
    report.push_error(RecordError {
        location: Location::default(),
        field: None,
        message,
    });
    (Verdict::Reject, report)
}
