//! Jobs (ADR 33): a row per job with its lease, its status and its progress, the last
//! K checkpoints in `job_checkpoints`, and rollup series in `rollup_points`. SQLite has
//! one writer at a time, so a claim (one `UPDATE … RETURNING`) is atomic across
//! threads and processes, and history read in `seq` order is in commit order.

use std::time::Duration;

use chrono::{DateTime, Utc};
use intake_domain::DatasetName;
use intake_domain::ports::{
    CheckpointMark, Directive, JOB_HELD, Job, JobAction, JobError, JobProgress, JobStatus,
    JobStore, JobView, NewJob, RecordChange, RollupError, RollupPoint, RollupStore,
};
use sqlx::Row as _;
use sqlx::sqlite::SqliteRow;

use crate::{SqliteStore, from_micros, new_id, now, parse_ts, ts, unexpected};

const COLUMNS: &str = "id, dataset, kind, params, status, done, total, error, worker, \
    lease_expires_at, attempts, created_at, started_at, started_done, updated_at, finished_at, \
    due_at";

fn count(row: &SqliteRow, column: &str) -> anyhow::Result<u64> {
    Ok(u64::try_from(row.try_get::<i64, _>(column)?)?)
}

fn time(row: &SqliteRow, column: &str) -> anyhow::Result<Option<DateTime<Utc>>> {
    row.try_get::<Option<String>, _>(column)?
        .map(|t| parse_ts(&t))
        .transpose()
}

fn status(row: &SqliteRow) -> anyhow::Result<JobStatus> {
    let text: String = row.try_get("status")?;
    JobStatus::parse(&text).ok_or_else(|| anyhow::anyhow!("bad job status {text:?}"))
}

fn lease_end(lease: Duration) -> DateTime<Utc> {
    now() + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX)
}

