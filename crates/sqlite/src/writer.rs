//! An import's unit of work: one SQLite transaction, holding the write lock from its
//! first use (the first batch's load) to `finish`.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use intake_domain::delivery::Audience;
use intake_domain::ingest::{change_event, change_kind, import_event};
use intake_domain::merge::{Batch, Change, ChangeKind, Verdict};
use intake_domain::ports::{
    CancelledCallback, EventKind, Finished, IdentityMap, ImportWriter, Lease, StoreError,
};
use intake_domain::{DatasetName, ImportReport, Record, RecordKey, Revision};
use sqlx::{Row as _, Sqlite, SqliteConnection, SqlitePool, Transaction};

use crate::deliveries::audience;
use crate::queue::expiry;
use crate::{micros, new_id, now, ts, unexpected};

pub(crate) struct SqliteImportWriter {
    pool: SqlitePool,
    tx: Transaction<'static, Sqlite>,
    lease: Lease,
    /// The import's number (`imports.seq`), which history rows name it by.
    import_seq: i64,
    dataset: DatasetName,
    /// Who wants the dataset's events: none is written that nobody wants.
    audience: Audience,
    /// Pending callbacks this import cancelled, logged once it commits.
    cancelled: Vec<CancelledCallback>,
    /// Whether the import is held for a reprocess: written without events or callback
    /// timers (its changes were announced when it first arrived).
    rebuild: bool,
    /// Keys this import created, added to the dataset's count when it commits. The
    /// transaction holds the write lock, so a key the merge found absent is absent.
    added: i64,
}

impl SqliteImportWriter {
    /// Opens the transaction; its first statement writes, so it waits for the write
    /// lock at once instead of failing on upgrade later.
    pub(crate) async fn begin(pool: &SqlitePool, lease: &Lease) -> Result<Self, StoreError> {
        let mut tx = pool
            .begin()
            .await
            .map_err(unexpected("opening an import's transaction"))?;
        let leased: Option<(String, i64, bool)> = sqlx::query_as(
            "UPDATE imports SET lease_expires_at = lease_expires_at \
             WHERE id = ? AND lease_token = ? AND status = 'processing' \
             RETURNING dataset, seq, held_for IS NOT NULL",
        )
        .bind(lease.import.as_str())
        .bind(&lease.token)
        .fetch_optional(&mut *tx)
        .await
        .map_err(unexpected("checking an import's lease"))?;
        let (dataset, import_seq, rebuild) = leased.ok_or(StoreError::LeaseLost)?;
        let dataset = DatasetName::parse(dataset).map_err(anyhow::Error::new)?;
        let audience = if rebuild {
            Audience::default()
        } else {
            audience(&mut tx, &dataset)
                .await
                .map_err(unexpected("reading the dataset's subscriptions"))?
        };
        Ok(Self {
            pool: pool.clone(),
            tx,
            lease: lease.clone(),
            import_seq,
            dataset,
            audience,
            cancelled: Vec::new(),
            rebuild,
            added: 0,
        })
    }

