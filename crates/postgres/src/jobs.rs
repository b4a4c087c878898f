//! Jobs (ADR 33): a row per job with its lease, its status and its progress, the last
//! K checkpoints in `job_checkpoints`, and rollup series in `rollup_points`. Claims take
//! `FOR UPDATE SKIP LOCKED`; times are the server's. History is read in `seq` order
//! only while no import of the dataset is being written: imports of a dataset write
//! side by side, and one committing later may hold lower `seq`s.

use std::time::Duration;

use chrono::{DateTime, Utc};
use intake_domain::DatasetName;
use intake_domain::ports::{
    CheckpointMark, Directive, JOB_HELD, Job, JobAction, JobError, JobProgress, JobStatus,
    JobStore, JobView, NewJob, RecordChange, RollupError, RollupPoint, RollupStore,
};
use sqlx::Row as _;
use sqlx::postgres::PgRow;

use crate::{PgStore, new_id, seconds, unexpected};

const COLUMNS: &str = "id, dataset, kind, params::text AS params, status, done, total, error, \
    CASE WHEN lease_expires_at > now() THEN worker END AS worker, attempts, created_at, \
    started_at, started_done, updated_at, finished_at, due_at";

fn count(row: &PgRow, column: &str) -> anyhow::Result<u64> {
    Ok(u64::try_from(row.try_get::<i64, _>(column)?)?)
}

fn status(row: &PgRow) -> anyhow::Result<JobStatus> {
    let text: String = row.try_get("status")?;
    JobStatus::parse(&text).ok_or_else(|| anyhow::anyhow!("bad job status {text:?}"))
}