fn i64_of(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl SqliteStore {
    async fn job_view(&self, row: &SqliteRow) -> Result<JobView, JobError> {
        let read = || -> anyhow::Result<JobView> {
            let held = time(row, "lease_expires_at")?.is_some_and(|at| at > now());
            Ok(JobView {
                id: row.try_get("id")?,
                dataset: DatasetName::parse(row.try_get::<String, _>("dataset")?)?,
                kind: row.try_get("kind")?,
                params: serde_json::from_str(row.try_get("params")?)?,
                status: status(row)?,
                done: count(row, "done")?,
                total: row
                    .try_get::<Option<i64>, _>("total")?
                    .map(u64::try_from)
                    .transpose()?,
                error: row.try_get("error")?,
                held_by: if held { row.try_get("worker")? } else { None },
                attempts: u32::try_from(row.try_get::<i64, _>("attempts")?)?,
                created_at: parse_ts(row.try_get("created_at")?)?,
                started_at: time(row, "started_at")?,
                started_done: count(row, "started_done")?,
                updated_at: parse_ts(row.try_get("updated_at")?)?,
                finished_at: time(row, "finished_at")?,
                due_at: parse_ts(row.try_get("due_at")?)?,
                checkpoints: Vec::new(),
            })
        };
        let mut view = read()?;
        let marks =
            sqlx::query("SELECT n, done, at FROM job_checkpoints WHERE job_id = ? ORDER BY n")
                .bind(&view.id)
                .fetch_all(&self.pool)
                .await
                .map_err(unexpected("reading a job's checkpoints"))?;
        for m in &marks {
            let read = || -> anyhow::Result<CheckpointMark> {
                Ok(CheckpointMark {
                    n: u32::try_from(m.try_get::<i64, _>("n")?)?,
                    done: count(m, "done")?,
                    at: parse_ts(m.try_get("at")?)?,
                })
            };
            view.checkpoints.push(read()?);
        }
        Ok(view)
    }

    async fn job_row(
        &self,
        row: Result<Option<SqliteRow>, sqlx::Error>,
        doing: &'static str,
    ) -> Result<JobView, JobError> {
        let row = row.map_err(unexpected(doing))?;
        self.job_view(&row.ok_or(JobError::NotFound)?).await
    }

    /// Ends a claim: `set` says what changes (`?1` is the id, `?2` the token, `?3` now,
    /// `?4` the text given).
    async fn end_claim(
        &self,
        job: &Job,
        set: &str,
        text: Option<String>,
        doing: &'static str,
    ) -> Result<(), JobError> {
        let ended = sqlx::query(&format!(
            "UPDATE jobs SET {set}, worker = NULL, token = NULL, lease_expires_at = NULL, \
             updated_at = ?3 WHERE id = ?1 AND token = ?2 AND lease_expires_at > ?3"
        ))
        .bind(&job.id)
        .bind(&job.lease_token)
        .bind(ts(now()))
        .bind(text)
        .execute(&self.writes)
        .await
        .map_err(unexpected(doing))?;
        if ended.rows_affected() == 0 {
            return Err(JobError::LeaseLost);
        }
        Ok(())
    }
}

/// An operator's choice stands over a worker's ending.
const UNLESS_STOPPED: &str = "CASE WHEN status IN ('paused', 'cancelled') THEN status ELSE";

#[async_trait::async_trait]
impl JobStore for SqliteStore {
    async fn create(&self, job: &NewJob) -> Result<JobView, JobError> {
        let at = ts(now());
        let row = sqlx::query(&format!(
            "INSERT INTO jobs (id, dataset, kind, params, status, due_at, created_at, updated_at) \
             SELECT ?1, ?2, ?3, ?4, 'queued', ?5, ?5, ?5 \
             WHERE EXISTS (SELECT 1 FROM datasets WHERE name = ?2 AND deleted_at IS NULL) RETURNING {COLUMNS}"
        ))
        .bind(new_id())
        .bind(job.dataset.as_str())
        .bind(&job.kind)
        .bind(job.params.to_string())
        .bind(at)
        .fetch_optional(&self.writes)
        .await;
        self.job_row(row, "creating a job").await
    }

    async fn get(&self, dataset: &DatasetName, id: &str) -> Result<JobView, JobError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM jobs WHERE dataset = ? AND id = ?"
        ))
        .bind(dataset.as_str())
        .bind(id)
        .fetch_optional(&self.pool)
        .await;
        self.job_row(row, "reading a job").await
    }

    async fn list(&self, dataset: &DatasetName) -> Result<Vec<JobView>, JobError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM jobs WHERE dataset = ? ORDER BY created_at DESC, id DESC"
        ))
        .bind(dataset.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(unexpected("listing jobs"))?;
        let mut jobs = Vec::with_capacity(rows.len());
        for row in &rows {
            jobs.push(self.job_view(row).await?);
        }
        Ok(jobs)
    }

    async fn counts(&self) -> Result<Vec<(JobStatus, u64)>, JobError> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT status, COUNT(*) FROM jobs GROUP BY status ORDER BY status")
                .fetch_all(&self.pool)
                .await
                .map_err(unexpected("counting jobs"))?;
        Ok(rows
            .into_iter()
            .filter_map(|(s, n)| Some((JobStatus::parse(&s)?, u64::try_from(n).ok()?)))
            .collect())
    }

    async fn claim(&self, worker: &str, lease: Duration) -> Result<Option<Job>, JobError> {
        let token = new_id();
        let at = ts(now());
        // A claim starts from the latest checkpoint: what was done after it is redone.
        let row = sqlx::query(
            "UPDATE jobs SET status = 'running', worker = ?1, token = ?2, lease_expires_at = ?3, \
               attempts = attempts + 1, started_at = ?4, updated_at = ?4, \
               done = COALESCE((SELECT c.done FROM job_checkpoints c WHERE c.job_id = jobs.id \
                 ORDER BY c.n DESC LIMIT 1), 0), \
               started_done = COALESCE((SELECT c.done FROM job_checkpoints c \
                 WHERE c.job_id = jobs.id ORDER BY c.n DESC LIMIT 1), 0) \
             WHERE id = (SELECT id FROM jobs WHERE \
               (status = 'queued' AND due_at <= ?4 AND (lease_expires_at IS NULL OR lease_expires_at <= ?4)) \
               OR (status = 'running' AND lease_expires_at <= ?4) \
               ORDER BY created_at, id LIMIT 1) \
             RETURNING id, dataset, kind, params, done, attempts, \
               (SELECT c.state FROM job_checkpoints c WHERE c.job_id = jobs.id \
                 ORDER BY c.n DESC LIMIT 1) AS state",
        )
        .bind(worker)
        .bind(&token)
        .bind(ts(lease_end(lease)))
        .bind(at)
        .fetch_optional(&self.writes)
        .await
        .map_err(unexpected("claiming a job"))?;
        let Some(row) = row else { return Ok(None) };
        let read = || -> anyhow::Result<Job> {
            let state: Option<String> = row.try_get("state")?;
            Ok(Job {
                id: row.try_get("id")?,
                dataset: DatasetName::parse(row.try_get::<String, _>("dataset")?)?,
                kind: row.try_get("kind")?,
                params: serde_json::from_str(row.try_get("params")?)?,
                checkpoint: state.map(|s| serde_json::from_str(&s)).transpose()?,
                done: count(&row, "done")?,
                worker: worker.to_owned(),
                lease_token: token.clone(),
                attempt: u32::try_from(row.try_get::<i64, _>("attempts")?)?,
            })
        };
        Ok(Some(read()?))
    }

    async fn save(
        &self,
        job: &Job,
        progress: &JobProgress,
        lease: Duration,
        keep: u32,
    ) -> Result<Directive, JobError> {
        let mut tx = self
            .writes
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(unexpected("saving a job's progress"))?;
        let at = ts(now());
        // A resume that came before this save leaves the job queued: it runs on.
        let status: Option<String> = sqlx::query_scalar(
            "UPDATE jobs SET done = ?4, total = ?5, updated_at = ?3, \
               attempts = CASE WHEN ?4 > done THEN 1 ELSE attempts END, \
               status = CASE WHEN status = 'queued' THEN 'running' ELSE status END, \
               lease_expires_at = CASE WHEN status IN ('paused', 'cancelled') THEN NULL ELSE ?6 END, \
               worker = CASE WHEN status IN ('paused', 'cancelled') THEN NULL ELSE worker END, \
               token = CASE WHEN status IN ('paused', 'cancelled') THEN NULL ELSE token END \
             WHERE id = ?1 AND token = ?2 AND lease_expires_at > ?3 RETURNING status",
        )
        .bind(&job.id)
        .bind(&job.lease_token)
        .bind(&at)
        .bind(i64_of(progress.done))
        .bind(progress.total.map(i64_of))
        .bind(ts(lease_end(lease)))
        .fetch_optional(&mut *tx)
        .await
        .map_err(unexpected("saving a job's progress"))?;
        let Some(status) = status else {
            return Err(JobError::LeaseLost);
        };
        if let Some(state) = &progress.checkpoint {
            let n: i64 = sqlx::query_scalar(
                "INSERT INTO job_checkpoints (job_id, n, done, state, at) \
                 SELECT ?1, COALESCE(MAX(n), 0) + 1, ?2, ?3, ?4 FROM job_checkpoints WHERE job_id = ?1 \
                 RETURNING n",
            )
            .bind(&job.id)
            .bind(i64_of(progress.done))
            .bind(state.to_string())
            .bind(&at)
            .fetch_one(&mut *tx)
            .await
            .map_err(unexpected("saving a checkpoint"))?;
            sqlx::query("DELETE FROM job_checkpoints WHERE job_id = ? AND n <= ?")
                .bind(&job.id)
                .bind(n - i64::from(keep.max(1)))
                .execute(&mut *tx)
                .await
                .map_err(unexpected("dropping old checkpoints"))?;
        }
        tx.commit()
            .await
            .map_err(unexpected("saving a job's progress"))?;
        Ok(match JobStatus::parse(&status) {
            Some(s @ (JobStatus::Paused | JobStatus::Cancelled)) => Directive::Stop(s),
            _ => Directive::Continue,
        })
    }

    async fn finish(&self, job: &Job, done: u64, error: Option<String>) -> Result<(), JobError> {
        let status = if error.is_some() {
            "failed"
        } else {
            "completed"
        };
        let ended = sqlx::query(&format!(
            "UPDATE jobs SET status = {UNLESS_STOPPED} ?4 END, done = ?5, error = ?6, \
               finished_at = ?3, worker = NULL, token = NULL, lease_expires_at = NULL, updated_at = ?3 \
             WHERE id = ?1 AND token = ?2 AND lease_expires_at > ?3"
        ))
        .bind(&job.id)
        .bind(&job.lease_token)
        .bind(ts(now()))
        .bind(status)
        .bind(i64_of(done))
        .bind(error)
        .execute(&self.writes)
        .await
        .map_err(unexpected("finishing a job"))?;
        if ended.rows_affected() == 0 {
            return Err(JobError::LeaseLost);
        }
        Ok(())
    }

    async fn snooze(&self, job: &Job, done: u64, at: DateTime<Utc>) -> Result<(), JobError> {
        let text = serde_json::json!([done, ts(at)]).to_string();
        self.end_claim(
            job,
            &format!(
                "status = {UNLESS_STOPPED} 'queued' END, done = json_extract(?4, '$[0]'), \
                 due_at = json_extract(?4, '$[1]'), attempts = 0, error = NULL"
            ),
            Some(text),
            "scheduling a job's next run",
        )
        .await
    }

    async fn retry(&self, job: &Job, at: DateTime<Utc>, reason: &str) -> Result<(), JobError> {
        // The reason and the due time travel as one JSON text: one parameter.
        let text = serde_json::json!([reason, ts(at)]).to_string();
        self.end_claim(
            job,
            &format!(
                "status = {UNLESS_STOPPED} 'queued' END, error = json_extract(?4, '$[0]'), \
                 due_at = json_extract(?4, '$[1]')"
            ),
            Some(text),
            "queueing a job again",
        )
        .await
    }

    async fn release(&self, job: &Job) -> Result<(), JobError> {
        self.end_claim(
            job,
            &format!(
                "status = {UNLESS_STOPPED} 'queued' END, due_at = ?3, \
                 attempts = MAX(attempts - 1, 0), error = COALESCE(?4, error)"
            ),
            None,
            "giving a job back",
        )
        .await
    }

    async fn act(
        &self,
        dataset: &DatasetName,
        id: &str,
        action: JobAction,
    ) -> Result<JobView, JobError> {
        let current = JobStore::get(self, dataset, id).await?;
        let at = ts(now());
        let Some(to) = action.target(current.status).map_err(JobError::Conflict)? else {
            return Ok(current);
        };
        let to = to.as_str();
        let row = sqlx::query(&format!(
            "UPDATE jobs SET status = ?3, updated_at = ?4, due_at = ?4, \
               finished_at = CASE WHEN ?3 = 'cancelled' THEN ?4 ELSE NULL END \
             WHERE dataset = ?1 AND id = ?2 AND status = ?5 RETURNING {COLUMNS}"
        ))
        .bind(dataset.as_str())
        .bind(id)
        .bind(to)
        .bind(at)
        .bind(current.status.as_str())
        .fetch_optional(&self.writes)
        .await;
        match self.job_row(row, "changing a job").await {
            // It changed meanwhile (a worker finished it): answer as it is now.
            Err(JobError::NotFound) => Err(JobError::Conflict(
                "the job changed meanwhile; read it again".into(),
            )),
            other => other,
        }
    }

    async fn restart(&self, dataset: &DatasetName, id: &str, n: u32) -> Result<JobView, JobError> {
        let mut tx = self
            .writes
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(unexpected("restarting a job"))?;
        let at = ts(now());
        let held: Option<bool> = sqlx::query_scalar(
            "SELECT lease_expires_at IS NOT NULL AND lease_expires_at > ? FROM jobs \
             WHERE dataset = ? AND id = ?",
        )
        .bind(&at)
        .bind(dataset.as_str())
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(unexpected("restarting a job"))?;
        match held {
            None => return Err(JobError::NotFound),
            Some(true) => return Err(JobError::Conflict(JOB_HELD.into())),
            Some(false) => {}
        }
        let done: i64 = if n == 0 {
            0
        } else {
            sqlx::query_scalar("SELECT done FROM job_checkpoints WHERE job_id = ? AND n = ?")
                .bind(id)
                .bind(i64::from(n))
                .fetch_optional(&mut *tx)
                .await
                .map_err(unexpected("restarting a job"))?
                .ok_or(JobError::NotFound)?
        };
        sqlx::query("DELETE FROM job_checkpoints WHERE job_id = ? AND n > ?")
            .bind(id)
            .bind(i64::from(n))
            .execute(&mut *tx)
            .await
            .map_err(unexpected("restarting a job"))?;
        let row = sqlx::query(&format!(
            "UPDATE jobs SET status = 'queued', done = ?2, error = NULL, finished_at = NULL, \
               attempts = 0, due_at = ?3, updated_at = ?3, worker = NULL, token = NULL, \
               lease_expires_at = NULL WHERE id = ?1 RETURNING {COLUMNS}"
        ))
        .bind(id)
        .bind(done)
        .bind(&at)
        .fetch_one(&mut *tx)
        .await
        .map_err(unexpected("restarting a job"))?;
        tx.commit().await.map_err(unexpected("restarting a job"))?;
        // The row as the restart left it: a worker may claim the job at once.
        self.job_view(&row).await
    }
}

