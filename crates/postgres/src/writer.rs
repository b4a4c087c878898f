//! An import's unit of work: one transaction that locks the import row from
//! `begin_apply` to `finish` (claimers skip it), writing each batch with one `UNNEST`
//! statement per table (ADR 5: `COPY` measured no faster): the latest states into the
//! dataset's typed table (ADR 22), then history, timers and events.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use intake_domain::delivery::Audience;
use intake_domain::ingest::{change_event, change_kind, import_event};
use intake_domain::merge::{Batch, Change, ChangeKind, Verdict};
use intake_domain::ports::{
    CancelledCallback, EventKind, Finished, IdentityMap, ImportWriter, Lease, StoreError,
};
use intake_domain::{DatasetName, ImportReport, ImportStatus, Record, RecordKey, Revision};
use sqlx::{PgConnection, PgPool, Postgres, Row as _, Transaction};

use crate::deliveries::audience;
use crate::layout::{self, Kind, Layout, Layouts};
use crate::rows::{dataset_name, to_json};
use crate::{new_id, seconds, unexpected};

/// Keys' latest states as columns: canonical key, stored document, record.
struct States<'a> {
    keys: Vec<&'a str>,
    documents: Vec<&'a str>,
    records: Vec<&'a Record>,
}

pub(crate) struct PgImportWriter {
    pool: PgPool,
    tx: Transaction<'static, Postgres>,
    lease: Lease,
    dataset: DatasetName,
    /// Who wants the dataset's events: none is written that nobody wants.
    audience: Audience,
    /// Pending callbacks this import cancelled, logged once it commits.
    cancelled: Vec<CancelledCallback>,
    layouts: Layouts,
    /// The dataset's typed table, as this transaction sees it.
    layout: Arc<Layout>,
    /// Whether this transaction added columns: its layout is then not the committed
    /// one, and nothing it reads may be cached.
    altered: bool,
    /// Whether the import is held for a reprocess: written without events or callback
    /// timers (its changes were announced when it first arrived).
    rebuild: bool,
    /// Rows this import's upserts inserted, added to the dataset's count when it
    /// commits. Counted from the upserts, not from the merge: imports of a dataset
    /// write side by side, and two may each find a key absent that only one inserts.
    added: i64,
}

/// Locks the import row if the lease is still this holder's; its dataset, and whether
/// it is held for a reprocess.
async fn lock(conn: &mut PgConnection, lease: &Lease) -> Result<(DatasetName, bool), StoreError> {
    let locked: Option<(String, bool)> = sqlx::query_as(
        "SELECT i.dataset, i.held_for IS NOT NULL FROM imports i \
         JOIN import_leases l ON l.import_id = i.id \
         WHERE i.id = $1 AND l.token = $2 AND i.status = 'processing' FOR UPDATE OF i",
    )
    .bind(lease.import.as_str())
    .bind(&lease.token)
    .fetch_optional(conn)
    .await
    .map_err(unexpected("locking an import"))?;
    let (dataset, rebuild) = locked.ok_or(StoreError::LeaseLost)?;
    Ok((dataset_name(dataset)?, rebuild))
}

impl PgImportWriter {
    pub(crate) async fn begin(
        pool: &PgPool,
        layouts: &Layouts,
        lease: &Lease,
    ) -> Result<Self, StoreError> {
        let mut tx = pool
            .begin()
            .await
            .map_err(unexpected("opening an import's transaction"))?;
        let (dataset, rebuild) = lock(&mut tx, lease).await?;
        let audience = if rebuild {
            Audience::default()
        } else {
            audience(&mut tx, &dataset)
                .await
                .map_err(unexpected("reading the dataset's subscriptions"))?
        };
        let layout = layouts
            .lock(&mut tx, dataset.as_str())
            .await
            .map_err(unexpected("reading the dataset's columns"))?
            .ok_or_else(|| anyhow::anyhow!("the dataset {dataset} has no table"))?;
        Ok(Self {
            pool: pool.clone(),
            tx,
            lease: lease.clone(),
            dataset,
            audience,
            cancelled: Vec::new(),
            layouts: layouts.clone(),
            layout,
            altered: false,
            rebuild,
            added: 0,
        })
    }

