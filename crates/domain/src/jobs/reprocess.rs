//! `reprocess` jobs: every stored import of a dataset, in arrival order, through one
//! contract version, rebuilding the latest state and history as if the imports had
//! arrived under it (ADR 34).
//!
//! The job first clears the dataset's derived state and holds its imports, in one
//! transaction ([`crate::ports::RebuildStore::hold`]); from then on the import queue
//! hands none of the dataset's imports to import workers, and the job processes the
//! held ones one at a time, oldest first, each in the import's own transaction. The
//! imports themselves are the cursor: a held import is one still to do, so a job
//! resumed after a crash goes on with the oldest still held, and the result is that of
//! an uninterrupted run. The checkpoint only says that the reset is done, and how many
//! imports it held.

use std::time::Duration;

use futures_lite::future;

use super::{JobApiError, JobService, Outcome, Saver};
use crate::datasets::DatasetError;
use crate::ingest::{ProcessError, Processed};
use crate::model::{ContractVersion, DatasetName};
use crate::ports::{Job, JobStatus, RebuildError};
use crate::work::{WorkError, WorkKind};

/// The kind's name.
pub(crate) const KIND: &str = "reprocess";

/// How long to wait while an import of the dataset is being processed.
const BUSY_WAIT: Duration = Duration::from_millis(200);

/// A reprocess as asked for.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReprocessSpec {
    /// The contract version every import is processed with.
    pub contract_version: ContractVersion,
}

impl ReprocessSpec {
    /// Checks that the dataset has the contract version, and no other reprocess job
    /// that has not ended.
    pub(crate) async fn check(
        &self,
        s: &JobService,
        dataset: &DatasetName,
    ) -> Result<(), JobApiError> {
        match s
            .ports
            .datasets
            .contract(dataset, self.contract_version)
            .await
        {
            Ok(_) => {}
            Err(DatasetError::UnknownContract) => {
                let current = s.ports.datasets.dataset(dataset).await?.current_contract;
                return Err(JobApiError::Invalid {
                    field: "contract_version".into(),
                    message: format!(
                        "the dataset has no contract version {} (its current version is {current})",
                        self.contract_version
                    ),
                });
            }
            Err(e) => return Err(e.into()),
        }
        let jobs = s.ports.store.list(dataset).await?;
        if let Some(active) = jobs.iter().find(|j| j.kind == KIND && active(j.status)) {
            return Err(JobApiError::Conflict(format!(
                "job {} is reprocessing the dataset ({}): cancel it, or wait for it to end",
                active.id,
                active.status.as_str()
            )));
        }
        Ok(())
    }
}

/// Whether a reprocess job in `status` keeps the dataset's imports from import workers.
fn active(status: JobStatus) -> bool {
    matches!(
        status,
        JobStatus::Queued | JobStatus::Running | JobStatus::Paused
    )
}

/// The checkpoint: the reset is done, and it held this many imports.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
struct State {
    held: u64,
}

/// Runs a reprocess from where it is to its end.
pub(crate) async fn run(
    s: &JobService,
    job: &Job,
    mut saver: Saver<'_>,
) -> Result<Outcome, WorkError> {
    let (spec, state): (ReprocessSpec, Option<State>) = match super::read_job(job) {
        Ok(read) => read,
        Err(refused) => return Ok(refused),
    };
    let rebuilds = &s.ports.rebuilds;
    let failed = |e: RebuildError| WorkError::failed(e);
    let state = match state {
        Some(state) => state,
        None => {
            let held = loop {
                match rebuilds
                    .hold(&job.dataset, &job.id, spec.contract_version)
                    .await
                {
                    Ok(held) => break held,
                    Err(RebuildError::Busy) => {
                        s.ports.clock.sleep(BUSY_WAIT).await;
                        if !saver.progress(0, None).await? {
                            return Ok(Outcome::Stopped);
                        }
                    }
                    Err(e) => return Err(failed(e)),
                }
            };
            // The dataset was cleared: the next answer about it reads the new revision.
            s.wakeups.datasets().changed(&job.dataset);
            tracing::info!(dataset = %job.dataset, job = %job.id, imports = held,
                contract = %spec.contract_version, "dataset cleared; reprocessing its imports");
            let state = State { held };
            if !saver.save(0, Some(held), || json(state), true).await? {
                return Ok(Outcome::Stopped);
            }
            state
        }
    };
    let total = state.held;
    let lease = s.ports.imports.settings().lease;
    loop {
        let done = total.saturating_sub(rebuilds.held(&job.id).await.map_err(failed)?);
        let import = match rebuilds.claim_held(&job.id, &job.worker, lease).await {
            Ok(Some(import)) => import,
            Ok(None) => {
                if !saver.save(total, Some(total), || json(state), true).await? {
                    return Ok(Outcome::Stopped);
                }
                // Imports received meanwhile waited for the job: import workers take
                // them now.
                s.wakeups.notify(WorkKind::Imports);
                return Ok(Outcome::Done(total));
            }
            Err(RebuildError::Busy) => {
                s.ports.clock.sleep(BUSY_WAIT).await;
                if !saver.save(done, Some(total), || json(state), false).await? {
                    return Ok(Outcome::Stopped);
                }
                continue;
            }
            Err(e) => return Err(failed(e)),
        };
        // The job's lease is renewed while the import is processed (an import can
        // take longer than a lease); a pause or cancel takes effect after it.
        let mut stopped = false;
        let processing = async { Ok(s.ports.imports.process(&import).await) };
        let keep_alive = async {
            let every = s.settings.lease / 3;
            loop {
                s.ports.clock.sleep(every).await;
                if !stopped && !saver.save(done, Some(total), || json(state), false).await? {
                    stopped = true;
                }
            }
        };
        let processed: Result<Result<Processed, ProcessError>, WorkError> =
            future::or(processing, keep_alive).await;
        let processed = match processed {
            Ok(processed) => processed,
            Err(e) => {
                // The job's lease was lost: the import's transaction was dropped (rolled
                // back); give the import back for the job's next holder.
                let _ = s.ports.imports.release(&import).await;
                return Err(e);
            }
        };
        match processed {
            Ok(p) => {
                tracing::debug!(dataset = %job.dataset, job = %job.id, import = %import.import,
                    verdict = ?p.verdict, "import reprocessed");
            }
            Err(e) => {
                let _ = s.ports.imports.release(&import).await;
                return Err(WorkError::failed(anyhow::anyhow!(
                    "reprocessing import {}: {e}",
                    import.import
                )));
            }
        }
        if stopped {
            return Ok(Outcome::Stopped);
        }
        let done = total.saturating_sub(rebuilds.held(&job.id).await.map_err(failed)?);
        if !saver.save(done, Some(total), || json(state), false).await? {
            return Ok(Outcome::Stopped);
        }
    }
}

fn json(state: State) -> serde_json::Value {
    serde_json::to_value(state).unwrap_or_default()
}