#[async_trait::async_trait]
impl RollupStore for SqliteStore {
    async fn changes(
        &self,
        dataset: &DatasetName,
        after: i64,
        limit: u32,
    ) -> Result<Vec<RecordChange>, RollupError> {
        // One writer at a time: `seq` order is commit order, nothing can come before.
        let rows = sqlx::query(
            "SELECT h.seq, h.record, h.at_us, i.id AS import_id, h.kind = 'deleted' AS deleted, \
               CASE WHEN h.kind <> 'deleted' THEN \
                 (SELECT CASE WHEN p.kind <> 'deleted' THEN p.record END \
                  FROM record_history p WHERE p.dataset = h.dataset \
                  AND p.key = h.key AND p.seq < h.seq ORDER BY p.seq DESC LIMIT 1) END AS previous \
             FROM record_history h JOIN imports i ON i.seq = h.import_seq \
             WHERE h.dataset = ? AND h.seq > ? ORDER BY h.seq LIMIT ?",
        )
        .bind(dataset.as_str())
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(unexpected("reading history in order"))?;
        let read = |row: &SqliteRow| -> anyhow::Result<RecordChange> {
            let previous: Option<String> = row.try_get("previous")?;
            Ok(RecordChange {
                seq: row.try_get("seq")?,
                import: intake_domain::ImportId::parse(row.try_get::<String, _>("import_id")?)?,
                at: from_micros(row.try_get("at_us")?)?,
                record: crate::rows::record(row, "record")?,
                previous: previous
                    .map(|p| intake_domain::Record::from_stored(&p))
                    .transpose()?,
                deleted: row.try_get("deleted")?,
            })
        };
        Ok(rows.iter().map(read).collect::<anyhow::Result<_>>()?)
    }

