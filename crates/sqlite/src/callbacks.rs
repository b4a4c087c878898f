//! Callback timers (ADR 20): a round of firing takes the earliest due pending timers,
//! writes each one's `record.callback` event (the record read from history at the
//! timer's version) with its deliveries, and marks them fired, in one `BEGIN IMMEDIATE`
//! transaction: SQLite runs one writer at a time, so rounds never overlap, and a crash
//! before the commit leaves the timers pending.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use intake_domain::DatasetName;
use intake_domain::callbacks::callback_event;
use intake_domain::ports::{
    CallbackFiring, CallbackInfo, CallbackListing, CallbackStatus, CallbackTimers, DeliveryError,
    DueCallback, EventKind,
};
use sqlx::SqliteConnection;

use crate::deliveries::audience;
use crate::writer::Fanout;
use crate::{SqliteStore, lock_timed_out, parse_ts, ts, unexpected};

/// JSON text of `rows`, for `json_each`.
fn json_rows(rows: &[serde_json::Value]) -> String {
    serde_json::Value::Array(rows.to_vec()).to_string()
}

#[async_trait::async_trait]
impl CallbackTimers for SqliteStore {
    async fn fire_due(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<CallbackFiring, DeliveryError> {
        let at = ts(now);
        let mut tx = match self.writes.begin_with("BEGIN IMMEDIATE").await {
            // An import holds the single write lock: nothing can be fired now.
            Err(e) if lock_timed_out(&e) => return Ok(CallbackFiring::Idle(None)),
            other => other.map_err(unexpected("firing callbacks"))?,
        };
        let rows: Vec<(i64, String, String, Option<i64>, String, String)> = sqlx::query_as(
            "SELECT id, dataset, key, version, import_id, due_at FROM callbacks \
             WHERE status = 'pending' AND due_at <= ?1 ORDER BY due_at LIMIT ?2",
        )
        .bind(&at)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await
        .map_err(unexpected("claiming callback timers"))?;
        if rows.is_empty() {
            let next: Option<String> =
                sqlx::query_scalar("SELECT MIN(due_at) FROM callbacks WHERE status = 'pending'")
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(unexpected("finding the next callback"))?;
            tx.rollback()
                .await
                .map_err(unexpected("firing callbacks"))?;
            return Ok(CallbackFiring::Idle(
                next.map(|t| parse_ts(&t)).transpose()?,
            ));
        }
        let mut due = rows
            .into_iter()
            .map(|(id, dataset, key, version, import, due_at)| {
                Ok(DueCallback {
                    id,
                    dataset: DatasetName::parse(dataset)?,
                    key,
                    version,
                    import,
                    due_at: parse_ts(&due_at)?,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        due.sort_by_key(|d| (d.due_at, d.id));
        let mut by_dataset: BTreeMap<&str, Vec<&DueCallback>> = BTreeMap::new();
        for d in &due {
            by_dataset.entry(d.dataset.as_str()).or_default().push(d);
        }
        let mut events: HashMap<i64, String> = HashMap::new();
        for (dataset, timers) in by_dataset {
            let audience = audience(&mut tx, &timers[0].dataset)
                .await
                .map_err(unexpected("reading the dataset's subscriptions"))?;
            if !audience.wants(EventKind::RecordCallback) {
                continue;
            }
            let records = at_versions(&mut tx, dataset, &timers).await?;
            let mut fanout = Fanout::default();
            for d in timers {
                let payload = callback_event(d, records.get(&d.id).cloned(), now);
                events.insert(
                    d.id,
                    fanout.add(&audience, EventKind::RecordCallback, &payload),
                );
            }
            fanout
                .write(&mut tx, dataset, &at)
                .await
                .map_err(unexpected("writing callback events"))?;
        }
        let fired: Vec<serde_json::Value> = due
            .iter()
            .map(|d| serde_json::json!([d.id, events.get(&d.id)]))
            .collect();
        sqlx::query(
            "UPDATE callbacks SET status = 'fired', settled_at = ?1, event_id = u.event \
             FROM (SELECT value ->> 0 AS id, value ->> 1 AS event FROM json_each(?2)) AS u \
             WHERE callbacks.id = u.id",
        )
        .bind(&at)
        .bind(json_rows(&fired))
        .execute(&mut *tx)
        .await
        .map_err(unexpected("firing callbacks"))?;
        tx.commit().await.map_err(unexpected("firing callbacks"))?;
        Ok(CallbackFiring::Fired(due))
    }

    async fn pending(&self) -> Result<u64, DeliveryError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM callbacks WHERE status = 'pending'")
            .fetch_one(&self.pool)
            .await
            .map_err(unexpected("counting callback timers"))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn list(
        &self,
        dataset: &DatasetName,
        listing: &CallbackListing,
    ) -> Result<Vec<CallbackInfo>, DeliveryError> {
        type Row = (
            i64,
            String,
            Option<i64>,
            String,
            String,
            String,
            Option<String>,
            Option<i64>,
            Option<String>,
        );
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, key, version, import_id, due_at, status, settled_at, replaced_by, \
               event_id \
             FROM callbacks \
             WHERE dataset = ?1 AND (?2 IS NULL OR status = ?2) AND (?3 IS NULL OR id < ?3) \
             ORDER BY id DESC LIMIT ?4",
        )
        .bind(dataset.as_str())
        .bind(listing.status.map(CallbackStatus::as_str))
        .bind(listing.before)
        .bind(i64::from(listing.limit))
        .fetch_all(&self.pool)
        .await
        .map_err(unexpected("listing callbacks"))?;
        rows.into_iter()
            .map(
                |(id, key, version, import, due_at, status, settled_at, replaced_by, event)| {
                    Ok(CallbackInfo {
                        id,
                        key,
                        version,
                        import,
                        due_at: parse_ts(&due_at)?,
                        status: CallbackStatus::parse(&status)
                            .ok_or_else(|| anyhow::anyhow!("unknown callback status {status:?}"))?,
                        settled_at: settled_at.as_deref().map(parse_ts).transpose()?,
                        replaced_by,
                        event,
                    })
                },
            )
            .collect()
    }

    async fn prune(&self, before: DateTime<Utc>, limit: u32) -> Result<u64, DeliveryError> {
        let pruned = sqlx::query(
            "DELETE FROM callbacks WHERE id IN ( \
               SELECT id FROM callbacks \
               WHERE status <> 'pending' AND settled_at < ?1 LIMIT ?2)",
        )
        .bind(ts(before))
        .bind(i64::from(limit))
        .execute(&self.writes)
        .await
        .map_err(unexpected("pruning settled callbacks"))?;
        Ok(pruned.rows_affected())
    }
}

/// Each timer's record as it was at its version: the newest history row of its key with
/// that version.
async fn at_versions(
    conn: &mut SqliteConnection,
    dataset: &str,
    timers: &[&DueCallback],
) -> Result<HashMap<i64, serde_json::Value>, DeliveryError> {
    let wanted: Vec<serde_json::Value> = timers
        .iter()
        .map(|d| serde_json::json!([d.id, d.key, d.version]))
        .collect();
    let rows: Vec<(i64, Option<String>)> = sqlx::query_as(
        "SELECT t.value ->> 0, (SELECT h.record FROM record_history h \
           WHERE h.dataset = ?1 AND h.key = t.value ->> 1 \
             AND coalesce(h.record ->> 'v', h.record ->> 'version') IS t.value ->> 2 \
           ORDER BY h.seq DESC LIMIT 1) \
         FROM json_each(?2) AS t",
    )
    .bind(dataset)
    .bind(json_rows(&wanted))
    .fetch_all(&mut *conn)
    .await
    .map_err(unexpected("reading records at their versions"))?;
    rows.into_iter()
        .filter_map(|(id, record)| record.map(|r| (id, r)))
        .map(|(id, r)| {
            // Stored compact; the event carries the record's serde form, as clients see it.
            let record = intake_domain::Record::from_stored(&r).map_err(anyhow::Error::new)?;
            Ok((
                id,
                serde_json::to_value(&record).map_err(anyhow::Error::new)?,
            ))
        })
        .collect()
}