fn i64_of(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl PgStore {
    async fn job_view(&self, row: &PgRow) -> Result<JobView, JobError> {
        let read = || -> anyhow::Result<JobView> {
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
                held_by: row.try_get("worker")?,
                attempts: u32::try_from(row.try_get::<i32, _>("attempts")?)?,
                created_at: row.try_get("created_at")?,
                started_at: row.try_get("started_at")?,
                started_done: count(row, "started_done")?,
                updated_at: row.try_get("updated_at")?,
                finished_at: row.try_get("finished_at")?,
                due_at: row.try_get("due_at")?,
                checkpoints: Vec::new(),
            })
        };
        let mut view = read()?;
        let marks =
            sqlx::query("SELECT n, done, at FROM job_checkpoints WHERE job_id = $1 ORDER BY n")
                .bind(&view.id)
                .fetch_all(&self.pool)
                .await
                .map_err(unexpected("reading a job's checkpoints"))?;
        for m in &marks {
            let read = || -> anyhow::Result<CheckpointMark> {
                Ok(CheckpointMark {
                    n: u32::try_from(m.try_get::<i32, _>("n")?)?,
                    done: count(m, "done")?,
                    at: m.try_get("at")?,
                })
            };
            view.checkpoints.push(read()?);
        }
        Ok(view)
    }

    async fn job_row(
        &self,
        row: Result<Option<PgRow>, sqlx::Error>,
        doing: &'static str,
    ) -> Result<JobView, JobError> {
        let row = row.map_err(unexpected(doing))?;
        self.job_view(&row.ok_or(JobError::NotFound)?).await
    }

    /// Ends a claim: `set` says what changes (`$1` is the id, `$2` the token, `$3` the
    /// text given, `$4` a time given).
    async fn end_claim(
        &self,
        job: &Job,
        set: &str,
        text: Option<String>,
        at: Option<DateTime<Utc>>,
        doing: &'static str,
    ) -> Result<(), JobError> {
        let ended = sqlx::query(&format!(
            "UPDATE jobs SET {set}, worker = NULL, token = NULL, lease_expires_at = NULL, \
             updated_at = now() WHERE id = $1 AND token = $2 AND lease_expires_at > now()"
        ))
        .bind(&job.id)
        .bind(&job.lease_token)
        .bind(text)
        .bind(at)
        .execute(&self.pool)
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

/// The latest checkpoint's column `c` of the job being updated.
fn latest(c: &str) -> String {
    format!(
        "(SELECT c.{c} FROM job_checkpoints c WHERE c.job_id = jobs.id ORDER BY c.n DESC LIMIT 1)"
    )
}

#[async_trait::async_trait]
impl JobStore for PgStore {
    async fn create(&self, job: &NewJob) -> Result<JobView, JobError> {
        let row = sqlx::query(&format!(
            "INSERT INTO jobs (id, dataset, kind, params, status) \
             SELECT $1, $2, $3, $4::json, 'queued' \
             WHERE EXISTS (SELECT 1 FROM datasets WHERE name = $2 AND deleted_at IS NULL) RETURNING {COLUMNS}"
        ))
        .bind(new_id())
        .bind(job.dataset.as_str())
        .bind(&job.kind)
        .bind(job.params.to_string())
        .fetch_optional(&self.pool)
        .await;
        self.job_row(row, "creating a job").await
    }

    async fn get(&self, dataset: &DatasetName, id: &str) -> Result<JobView, JobError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM jobs WHERE dataset = $1 AND id = $2"
        ))
        .bind(dataset.as_str())
        .bind(id)
        .fetch_optional(&self.pool)
        .await;
        self.job_row(row, "reading a job").await
    }

    async fn list(&self, dataset: &DatasetName) -> Result<Vec<JobView>, JobError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM jobs WHERE dataset = $1 ORDER BY created_at DESC, id DESC"
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
        // A claim starts from the latest checkpoint: what was done after it is redone.
        let row = sqlx::query(&format!(
            "WITH next AS ( \
               SELECT id FROM jobs WHERE \
                 (status = 'queued' AND due_at <= now() \
                   AND (lease_expires_at IS NULL OR lease_expires_at <= now())) \
                 OR (status = 'running' AND lease_expires_at <= now()) \
               ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) \
             UPDATE jobs SET status = 'running', worker = $1, token = $2, \
               lease_expires_at = now() + make_interval(secs => $3), \
               attempts = attempts + 1, started_at = now(), updated_at = now(), \
               done = COALESCE({done}, 0), started_done = COALESCE({done}, 0) \
             FROM next WHERE jobs.id = next.id \
             RETURNING jobs.id, dataset, kind, params::text AS params, \
               COALESCE({done}, 0) AS done, attempts, {state} AS state",
            done = latest("done"),
            state = latest("state"),
        ))
        .bind(worker)
        .bind(&token)
        .bind(seconds(lease))
        .fetch_optional(&self.pool)
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
                attempt: u32::try_from(row.try_get::<i32, _>("attempts")?)?,
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
            .pool
            .begin()
            .await
            .map_err(unexpected("saving a job's progress"))?;
        // A resume that came before this save leaves the job queued: it runs on.
        let status: Option<String> = sqlx::query_scalar(
            "UPDATE jobs SET done = $3, total = $4, updated_at = now(), \
               attempts = CASE WHEN $3 > done THEN 1 ELSE attempts END, \
               status = CASE WHEN status = 'queued' THEN 'running' ELSE status END, \
               lease_expires_at = CASE WHEN status IN ('paused', 'cancelled') THEN NULL \
                 ELSE now() + make_interval(secs => $5) END, \
               worker = CASE WHEN status IN ('paused', 'cancelled') THEN NULL ELSE worker END, \
               token = CASE WHEN status IN ('paused', 'cancelled') THEN NULL ELSE token END \
             WHERE id = $1 AND token = $2 AND lease_expires_at > now() RETURNING status",
        )
        .bind(&job.id)
        .bind(&job.lease_token)
        .bind(i64_of(progress.done))
        .bind(progress.total.map(i64_of))
        .bind(seconds(lease))
        .fetch_optional(&mut *tx)
        .await
        .map_err(unexpected("saving a job's progress"))?;
        let Some(status) = status else {
            return Err(JobError::LeaseLost);
        };
        if let Some(state) = &progress.checkpoint {
            let n: i32 = sqlx::query_scalar(
                "INSERT INTO job_checkpoints (job_id, n, done, state) \
                 SELECT $1, COALESCE(MAX(n), 0) + 1, $2, $3 FROM job_checkpoints WHERE job_id = $1 \
                 RETURNING n",
            )
            .bind(&job.id)
            .bind(i64_of(progress.done))
            .bind(state.to_string())
            .fetch_one(&mut *tx)
            .await
            .map_err(unexpected("saving a checkpoint"))?;
            sqlx::query("DELETE FROM job_checkpoints WHERE job_id = $1 AND n <= $2")
                .bind(&job.id)
                .bind(n.saturating_sub(i32::try_from(keep.max(1)).unwrap_or(i32::MAX)))
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
            "UPDATE jobs SET status = {UNLESS_STOPPED} $3 END, done = $4, error = $5, \
               finished_at = now(), worker = NULL, token = NULL, lease_expires_at = NULL, \
               updated_at = now() \
             WHERE id = $1 AND token = $2 AND lease_expires_at > now()"
        ))
        .bind(&job.id)
        .bind(&job.lease_token)
        .bind(status)
        .bind(i64_of(done))
        .bind(error)
        .execute(&self.pool)
        .await
        .map_err(unexpected("finishing a job"))?;
        if ended.rows_affected() == 0 {
            return Err(JobError::LeaseLost);
        }
        Ok(())
    }

    async fn snooze(&self, job: &Job, done: u64, at: DateTime<Utc>) -> Result<(), JobError> {
        self.end_claim(
            job,
            &format!(
                "status = {UNLESS_STOPPED} 'queued' END, done = $3::bigint, due_at = $4, \
                 attempts = 0, error = NULL"
            ),
            Some(done.to_string()),
            Some(at),
            "scheduling a job's next run",
        )
        .await
    }

    async fn retry(&self, job: &Job, at: DateTime<Utc>, reason: &str) -> Result<(), JobError> {
        self.end_claim(
            job,
            &format!("status = {UNLESS_STOPPED} 'queued' END, error = $3, due_at = $4"),
            Some(reason.to_owned()),
            Some(at),
            "queueing a job again",
        )
        .await
    }

    async fn release(&self, job: &Job) -> Result<(), JobError> {
        self.end_claim(
            job,
            &format!(
                "status = {UNLESS_STOPPED} 'queued' END, due_at = COALESCE($4, now()), \
                 attempts = GREATEST(attempts - 1, 0), error = COALESCE($3, error)"
            ),
            None,
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
        let Some(to) = action.target(current.status).map_err(JobError::Conflict)? else {
            return Ok(current);
        };
        let to = to.as_str();
        let row = sqlx::query(&format!(
            "UPDATE jobs SET status = $3, updated_at = now(), due_at = now(), \
               finished_at = CASE WHEN $3 = 'cancelled' THEN now() END \
             WHERE dataset = $1 AND id = $2 AND status = $4 RETURNING {COLUMNS}"
        ))
        .bind(dataset.as_str())
        .bind(id)
        .bind(to)
        .bind(current.status.as_str())
        .fetch_optional(&self.pool)
        .await;
        match self.job_row(row, "changing a job").await {
            Err(JobError::NotFound) => Err(JobError::Conflict(
                "the job changed meanwhile; read it again".into(),
            )),
            other => other,
        }
    }

    async fn restart(&self, dataset: &DatasetName, id: &str, n: u32) -> Result<JobView, JobError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(unexpected("restarting a job"))?;
        let held: Option<bool> = sqlx::query_scalar(
            "SELECT COALESCE(lease_expires_at > now(), false) FROM jobs \
             WHERE dataset = $1 AND id = $2 FOR UPDATE",
        )
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
        let n = i32::try_from(n).unwrap_or(i32::MAX);
        let done: i64 = if n == 0 {
            0
        } else {
            sqlx::query_scalar("SELECT done FROM job_checkpoints WHERE job_id = $1 AND n = $2")
                .bind(id)
                .bind(n)
                .fetch_optional(&mut *tx)
                .await
                .map_err(unexpected("restarting a job"))?
                .ok_or(JobError::NotFound)?
        };
        sqlx::query("DELETE FROM job_checkpoints WHERE job_id = $1 AND n > $2")
            .bind(id)
            .bind(n)
            .execute(&mut *tx)
            .await
            .map_err(unexpected("restarting a job"))?;
        let row = sqlx::query(&format!(
            "UPDATE jobs SET status = 'queued', done = $2, error = NULL, finished_at = NULL, \
               attempts = 0, due_at = now(), updated_at = now(), worker = NULL, token = NULL, \
               lease_expires_at = NULL WHERE id = $1 RETURNING {COLUMNS}"
        ))
        .bind(id)
        .bind(done)
        .fetch_one(&mut *tx)
        .await
        .map_err(unexpected("restarting a job"))?;
        tx.commit().await.map_err(unexpected("restarting a job"))?;
        // The row as the restart left it: a worker may claim the job at once.
        self.job_view(&row).await
    }
}