    async fn count_changes(&self, dataset: &DatasetName, after: i64) -> Result<u64, RollupError> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM record_history WHERE dataset = ? AND seq > ?")
                .bind(dataset.as_str())
                .bind(after)
                .fetch_one(&self.pool)
                .await
                .map_err(unexpected("counting history"))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn save_points(
        &self,
        dataset: &DatasetName,
        rollup: &str,
        points: &[RollupPoint],
    ) -> Result<(), RollupError> {
        if points.is_empty() {
            return Ok(());
        }
        let mut tx = self
            .writes
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(unexpected("saving rollup points"))?;
        for p in points {
            sqlx::query(
                "INSERT INTO rollup_points (dataset, rollup, import_id, grp, seq, at, count, sum, \
                   mean, stddev) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (dataset, rollup, import_id, grp) DO UPDATE SET seq = excluded.seq, \
                   at = excluded.at, count = excluded.count, sum = excluded.sum, \
                   mean = excluded.mean, stddev = excluded.stddev",
            )
            .bind(dataset.as_str())
            .bind(rollup)
            .bind(p.import.as_str())
            .bind(&p.group)
            .bind(p.seq)
            .bind(ts(p.at))
            .bind(i64_of(p.count))
            .bind(p.sum)
            .bind(p.mean)
            .bind(p.stddev)
            .execute(&mut *tx)
            .await
            .map_err(unexpected("saving rollup points"))?;
        }
        tx.commit()
            .await
            .map_err(unexpected("saving rollup points"))?;
        Ok(())
    }