    /// Runs one statement over a JSON array of rows (`json_each(?4)`, each row an array
    /// of strings), after the dataset, import and timestamp parameters. One statement
    /// per table and batch: sqlx hands every SQLite statement to a worker thread, so
    /// per-row statements cost thread switches, not SQL.
    async fn each(&mut self, sql: &str, rows: &[Vec<String>], at: &str) -> Result<(), sqlx::Error> {
        if rows.is_empty() {
            return Ok(());
        }
        sqlx::query(sql)
            .bind(self.dataset.as_str())
            .bind(self.lease.import.as_str())
            .bind(at)
            .bind(json(&rows))
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn write_changes(
        &mut self,
        changes: &[Change],
        at: &str,
        at_us: i64,
    ) -> Result<(), sqlx::Error> {
        let mut rows = Vec::with_capacity(changes.len());
        let mut last = HashMap::with_capacity(changes.len());
        let mut events = Fanout::default();
        for (i, change) in changes.iter().enumerate() {
            let key = change.record.key.canonical();
            last.insert(key.clone(), i);
            let kind = change_kind(change);
            if self.audience.wants(kind) {
                let (kind, payload) = change_event(&self.dataset, &self.lease.import, change);
                events.add(&self.audience, kind, &payload);
            }
            if change.kind == ChangeKind::Created {
                self.added += 1;
            }
            rows.push([key, kind.as_str().to_owned(), change.record.to_stored()]);
        }
        if !rows.is_empty() {
            self.write_states(&rows, at_us).await?;
        }
        events
            .write(&mut self.tx, self.dataset.as_str(), at)
            .await?;
        self.replace_timers(changes, last, at).await
    }

    /// Appends each `[key, kind, stored record]` to history, then points each key's
    /// latest state at its newest row (ADR 23): the document is stored once.
    async fn write_states(&mut self, rows: &[[String; 3]], at_us: i64) -> Result<(), sqlx::Error> {
        // The transaction holds the write lock: the rows appended below are the ones
        // numbered above this.
        let before: i64 = sqlx::query_scalar("SELECT coalesce(max(seq), 0) FROM record_history")
            .fetch_one(&mut *self.tx)
            .await?;
        for rows in rows.chunks(HISTORY_ROWS_PER_STATEMENT) {
            let sql = history_insert(rows.len());
            let mut query = sqlx::query(&sql);
            for [key, kind, record] in rows {
                query = query
                    .bind(self.dataset.as_str())
                    .bind(key)
                    .bind(kind)
                    .bind(record)
                    .bind(self.import_seq)
                    .bind(at_us);
            }
            query.execute(&mut *self.tx).await?;
        }
        // In history's order, so a key changed twice in the batch ends on its last state.
        sqlx::query(
            "INSERT INTO records (dataset, key, seq) \
             SELECT dataset, key, seq FROM record_history WHERE seq > ?1 ORDER BY seq \
             ON CONFLICT (dataset, key) DO UPDATE SET seq = excluded.seq",
        )
        .bind(before)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// A key's newest change cancels its pending callback (kept, `cancelled`, with the
    /// version that replaced it) and schedules its own when the contract asks.
    async fn replace_timers(
        &mut self,
        changes: &[Change],
        last: HashMap<String, usize>,
        at: &str,
    ) -> Result<(), sqlx::Error> {
        if self.rebuild {
            return Ok(());
        }
        // Only a key that had a version before can have a pending timer.
        let touched: Vec<Vec<String>> = last
            .iter()
            .filter(|&(_, &i)| changes[i].kind == ChangeKind::Updated)
            .map(|(key, &i)| {
                let version = changes[i].record.version.map(|v| v.get().to_string());
                vec![key.clone(), version.unwrap_or_default()]
            })
            .collect();
        if !touched.is_empty() {
            let cancelled: Vec<(String, Option<i64>, Option<i64>)> = sqlx::query_as(
                "UPDATE callbacks SET status = 'cancelled', settled_at = ?2, \
                   replaced_by = CAST(NULLIF(t.v, '') AS INTEGER) \
                 FROM (SELECT value ->> 0 AS k, value ->> 1 AS v FROM json_each(?3)) AS t \
                 WHERE callbacks.dataset = ?1 AND callbacks.key = t.k \
                   AND callbacks.status = 'pending' \
                 RETURNING callbacks.key, callbacks.version, callbacks.replaced_by",
            )
            .bind(self.dataset.as_str())
            .bind(at)
            .bind(json(&touched))
            .fetch_all(&mut *self.tx)
            .await?;
            self.cancelled
                .extend(cancelled.into_iter().map(|(key, version, replaced_by)| {
                    CancelledCallback {
                        key,
                        version,
                        replaced_by,
                        deleted: false,
                    }
                }));
        }
        let due: Vec<Vec<String>> = last
            .into_iter()
            .filter_map(|(key, i)| {
                let change = &changes[i];
                let due_at = ts(expiry(now(), change.callback_after?));
                let version = change.record.version.map(|v| v.get().to_string());
                Some(vec![key, version.unwrap_or_default(), due_at])
            })
            .collect();
        self.each(
            "INSERT INTO callbacks (dataset, key, version, import_id, due_at) \
             SELECT ?1, value ->> 0, CAST(NULLIF(value ->> 1, '') AS INTEGER), ?2, value ->> 2 \
             FROM json_each(?4) WHERE ?3 IS NOT NULL",
            &due,
            at,
        )
        .await
    }

    async fn write_batch(&mut self, batch: &Batch) -> Result<(), sqlx::Error> {
        let now = now();
        let at = ts(now);
        let (deletions, changes): (Vec<&Change>, Vec<&Change>) = batch
            .changes
            .iter()
            .partition(|c| c.kind == ChangeKind::Deleted);
        if deletions.is_empty() {
            self.write_changes(&batch.changes, &at, micros(now)).await?;
        } else {
            let changes: Vec<Change> = changes.into_iter().cloned().collect();
            self.write_changes(&changes, &at, micros(now)).await?;
            self.write_deletions(&deletions, &at, micros(now)).await?;
        }
        let conflicts: Vec<Vec<String>> = batch.conflicts.iter().map(|c| vec![json(c)]).collect();
        self.each(
            "INSERT INTO conflicts (dataset, import_id, conflict) \
             SELECT ?1, ?2, value ->> 0 FROM json_each(?4) WHERE ?3 IS NOT NULL ORDER BY json_each.key",
            &conflicts,
            &at,
        )
        .await?;
        let identities: Vec<Vec<String>> = batch
            .identities
            .iter()
            .map(|(key, fields)| vec![key.clone(), json(fields)])
            .collect();
        self.each(
            "INSERT OR IGNORE INTO identities (dataset, identity_key, fields) \
             SELECT ?1, value ->> 0, value ->> 1 FROM json_each(?4) WHERE ?2 IS NOT NULL AND ?3 IS NOT NULL",
            &identities,
            &at,
        )
        .await
    }
}

impl SqliteImportWriter {
    /// Deletes the keys' latest states (ADR 40). Each key that had one gets a
    /// `deleted` history entry with that state, a `record.deleted` event, and its
    /// pending callback cancelled; it leaves the dataset's count. The transaction
    /// holds the write lock, so the states loaded are the ones deleted.
    async fn write_deletions(
        &mut self,
        deletions: &[&Change],
        at: &str,
        at_us: i64,
    ) -> Result<(), sqlx::Error> {
        let keys: Vec<String> = deletions.iter().map(|c| c.record.key.canonical()).collect();
        let gone: Vec<String> = sqlx::query_scalar(
            "DELETE FROM records WHERE dataset = ?1 \
               AND key IN (SELECT value FROM json_each(?2)) RETURNING key",
        )
        .bind(self.dataset.as_str())
        .bind(json(&keys))
        .fetch_all(&mut *self.tx)
        .await?;
        let gone: std::collections::HashSet<String> = gone.into_iter().collect();
        let mut rows = Vec::with_capacity(gone.len());
        let mut events = Fanout::default();
        for (key, change) in keys.iter().zip(deletions) {
            if !gone.contains(key) {
                continue;
            }
            if self.audience.wants(EventKind::RecordDeleted) {
                let (kind, payload) = change_event(&self.dataset, &self.lease.import, change);
                events.add(&self.audience, kind, &payload);
            }
            rows.push((key, change.record.to_stored()));
        }
        self.added -= i64::try_from(rows.len()).unwrap_or(i64::MAX);
        for rows in rows.chunks(HISTORY_ROWS_PER_STATEMENT) {
            let sql = history_insert(rows.len());
            let mut query = sqlx::query(&sql);
            for (key, record) in rows {
                query = query
                    .bind(self.dataset.as_str())
                    .bind(*key)
                    .bind("deleted")
                    .bind(record)
                    .bind(self.import_seq)
                    .bind(at_us);
            }
            query.execute(&mut *self.tx).await?;
        }
        events
            .write(&mut self.tx, self.dataset.as_str(), at)
            .await?;
        if self.rebuild || rows.is_empty() {
            return Ok(());
        }
        let keys: Vec<&String> = rows.iter().map(|(key, _)| *key).collect();
        let cancelled: Vec<(String, Option<i64>)> = sqlx::query_as(
            "UPDATE callbacks SET status = 'cancelled', settled_at = ?2 \
             WHERE dataset = ?1 AND status = 'pending' \
               AND key IN (SELECT value FROM json_each(?3)) \
             RETURNING key, version",
        )
        .bind(self.dataset.as_str())
        .bind(at)
        .bind(json(&keys))
        .fetch_all(&mut *self.tx)
        .await?;
        self.cancelled.extend(
            cancelled
                .into_iter()
                .map(|(key, version)| CancelledCallback {
                    key,
                    version,
                    replaced_by: None,
                    deleted: true,
                }),
        );
        Ok(())
    }
}

/// Rows per history statement: 6 parameters a row stay well under SQLite's 32,766.
const HISTORY_ROWS_PER_STATEMENT: usize = 2000;

/// `INSERT INTO record_history … VALUES (?, ?, ?, ?, ?, ?), …` for `rows` rows.
/// Values are bound one by one: a JSON array of the rows would escape every document
/// in Rust and parse it again in SQLite. The parameters are anonymous: sqlx asks
/// SQLite each parameter's name, which scans every named one (quadratic: a named
/// 1,000-row statement took 11 ms; ADR 23). sqlx caches a statement by its text,
/// so a batch size is prepared once per connection.
fn history_insert(rows: usize) -> String {
    const ROW: &str = "(?, ?, ?, ?, ?, ?)";
    let mut sql = String::with_capacity(90 + rows * (ROW.len() + 2));
    sql.push_str(
        "INSERT INTO record_history (dataset, key, kind, record, import_seq, at_us) VALUES ",
    );
    for i in 0..rows {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(ROW);
    }
    sql
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

/// Writes one event and a delivery for each subscription that wants it.
async fn insert_event(
    conn: &mut SqliteConnection,
    dataset: &DatasetName,
    audience: &Audience,
    kind: EventKind,
    payload: &serde_json::Value,
) -> Result<(), sqlx::Error> {
    let (at, id) = (ts(now()), new_id());
    sqlx::query(
        "INSERT INTO outbox (id, dataset, kind, payload, created_at, due_at) VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(&id)
    .bind(dataset.as_str())
    .bind(kind.as_str())
    .bind(payload.to_string())
    .bind(&at)
    .bind(&at)
    .execute(&mut *conn)
    .await?;
    for subscription in audience.targets(kind) {
        sqlx::query(
            "INSERT INTO deliveries (subscription_id, event_id, next_attempt_at) VALUES (?, ?, ?)",
        )
        .bind(subscription)
        .bind(&id)
        .bind(&at)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// A batch's events, and a delivery per (event, subscription that wants it), written
/// with one statement each.
#[derive(Default)]
pub(crate) struct Fanout {
    events: Vec<Vec<String>>,
    deliveries: Vec<Vec<String>>,
}

impl Fanout {
    /// Adds an event and its deliveries; gives the event's id.
    pub(crate) fn add(
        &mut self,
        audience: &Audience,
        kind: EventKind,
        payload: &serde_json::Value,
    ) -> String {
        let id = new_id();
        for subscription in audience.targets(kind) {
            self.deliveries
                .push(vec![subscription.to_owned(), id.clone()]);
        }
        self.events.push(vec![
            id.clone(),
            kind.as_str().to_owned(),
            payload.to_string(),
        ]);
        id
    }

    /// Writes them, as of `at`, into `dataset`.
    pub(crate) async fn write(
        &self,
        conn: &mut SqliteConnection,
        dataset: &str,
        at: &str,
    ) -> Result<(), sqlx::Error> {
        if self.events.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO outbox (id, dataset, kind, payload, created_at, due_at) \
             SELECT value ->> 0, ?1, value ->> 1, value ->> 2, ?2, ?2 FROM json_each(?3) \
             ORDER BY json_each.key",
        )
        .bind(dataset)
        .bind(at)
        .bind(json(&self.events))
        .execute(&mut *conn)
        .await?;
        if !self.deliveries.is_empty() {
            sqlx::query(
                "INSERT INTO deliveries (subscription_id, event_id, next_attempt_at) \
                 SELECT value ->> 0, value ->> 1, ?1 FROM json_each(?2)",
            )
            .bind(at)
            .bind(json(&self.deliveries))
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}

/// Marks the import finished (if the lease still holds) and writes its event.
async fn close(
    conn: &mut SqliteConnection,
    lease: &Lease,
    dataset: &DatasetName,
    audience: &Audience,
    verdict: Verdict,
    report: &ImportReport,
) -> Result<(), StoreError> {
    let status = match verdict {
        Verdict::Commit => intake_domain::ImportStatus::Completed,
        Verdict::Reject => intake_domain::ImportStatus::Failed,
    };
    let closed = sqlx::query(
        "UPDATE imports SET status = ?, report = ?, lease_worker = NULL, lease_token = NULL, \
           lease_expires_at = NULL, held_for = NULL \
         WHERE id = ? AND lease_token = ? AND status = 'processing'",
    )
    .bind(status.as_str())
    .bind(json(report))
    .bind(lease.import.as_str())
    .bind(&lease.token)
    .execute(&mut *conn)
    .await
    .map_err(unexpected("finishing an import"))?;
    if closed.rows_affected() == 0 {
        return Err(StoreError::LeaseLost);
    }
    let (kind, payload) = import_event(dataset, &lease.import, verdict, report);
    if audience.wants(kind) {
        insert_event(conn, dataset, audience, kind, &payload)
            .await
            .map_err(unexpected("writing an import event"))?;
    }
    Ok(())
}

/// The dataset's revision, bumped by a committed import, which also adds the keys it
/// created (`added`, `None` for a rejected one) to the dataset's record count.
async fn revision(
    conn: &mut SqliteConnection,
    dataset: &DatasetName,
    added: Option<i64>,
) -> Result<Revision, StoreError> {
    let query = match added {
        Some(added) => sqlx::query_scalar(
            "UPDATE datasets SET revision = revision + 1, records = records + ? \
             WHERE name = ? RETURNING revision",
        )
        .bind(added),
        None => sqlx::query_scalar("SELECT revision FROM datasets WHERE name = ?"),
    };
    let n: i64 = query
        .bind(dataset.as_str())
        .fetch_one(conn)
        .await
        .map_err(unexpected("bumping the dataset revision"))?;
    Ok(Revision::new(u64::try_from(n).unwrap_or(0)))
}

#[async_trait::async_trait]
impl ImportWriter for SqliteImportWriter {
    async fn load(
        &mut self,
        keys: &[RecordKey],
        identities: &[String],
    ) -> Result<(HashMap<RecordKey, Record>, IdentityMap), StoreError> {
        let keys: Vec<String> = keys.iter().map(RecordKey::canonical).collect();
        let rows = sqlx::query(
            "SELECT h.record FROM records r JOIN record_history h ON h.seq = r.seq \
             WHERE r.dataset = ? AND r.key IN (SELECT value FROM json_each(?))",
        )
        .bind(self.dataset.as_str())
        .bind(json(&keys))
        .fetch_all(&mut *self.tx)
        .await
        .map_err(unexpected("loading records"))?;
        let mut records = HashMap::with_capacity(rows.len());
        for row in &rows {
            let record: Record = crate::rows::record(row, "record")?;
            records.insert(record.key.clone(), record);
        }
        let rows = sqlx::query(
            "SELECT identity_key, fields FROM identities \
             WHERE dataset = ? AND identity_key IN (SELECT value FROM json_each(?))",
        )
        .bind(self.dataset.as_str())
        .bind(json(&identities))
        .fetch_all(&mut *self.tx)
        .await
        .map_err(unexpected("loading identities"))?;
        let mut found = IdentityMap::with_capacity(rows.len());
        for row in &rows {
            let key: String = row.try_get("identity_key").map_err(anyhow::Error::new)?;
            found.insert(key, crate::rows::json(row, "fields")?);
        }
        Ok((records, found))
    }

    async fn apply(&mut self, batch: &Batch) -> Result<(), StoreError> {
        self.write_batch(batch)
            .await
            .map_err(unexpected("applying a batch"))?;
        Ok(())
    }

    async fn renew(&mut self, by: Duration) -> Result<DateTime<Utc>, StoreError> {
        let expires_at = expiry(now(), by);
        let renewed = sqlx::query(
            "UPDATE imports SET lease_expires_at = ? WHERE id = ? AND lease_token = ? AND status = 'processing'",
        )
        .bind(ts(expires_at))
        .bind(self.lease.import.as_str())
        .bind(&self.lease.token)
        .execute(&mut *self.tx)
        .await
        .map_err(unexpected("renewing a lease"))?;
        match renewed.rows_affected() {
            0 => Err(StoreError::LeaseLost),
            _ => Ok(expires_at),
        }
    }

    async fn finish(
        self: Box<Self>,
        verdict: Verdict,
        report: &ImportReport,
    ) -> Result<Finished, StoreError> {
        let Self {
            pool,
            mut tx,
            lease,
            dataset,
            audience,
            cancelled,
            added,
            ..
        } = *self;
        if verdict == Verdict::Reject {
            // Nothing applied is kept: roll back, then record the failure on its own.
            tx.rollback()
                .await
                .map_err(unexpected("rolling back a rejected import"))?;
            tx = pool
                .begin()
                .await
                .map_err(unexpected("recording a rejected import"))?;
        }
        close(&mut tx, &lease, &dataset, &audience, verdict, report).await?;
        let added = (verdict == Verdict::Commit).then_some(added);
        let revision = revision(&mut tx, &dataset, added).await?;
        tx.commit()
            .await
            .map_err(unexpected("committing an import"))?;
        let cancelled = match verdict {
            Verdict::Commit => cancelled,
            Verdict::Reject => Vec::new(),
        };
        Ok(Finished {
            revision,
            cancelled,
        })
    }
}

/// An import's unit of work as `begin_apply` gives it: its transaction, and with it
/// the write lock, opens at its first use. The first batch of a document is decoded,
/// mapped and merged before the store is asked for its keys' state, so that work runs
/// while another writer (the import before, a source saving a page) holds the lock,
/// not while it waits for this one.
pub(crate) struct LazyImportWriter {
    pool: SqlitePool,
    lease: Lease,
    open: Option<SqliteImportWriter>,
}

impl LazyImportWriter {
    pub(crate) fn new(pool: &SqlitePool, lease: &Lease) -> Self {
        Self {
            pool: pool.clone(),
            lease: lease.clone(),
            open: None,
        }
    }

    /// The transaction, taken out, opened now if it is not yet.
    async fn take(&mut self) -> Result<SqliteImportWriter, StoreError> {
        match self.open.take() {
            Some(writer) => Ok(writer),
            None => SqliteImportWriter::begin(&self.pool, &self.lease).await,
        }
    }

    /// The transaction, opened now if it is not yet.
    async fn open(&mut self) -> Result<&mut SqliteImportWriter, StoreError> {
        let writer = self.take().await?;
        Ok(self.open.insert(writer))
    }
}

#[async_trait::async_trait]
impl ImportWriter for LazyImportWriter {
    async fn load(
        &mut self,
        keys: &[RecordKey],
        identities: &[String],
    ) -> Result<(HashMap<RecordKey, Record>, IdentityMap), StoreError> {
        self.open().await?.load(keys, identities).await
    }

    async fn apply(&mut self, batch: &Batch) -> Result<(), StoreError> {
        self.open().await?.apply(batch).await
    }

    async fn renew(&mut self, by: Duration) -> Result<DateTime<Utc>, StoreError> {
        self.open().await?.renew(by).await
    }

    async fn finish(
        mut self: Box<Self>,
        verdict: Verdict,
        report: &ImportReport,
    ) -> Result<Finished, StoreError> {
        Box::new(self.take().await?).finish(verdict, report).await
    }
}
