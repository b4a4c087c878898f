//! The outbox events an import writes (DESIGN §4), built here so every store writes
//! the same payloads.

use serde_json::json;

use crate::merge::{Change, ChangeKind, Verdict};
use crate::model::{DatasetName, ImportId, ImportReport};
use crate::ports::{CancelledCallback, EventKind};

/// The kind of event an accepted change makes: stores ask whether anyone wants it
/// before they build the event.
pub fn change_kind(change: &Change) -> EventKind {
    match change.kind {
        ChangeKind::Created => EventKind::RecordCreated,
        ChangeKind::Updated => EventKind::RecordUpdated,
        ChangeKind::Deleted => EventKind::RecordDeleted,
    }
}

/// The `record.created`/`record.updated`/`record.deleted` event of one accepted change
/// (a deletion's record is the state the key had).
pub fn change_event(
    dataset: &DatasetName,
    import: &ImportId,
    change: &Change,
) -> (EventKind, serde_json::Value) {
    let kind = change_kind(change);
    let payload = json!({
        "dataset": dataset,
        "import": import,
        "key": change.record.key.canonical(),
        "record": change.record,
    });
    (kind, payload)
}

/// The `import.completed`/`import.failed` event of a finished import.
pub fn import_event(
    dataset: &DatasetName,
    import: &ImportId,
    verdict: Verdict,
    report: &ImportReport,
) -> (EventKind, serde_json::Value) {
    let kind = match verdict {
        Verdict::Commit => EventKind::ImportCompleted,
        Verdict::Reject => EventKind::ImportFailed,
    };
    let payload = json!({"dataset": dataset, "import": import, "report": report});
    (kind, payload)
}

/// Logs the callbacks an import cancelled, once it committed: one line each.
pub(super) fn log_cancelled(
    dataset: &DatasetName,
    import: &ImportId,
    cancelled: &[CancelledCallback],
) {
    for c in cancelled {
        if c.deleted {
            tracing::info!(%dataset, %import, key = %c.key, version = c.version,
                "callback cancelled: the record was deleted");
        } else {
            tracing::info!(%dataset, %import, key = %c.key, version = c.version,
                replaced_by = c.replaced_by, "callback cancelled: a newer version arrived first");
        }
    }
}