    /// Makes sure the layout has a column for every dimension and measure of the
    /// records: read again when one is missing (a contract published since), added in
    /// this transaction when none declared it.
    async fn cover(&mut self, records: &[&Record]) -> Result<(), sqlx::Error> {
        let mut missing: Vec<(Kind, &str)> = Vec::new();
        for record in records {
            let dimensions = record
                .dimensions
                .iter()
                .map(|(name, _)| (Kind::Dimension, name));
            let measures = record
                .measures
                .iter()
                .map(|(name, _)| (Kind::Measure, name));
            for field in dimensions.chain(measures) {
                let known = match field.0 {
                    Kind::Dimension => self.layout.dimension(field.1).is_some(),
                    Kind::Measure => self.layout.measure(field.1).is_some(),
                };
                if !known && !missing.contains(&field) {
                    missing.push(field);
                }
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        let ds = self.dataset.as_str();
        if !self.altered {
            if let Some(layout) = self.layouts.get(&mut self.tx, ds, &missing).await? {
                self.layout = layout;
            }
            if self.layout.has(&missing) {
                return Ok(());
            }
        }
        // Not cached: the columns exist only if this transaction commits.
        if let Some(layout) = layout::ensure(&mut self.tx, ds, &missing).await? {
            self.layout = Arc::new(layout);
        }
        self.altered = true;
        Ok(())
    }

    async fn write_changes(&mut self, changes: &[Change]) -> Result<(), sqlx::Error> {
        if changes.is_empty() {
            return Ok(());
        }
        let ds = self.dataset.as_str().to_owned();
        let import = self.lease.import.as_str().to_owned();
        let mut keys = Vec::with_capacity(changes.len());
        let (mut kinds, mut records) = (vec![], vec![]);
        let mut events = Fanout::default();
        // The latest state and timer of a key come from its last change in the batch.
        let mut last: HashMap<&str, usize> = HashMap::with_capacity(changes.len());
        for change in changes {
            let kind = change_kind(change);
            if self.audience.wants(kind) {
                let (kind, payload) = change_event(&self.dataset, &self.lease.import, change);
                events.add(&self.audience, kind, payload.to_string());
            }
            keys.push(change.record.key.canonical());
            kinds.push(kind.as_str());
            records.push(change.record.to_stored());
        }
        for (i, key) in keys.iter().enumerate() {
            last.insert(key.as_str(), i);
        }
        let mut latest: Vec<usize> = last.into_values().collect();
        latest.sort_unstable();
        let states: Vec<&Record> = latest.iter().map(|&i| &changes[i].record).collect();
        self.cover(&states).await?;
        let latest_states = States {
            keys: latest.iter().map(|&i| keys[i].as_str()).collect(),
            documents: latest.iter().map(|&i| records[i].as_str()).collect(),
            records: states,
        };
        self.write_states(&latest_states).await?;
        sqlx::query(
            "INSERT INTO record_history (dataset, key, kind, record, import_id) \
             SELECT $1, k, kd, r::json, $2 FROM UNNEST($3::text[], $4::text[], $5::text[]) \
               WITH ORDINALITY AS t(k, kd, r, n) ORDER BY n",
        )
        .bind(&ds)
        .bind(&import)
        .bind(&keys)
        .bind(&kinds)
        .bind(&records)
        .execute(&mut *self.tx)
        .await?;
        self.replace_timers(changes, &latest, &keys).await?;
        events.write(&mut self.tx, &ds).await?;
        Ok(())
    }

    /// Upserts the keys' latest states, a column per dimension and measure: every
    /// column of the table is written, so a field the record lacks becomes NULL.
    async fn write_states(&mut self, states: &States<'_>) -> Result<(), sqlx::Error> {
        let layout = Arc::clone(&self.layout);
        let (dimensions, measures) = (&layout.dimensions, &layout.measures);
        let columns: Vec<&str> = dimensions
            .iter()
            .chain(measures)
            .map(|(_, column)| column.as_str())
            .collect();
        let arrays: Vec<String> = (0..columns.len())
            .map(|i| {
                let kind = if i < dimensions.len() {
                    "text"
                } else {
                    "float8"
                };
                format!(", ${}::{kind}[]", i + 4)
            })
            .collect();
        let sets: String = columns
            .iter()
            .map(|c| format!(", {c} = excluded.{c}"))
            .collect();
        // A row the statement inserted has no deleting or locking transaction (`xmax`
        // 0); one it updated has this one: the count of inserts, without a second scan.
        let sql = format!(
            "WITH upserted AS ( \
               INSERT INTO {t} (key, record, import_id{cols}) \
               SELECT k, r::json, $1{cols} FROM UNNEST($2::text[], $3::text[]{arrays}) \
                 AS u(k, r{cols}) \
               ON CONFLICT (key) DO UPDATE SET record = excluded.record, \
                 import_id = excluded.import_id, updated_at = now(){sets} \
               RETURNING xmax = 0 AS inserted) \
             SELECT count(*) FILTER (WHERE inserted) FROM upserted",
            t = layout.table,
            cols = columns.iter().map(|c| format!(", {c}")).collect::<String>(),
            arrays = arrays.concat(),
        );
        let mut query = sqlx::query_scalar::<_, i64>(&sql)
            .bind(self.lease.import.as_str())
            .bind(&states.keys)
            .bind(&states.documents);
        for (name, _) in dimensions {
            let values: Vec<Option<&str>> = states
                .records
                .iter()
                .map(|r| r.dimensions.get(name))
                .collect();
            query = query.bind(values);
        }
        for (name, _) in measures {
            let values: Vec<Option<f64>> = states
                .records
                .iter()
                .map(|r| r.measures.get(name))
                .collect();
            query = query.bind(values);
        }
        self.added += query.fetch_one(&mut *self.tx).await?;
        Ok(())
    }

    /// A key's newest change cancels its pending callback (kept, `cancelled`, with the
    /// version that replaced it) and schedules its own when the contract asks.
    async fn replace_timers(
        &mut self,
        changes: &[Change],
        latest: &[usize],
        keys: &[String],
    ) -> Result<(), sqlx::Error> {
        if self.rebuild {
            return Ok(());
        }
        let ds = self.dataset.as_str();
        // Only a key that had a version before can have a pending timer.
        let updated: Vec<usize> = latest
            .iter()
            .copied()
            .filter(|&i| changes[i].kind == ChangeKind::Updated)
            .collect();
        let touched: Vec<&str> = updated.iter().map(|&i| keys[i].as_str()).collect();
        let versions: Vec<Option<i64>> = updated
            .iter()
            .map(|&i| changes[i].record.version.map(|v| v.get()))
            .collect();
        // `key = ANY` keeps the lookup on an index whatever the statistics say: a join
        // with the batch's keys, planned while the import has just grown the table,
        // became a nested loop over every pending timer for each key.
        let cancelled: Vec<(String, Option<i64>, Option<i64>)> = if touched.is_empty() {
            Vec::new()
        } else {
            sqlx::query_as(
                "UPDATE callbacks c SET status = 'cancelled', settled_at = clock_timestamp(), \
                   replaced_by = ($3::bigint[])[array_position($2::text[], c.key)] \
                 WHERE c.dataset = $1 AND c.status = 'pending' AND c.key = ANY($2::text[]) \
                 RETURNING c.key, c.version, c.replaced_by",
            )
            .bind(ds)
            .bind(&touched)
            .bind(&versions)
            .fetch_all(&mut *self.tx)
            .await?
        };
        self.cancelled
            .extend(
                cancelled
                    .into_iter()
                    .map(|(key, version, replaced_by)| CancelledCallback {
                        key,
                        version,
                        replaced_by,
                        deleted: false,
                    }),
            );
        let due: Vec<usize> = latest
            .iter()
            .copied()
            .filter(|&i| changes[i].callback_after.is_some())
            .collect();
        if due.is_empty() {
            return Ok(());
        }
        let after: Vec<f64> = due
            .iter()
            .map(|&i| changes[i].callback_after.map_or(0.0, seconds))
            .collect();
        sqlx::query(
            "INSERT INTO callbacks (dataset, key, version, import_id, due_at) \
             SELECT $1, k, v, $2, clock_timestamp() + make_interval(secs => a) \
             FROM UNNEST($3::text[], $4::bigint[], $5::float8[]) AS t(k, v, a)",
        )
        .bind(ds)
        .bind(self.lease.import.as_str())
        .bind(due.iter().map(|&i| keys[i].clone()).collect::<Vec<_>>())
        .bind(
            due.iter()
                .map(|&i| changes[i].record.version.map(|v| v.get()))
                .collect::<Vec<_>>(),
        )
        .bind(&after)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Deletes the keys' latest states (ADR 40). Each key whose row this statement
    /// deleted gets a `deleted` history entry with the state the row held (an import
    /// writing beside this one may have changed it since it was loaded), a
    /// `record.deleted` event with that state, and its pending callback cancelled; it
    /// leaves the dataset's count.
    async fn write_deletions(&mut self, deletions: &[&Change]) -> Result<(), sqlx::Error> {
        let keys: Vec<String> = deletions.iter().map(|c| c.record.key.canonical()).collect();
        let gone: Vec<(String, String)> = sqlx::query_as(&format!(
            "DELETE FROM {} WHERE key = ANY($1::text[]) RETURNING key, record::text",
            self.layout.table
        ))
        .bind(&keys)
        .fetch_all(&mut *self.tx)
        .await?;
        // In the document's order; a key another import deleted first is not here.
        let mut held: HashMap<String, String> = gone.into_iter().collect();
        let mut deleted: Vec<(String, String)> = Vec::with_capacity(held.len());
        for key in keys {
            if let Some(record) = held.remove(&key) {
                deleted.push((key, record));
            }
        }
        self.added -= i64::try_from(deleted.len()).unwrap_or(i64::MAX);
        let ds = self.dataset.as_str().to_owned();
        let mut events = Fanout::default();
        if self.audience.wants(EventKind::RecordDeleted) {
            for (_, stored) in &deleted {
                let record =
                    Record::from_stored(stored).map_err(|e| sqlx::Error::Decode(e.into()))?;
                let change = Change {
                    kind: ChangeKind::Deleted,
                    record,
                    location: intake_domain::Location::default(),
                    callback_after: None,
                };
                let (kind, payload) = change_event(&self.dataset, &self.lease.import, &change);
                events.add(&self.audience, kind, payload.to_string());
            }
        }
        let (keys, records): (Vec<&str>, Vec<&str>) = deleted
            .iter()
            .map(|(key, record)| (key.as_str(), record.as_str()))
            .unzip();
        sqlx::query(
            "INSERT INTO record_history (dataset, key, kind, record, import_id) \
             SELECT $1, k, 'deleted', r::json, $2 FROM UNNEST($3::text[], $4::text[]) \
               WITH ORDINALITY AS t(k, r, n) ORDER BY n",
        )
        .bind(&ds)
        .bind(self.lease.import.as_str())
        .bind(&keys)
        .bind(&records)
        .execute(&mut *self.tx)
        .await?;
        events.write(&mut self.tx, &ds).await?;
        if self.rebuild || keys.is_empty() {
            return Ok(());
        }
        let cancelled: Vec<(String, Option<i64>)> = sqlx::query_as(
            "UPDATE callbacks SET status = 'cancelled', settled_at = clock_timestamp() \
             WHERE dataset = $1 AND status = 'pending' AND key = ANY($2::text[]) \
             RETURNING key, version",
        )
        .bind(&ds)
        .bind(&keys)
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

    async fn write_rest(&mut self, batch: &Batch) -> Result<(), sqlx::Error> {
        if !batch.conflicts.is_empty() {
            let conflicts: Vec<String> = batch.conflicts.iter().map(to_json).collect();
            sqlx::query(
                "INSERT INTO conflicts (dataset, import_id, conflict) \
                 SELECT $1, $2, c::jsonb FROM UNNEST($3::text[]) WITH ORDINALITY AS t(c, n) ORDER BY n",
            )
            .bind(self.dataset.as_str())
            .bind(self.lease.import.as_str())
            .bind(&conflicts)
            .execute(&mut *self.tx)
            .await?;
        }
        if !batch.identities.is_empty() {
            let (keys, fields): (Vec<&str>, Vec<String>) = batch
                .identities
                .iter()
                .map(|(k, f)| (k.as_str(), to_json(f)))
                .unzip();
            sqlx::query(
                "INSERT INTO identities (dataset, identity_key, fields) \
                 SELECT $1, k, f::jsonb FROM UNNEST($2::text[], $3::text[]) AS t(k, f) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(self.dataset.as_str())
            .bind(&keys)
            .bind(&fields)
            .execute(&mut *self.tx)
            .await?;
        }
        Ok(())
    }
}

/// Marks the import finished and writes its event; the lease row goes.
async fn close(
    conn: &mut PgConnection,
    lease: &Lease,
    dataset: &DatasetName,
    audience: &Audience,
    verdict: Verdict,
    report: &ImportReport,
) -> Result<(), StoreError> {
    let status = match verdict {
        Verdict::Commit => ImportStatus::Completed,
        Verdict::Reject => ImportStatus::Failed,
    };
    let deleted = sqlx::query("DELETE FROM import_leases WHERE import_id = $1 AND token = $2")
        .bind(lease.import.as_str())
        .bind(&lease.token)
        .execute(&mut *conn)
        .await
        .map_err(unexpected("finishing an import"))?;
    if deleted.rows_affected() == 0 {
        return Err(StoreError::LeaseLost);
    }
    sqlx::query(
        "UPDATE imports SET status = $1, report = $2::jsonb, held_for = NULL WHERE id = $3",
    )
    .bind(status.as_str())
    .bind(to_json(report))
    .bind(lease.import.as_str())
    .execute(&mut *conn)
    .await
    .map_err(unexpected("finishing an import"))?;
    let (kind, payload) = import_event(dataset, &lease.import, verdict, report);
    if audience.wants(kind) {
        let mut events = Fanout::default();
        events.add(audience, kind, payload.to_string());
        events
            .write(conn, dataset.as_str())
            .await
            .map_err(unexpected("writing an import event"))?;
    }
    Ok(())
}

/// Events, and a delivery per (event, subscription that wants it), as columns for one
/// `UNNEST` insert each.
#[derive(Default)]
pub(crate) struct Fanout {
    ids: Vec<String>,
    kinds: Vec<&'static str>,
    payloads: Vec<String>,
    subscriptions: Vec<String>,
    events: Vec<String>,
}

impl Fanout {
    pub(crate) fn add(&mut self, audience: &Audience, kind: EventKind, payload: String) -> String {
        let id = new_id();
        for subscription in audience.targets(kind) {
            self.subscriptions.push(subscription.to_owned());
            self.events.push(id.clone());
        }
        self.ids.push(id.clone());
        self.kinds.push(kind.as_str());
        self.payloads.push(payload);
        id
    }

    pub(crate) async fn write(
        &self,
        conn: &mut PgConnection,
        dataset: &str,
    ) -> Result<(), sqlx::Error> {
        if self.ids.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO outbox (id, dataset, kind, payload) \
             SELECT id, $1, kd, p::json FROM UNNEST($2::text[], $3::text[], $4::text[]) \
               WITH ORDINALITY AS t(id, kd, p, n) ORDER BY n",
        )
        .bind(dataset)
        .bind(&self.ids)
        .bind(&self.kinds)
        .bind(&self.payloads)
        .execute(&mut *conn)
        .await?;
        if !self.subscriptions.is_empty() {
            sqlx::query(
                "INSERT INTO deliveries (subscription_id, event_id) \
                 SELECT * FROM UNNEST($1::text[], $2::text[])",
            )
            .bind(&self.subscriptions)
            .bind(&self.events)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}

/// The dataset's revision, bumped by a committed import, which also adds the rows it
/// inserted (`added`, `None` for a rejected one) to the dataset's record count.
async fn revision(
    conn: &mut PgConnection,
    dataset: &DatasetName,
    added: Option<i64>,
) -> Result<Revision, StoreError> {
    let query = match added {
        Some(added) => sqlx::query_scalar(
            "UPDATE datasets SET revision = revision + 1, records = records + $1 \
             WHERE name = $2 RETURNING revision",
        )
        .bind(added),
        None => sqlx::query_scalar("SELECT revision FROM datasets WHERE name = $1"),
    };
    let n: i64 = query
        .bind(dataset.as_str())
        .fetch_one(conn)
        .await
        .map_err(unexpected("bumping the dataset revision"))?;
    Ok(Revision::new(u64::try_from(n).unwrap_or(0)))
}

#[async_trait::async_trait]
impl ImportWriter for PgImportWriter {
    async fn load(
        &mut self,
        keys: &[RecordKey],
        identities: &[String],
    ) -> Result<(HashMap<RecordKey, Record>, IdentityMap), StoreError> {
        let keys: Vec<String> = keys.iter().map(RecordKey::canonical).collect();
        let sql = format!(
            "SELECT record::text AS record FROM {} WHERE key = ANY($1::text[])",
            self.layout.table
        );
        let rows = sqlx::query(&sql)
            .bind(&keys)
            .fetch_all(&mut *self.tx)
            .await
            .map_err(unexpected("loading records"))?;
        let mut records = HashMap::with_capacity(rows.len());
        for row in &rows {
            let record: Record = crate::rows::record(row, "record")?;
            records.insert(record.key.clone(), record);
        }
        // One primary-key probe per identity key, whatever the statistics say: while
        // imports grow the table faster than autovacuum analyzes it, the planner
        // believed the dataset had a few rows and scanned all of them, comparing each
        // with every key (150 ms a batch of 200 keys after 100 Markr documents).
        let rows = sqlx::query(
            "SELECT i.identity_key, i.fields::text AS fields FROM unnest($2::text[]) AS k(key) \
             CROSS JOIN LATERAL (SELECT identity_key, fields FROM identities \
               WHERE dataset = $1 AND identity_key = k.key LIMIT 1) AS i",
        )
        .bind(self.dataset.as_str())
        .bind(identities)
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
        let (deletions, changes): (Vec<&Change>, Vec<&Change>) = batch
            .changes
            .iter()
            .partition(|c| c.kind == ChangeKind::Deleted);
        let written = if deletions.is_empty() {
            self.write_changes(&batch.changes).await
        } else {
            let changes: Vec<Change> = changes.into_iter().cloned().collect();
            match self.write_changes(&changes).await {
                Ok(()) => self.write_deletions(&deletions).await,
                Err(e) => Err(e),
            }
        };
        written.map_err(unexpected("applying a batch"))?;
        self.write_rest(batch)
            .await
            .map_err(unexpected("applying a batch"))?;
        Ok(())
    }

    async fn renew(&mut self, by: Duration) -> Result<DateTime<Utc>, StoreError> {
        // On its own connection: the lease row is not part of this transaction, so
        // the renewal is visible at once.
        let renewed = crate::queue::renew(&self.pool, &self.lease, by).await;
        renewed
            .map_err(unexpected("renewing a lease"))?
            .ok_or(StoreError::LeaseLost)
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
            lock(&mut tx, &lease).await?;
        }
        // The revision first: its `dataset:` notification is then relayed before the
        // import's `finished:` one, so a waiter woken on another instance answers a
        // client whose next question that instance already answers from the new
        // revision (NOTIFYs of a transaction arrive in the order they were sent).
        let added = (verdict == Verdict::Commit).then_some(added);
        let revision = revision(&mut tx, &dataset, added).await?;
        close(&mut tx, &lease, &dataset, &audience, verdict, report).await?;
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