#[async_trait::async_trait]
impl RollupStore for PgStore {
    async fn changes(
        &self,
        dataset: &DatasetName,
        after: i64,
        limit: u32,
    ) -> Result<Vec<RecordChange>, RollupError> {
        // One snapshot for both statements: with no import of the dataset being
        // written in it, every change a later commit brings has a higher `seq`. Any
        // import `processing` counts, whatever its lease: a writer whose lease lapsed
        // still commits, and a dead one's import is soon claimed again.
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(unexpected("reading history in order"))?;
        let busy: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM imports WHERE dataset = $1 AND status = 'processing')",
        )
        .bind(dataset.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(unexpected("reading history in order"))?;
        if busy {
            return Err(RollupError::Busy);
        }
        let rows = sqlx::query(
            "SELECT h.seq, h.record::text AS record, h.created_at, h.import_id, \
               h.kind = 'deleted' AS deleted, \
               CASE WHEN h.kind <> 'deleted' AND p.kind <> 'deleted' THEN p.record::text END \
                 AS previous \
             FROM record_history h LEFT JOIN LATERAL ( \
               SELECT record, kind FROM record_history p WHERE p.dataset = h.dataset \
                 AND p.key = h.key AND p.seq < h.seq ORDER BY p.seq DESC LIMIT 1) p ON true \
             WHERE h.dataset = $1 AND h.seq > $2 ORDER BY h.seq LIMIT $3",
        )
        .bind(dataset.as_str())
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await
        .map_err(unexpected("reading history in order"))?;
        tx.commit()
            .await
            .map_err(unexpected("reading history in order"))?;
        let read = |row: &PgRow| -> anyhow::Result<RecordChange> {
            let previous: Option<String> = row.try_get("previous")?;
            Ok(RecordChange {
                seq: row.try_get("seq")?,
                import: intake_domain::ImportId::parse(row.try_get::<String, _>("import_id")?)?,
                at: row.try_get("created_at")?,
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
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM record_history WHERE dataset = $1 AND seq > $2",
        )
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
        let column = |f: fn(&RollupPoint) -> String| points.iter().map(f).collect::<Vec<_>>();
        sqlx::query(
            "INSERT INTO rollup_points (dataset, rollup, import_id, grp, seq, at, count, sum, \
               mean, stddev) \
             SELECT $1, $2, * FROM UNNEST($3::text[], $4::text[], $5::int8[], $6::timestamptz[], \
               $7::int8[], $8::float8[], $9::float8[], $10::float8[]) \
             ON CONFLICT (dataset, rollup, import_id, grp) DO UPDATE SET seq = excluded.seq, \
               at = excluded.at, count = excluded.count, sum = excluded.sum, \
               mean = excluded.mean, stddev = excluded.stddev",
        )
        .bind(dataset.as_str())
        .bind(rollup)
        .bind(column(|p| p.import.as_str().to_owned()))
        .bind(column(|p| p.group.clone()))
        .bind(points.iter().map(|p| p.seq).collect::<Vec<_>>())
        .bind(points.iter().map(|p| p.at).collect::<Vec<_>>())
        .bind(points.iter().map(|p| i64_of(p.count)).collect::<Vec<_>>())
        .bind(points.iter().map(|p| p.sum).collect::<Vec<_>>())
        .bind(points.iter().map(|p| p.mean).collect::<Vec<_>>())
        .bind(points.iter().map(|p| p.stddev).collect::<Vec<_>>())
        .execute(&self.pool)
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
             WHERE dataset = $1 AND rollup = $2 AND ($3::timestamptz IS NULL OR at >= $3) \
               AND ($4::timestamptz IS NULL OR at < $4) \
             ORDER BY seq, grp LIMIT $5",
        )
        .bind(dataset.as_str())
        .bind(rollup)
        .bind(from)
        .bind(to)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(unexpected("reading a rollup"))?;
        let read = |row: &PgRow| -> anyhow::Result<RollupPoint> {
            Ok(RollupPoint {
                import: intake_domain::ImportId::parse(row.try_get::<String, _>("import_id")?)?,
                at: row.try_get("at")?,
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
