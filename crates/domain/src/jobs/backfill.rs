//! `backfill` jobs: every page of a pull source from its first, each saved as an
//! import, whatever the source's own runs have reached (ADR 34). The source's schedule,
//! cursor and watermark are left alone: its incremental runs go on beside the job.
//!
//! The checkpoint is the pagination cursor with the counts so far. A job resumed after
//! a crash fetches again the pages after its latest checkpoint; a page whose bytes the
//! vault already holds is the earlier import (DESIGN §6), so nothing is applied twice
//! as long as the vendor answers the same page with the same bytes.

use std::convert::Infallible;

use super::{JobApiError, JobService, Outcome, Saver};
use crate::model::DatasetName;
use crate::ports::{Fetched, Job};
use crate::sources::{Prepared, SourceApiError, SourceKind, fetch_failed};
use crate::work::{WorkError, WorkKind};

/// The kind's name.
pub(crate) const KIND: &str = "backfill";

/// A backfill as asked for.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct BackfillSpec {
    /// The source's name.
    pub source: String,
    /// The value of the source's incremental parameter (`updated_since`): only what
    /// changed since then. Without it, everything the source serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
}

impl BackfillSpec {
    /// Checks that the dataset has the source, and that `since` is only given to a
    /// source with an incremental parameter.
    pub(crate) async fn check(
        &self,
        s: &JobService,
        dataset: &DatasetName,
    ) -> Result<(), JobApiError> {
        s.ports.datasets.get(dataset).await?;
        let source = match s.ports.sources.source(dataset, &self.source).await {
            Ok(source) => source,
            Err(SourceApiError::NotFound) => {
                return Err(JobApiError::Invalid {
                    field: "source".into(),
                    message: format!("the dataset has no source named {:?}", self.source),
                });
            }
            Err(e) => return Err(JobApiError::Unexpected(e.into())),
        };
        if self.since.is_some() && source.spec.incremental.is_none() {
            return Err(JobApiError::Invalid {
                field: "since".into(),
                message: format!(
                    "the source {:?} has no incremental parameter to send it in",
                    self.source
                ),
            });
        }
        Ok(())
    }
}

/// The checkpoint: where the pages go on, and what was fetched so far.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct State {
    /// The next page (`None` before the first).
    cursor: Option<String>,
    /// Records in the pages fetched.
    records: u64,
    /// Pages that were new imports (not bytes the vault held already).
    imports: u64,
}

/// Runs a backfill from its checkpoint to the source's last page.
pub(crate) async fn run(
    s: &JobService,
    job: &Job,
    mut saver: Saver<'_>,
) -> Result<Outcome, WorkError> {
    let (spec, mut state): (BackfillSpec, State) = match super::read_job(job) {
        Ok(read) => read,
        Err(refused) => return Ok(refused),
    };
    let source = match s.ports.sources.source(&job.dataset, &spec.source).await {
        Ok(source) => source,
        Err(SourceApiError::NotFound) => {
            return Ok(Outcome::Refused(format!(
                "the source {:?} was deleted",
                spec.source
            )));
        }
        Err(e) => return Err(WorkError::failed(e)),
    };
    let Prepared {
        adapter,
        mut request,
        import,
    } = s.ports.sources.prepare(&source).await?;
    request.since.clone_from(&spec.since);
    request.cursor.clone_from(&state.cursor);
    let mut pages = job.done;
    loop {
        let page = match adapter.fetch(&request).await.map_err(fetch_failed)? {
            Fetched::Page(page) => page,
            // Not asked for (no validators are sent), but an answer all the same.
            Fetched::NotModified => {
                return Ok(
                    match saver
                        .save(pages, Some(pages), || json(&state), true)
                        .await?
                    {
                        true => Outcome::Done(pages),
                        false => Outcome::Stopped,
                    },
                );
            }
        };
        if page.records > 0 || source.spec.kind == SourceKind::HttpFile {
            let body = futures_lite::stream::once(Ok::<_, Infallible>(page.body));
            let received = s
                .ports
                .imports
                .receive(
                    &job.dataset,
                    &import.content_type,
                    &import.source,
                    None,
                    body,
                )
                .await
                .map_err(WorkError::failed)?;
            if received.is_new {
                state.imports += 1;
                s.wakeups.notify(WorkKind::Imports);
            }
        }
        pages += 1;
        state.records += page.records;
        state.cursor.clone_from(&page.next);
        let end = page.next.is_none();
        let total = end.then_some(pages);
        if !saver.save(pages, total, || json(&state), end).await? {
            return Ok(Outcome::Stopped);
        }
        if end {
            tracing::info!(dataset = %job.dataset, job = %job.id, source = %spec.source, pages,
                records = state.records, imports = state.imports, "backfill complete");
            return Ok(Outcome::Done(pages));
        }
        request.cursor = page.next;
    }
}

fn json(state: &State) -> serde_json::Value {
    serde_json::to_value(state).unwrap_or_default()
}
