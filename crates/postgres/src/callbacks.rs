//! Callback timers (ADR 20): a round of firing locks the earliest due pending timers
//! with `FOR UPDATE SKIP LOCKED` (so any number of workers in any number of instances
//! never fire the same one), writes each one's `record.callback` event (the record read
//! from history at the timer's version) with its deliveries, and marks them fired, in
//! one transaction: its row locks are the claim, released by a commit or a crash.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use intake_domain::DatasetName;
use intake_domain::callbacks::callback_event;
use intake_domain::ports::{
    CallbackFiring, CallbackInfo, CallbackListing, CallbackStatus, CallbackTimers, DeliveryError,
    DueCallback, EventKind,
};

use crate::deliveries::audience;
use crate::writer::Fanout;
use crate::{PgStore, unexpected};

/// How soon (ms) due timers locked by another transaction are looked at again.
const LOCKED_RECHECK_MS: i64 = 50;

#[async_trait::async_trait]
impl CallbackTimers for PgStore {
    async fn fire_due(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<CallbackFiring, DeliveryError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(unexpected("firing callbacks"))?;
        let rows: Vec<(i64, String, String, Option<i64>, String, DateTime<Utc>)> = sqlx::query_as(
            "SELECT id, dataset, key, version, import_id, due_at FROM callbacks \
             WHERE status = 'pending' AND due_at <= $1 \
             ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED",
        )
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await
        .map_err(unexpected("claiming callback timers"))?;
        if rows.is_empty() {
            // Due timers locked by another transaction (a round firing them, an import
            // cancelling them) are looked at again shortly: a rollback sends no wake-up.
            let next: Option<DateTime<Utc>> =
                sqlx::query_scalar("SELECT MIN(due_at) FROM callbacks WHERE status = 'pending'")
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(unexpected("finding the next callback"))?;
            tx.rollback()
                .await
                .map_err(unexpected("firing callbacks"))?;
            let locked = |at: DateTime<Utc>| at <= now;
            let again = now + chrono::Duration::milliseconds(LOCKED_RECHECK_MS);
            return Ok(CallbackFiring::Idle(
                next.map(|at| if locked(at) { again } else { at }),
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
                    due_at,
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
                let event = fanout.add(&audience, EventKind::RecordCallback, payload.to_string());
                events.insert(d.id, event);
            }
            fanout
                .write(&mut tx, dataset)
                .await
                .map_err(unexpected("writing callback events"))?;
        }
        let ids: Vec<i64> = due.iter().map(|d| d.id).collect();
        let event_ids: Vec<Option<&str>> = due
            .iter()
            .map(|d| events.get(&d.id).map(String::as_str))
            .collect();
        sqlx::query(
            "UPDATE callbacks c SET status = 'fired', settled_at = $3, event_id = u.event \
             FROM UNNEST($1::bigint[], $2::text[]) AS u(id, event) WHERE c.id = u.id",
        )
        .bind(&ids)
        .bind(&event_ids)
        .bind(now)
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
            DateTime<Utc>,
            String,
            Option<DateTime<Utc>>,
            Option<i64>,
            Option<String>,
        );
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, key, version, import_id, due_at, status, settled_at, replaced_by, \
               event_id \
             FROM callbacks \
             WHERE dataset = $1 AND ($2::text IS NULL OR status = $2) \
               AND ($3::bigint IS NULL OR id < $3) \
             ORDER BY id DESC LIMIT $4",
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
                        due_at,
                        status: CallbackStatus::parse(&status)
                            .ok_or_else(|| anyhow::anyhow!("unknown callback status {status:?}"))?,
                        settled_at,
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
               WHERE status <> 'pending' AND settled_at < $1 LIMIT $2)",
        )
        .bind(before)
        .bind(i64::from(limit))
        .execute(&self.pool)
        .await
        .map_err(unexpected("pruning settled callbacks"))?;
        Ok(pruned.rows_affected())
    }
}

/// Each timer's record as it was at its version: the newest history row of its key with
/// that version.
async fn at_versions(
    conn: &mut sqlx::PgConnection,
    dataset: &str,
    timers: &[&DueCallback],
) -> Result<HashMap<i64, serde_json::Value>, DeliveryError> {
    let ids: Vec<i64> = timers.iter().map(|d| d.id).collect();
    let keys: Vec<&str> = timers.iter().map(|d| d.key.as_str()).collect();
    let versions: Vec<Option<i64>> = timers.iter().map(|d| d.version).collect();
    let rows: Vec<(i64, Option<String>)> = sqlx::query_as(
        "SELECT t.id, (SELECT h.record::text FROM record_history h \
           WHERE h.dataset = $1 AND h.key = t.k \
             AND (COALESCE(h.record ->> 'v', h.record ->> 'version'))::bigint IS NOT DISTINCT FROM t.v \
           ORDER BY h.seq DESC LIMIT 1) \
         FROM UNNEST($2::bigint[], $3::text[], $4::bigint[]) AS t(id, k, v)",
    )
    .bind(dataset)
    .bind(&ids)
    .bind(&keys)
    .bind(&versions)
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