    async fn points(
        &self,
        dataset: &DatasetName,
        rollup: &str,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        limit: u32,
    ) -> Result<Vec<RollupPoint>, RollupError> {
        let rows = sqlx::query(
            "SELECT import_id, grp, seq, at, count, sum, mean, stddev FROM rollup_points \
             WHERE dataset = ? AND rollup = ? AND (? IS NULL OR at >= ?) AND (? IS NULL OR at < ?) \
             ORDER BY seq, grp LIMIT ?",
        )
        .bind(dataset.as_str())
        .bind(rollup)
        .bind(from.map(ts))
        .bind(from.map(ts))
        .bind(to.map(ts))
        .bind(to.map(ts))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(unexpected("reading a rollup"))?;
        let read = |row: &SqliteRow| -> anyhow::Result<RollupPoint> {
            Ok(RollupPoint {
                import: intake_domain::ImportId::parse(row.try_get::<String, _>("import_id")?)?,
                at: parse_ts(row.try_get("at")?)?,
                seq: row.try_get("seq")?,
                group: row.try_get("grp")?,
                count: count(row, "count")?,
                sum: row.try_get("sum")?,
                mean: row.try_get("mean")?,
                stddev: row.try_get("stddev")?,
            })
        };
        Ok(rows.iter().map(read).collect::<anyhow::Result<_>>()?)
    }
}
