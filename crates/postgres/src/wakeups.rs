//! Cross-instance wake-ups: the triggers of `0003_work_wakeups.sql` send
//! `NOTIFY intake_work, '<schema>:<kind>'` when work commits, and those of
//! `0008_import_finished_wakeups.sql` `'<schema>:finished:<import id>'` when an import
//! finishes, and those of `0011_dataset_changes.sql` `'<schema>:dataset:<name>'` when a
//! dataset's revision or current contract changes, and those of
//! `0017_dataset_deletion.sql` `'<schema>:dropped:<name>'` when it is deleted; [`PgStore::relay_wakeups`] listens on its own connection (never a pooled
//! one, so requests keep the whole pool) and passes each notification of its schema to
//! the process's [`Wakeups`].

use std::time::Duration;

use intake_domain::ingest::Shutdown;
use intake_domain::work::{Wakeups, WorkKind};
use intake_domain::{DatasetName, ImportId};
use sqlx::postgres::{PgListener, PgPoolOptions};

use crate::PgStore;

/// The channel the triggers notify.
const CHANNEL: &str = "intake_work";

/// The wait before listening again after the connection failed.
const RECONNECT_AFTER: Duration = Duration::from_secs(2);

impl PgStore {
    /// Wakes this process's idle workers whenever work of their kind is committed to
    /// this database, by this instance or another, until `shutdown`. Each time it
    /// starts listening (at first, and after the connection was lost: notifications
    /// sent meanwhile are gone) every kind is woken once, so nothing committed before
    /// waits for the safety-net poll. While it listens, the process's
    /// [`intake_domain::datasets::KnownDatasets`] may answer from memory (ADR 25).
    /// Run it on the runtime.
    pub async fn relay_wakeups(&self, wakeups: Wakeups, shutdown: Shutdown) {
        let options = self.pool.connect_options().as_ref().clone();
        let own = PgPoolOptions::new()
            .max_connections(1)
            .connect_lazy_with(options);
        let stop = async {
            shutdown.wait().await;
            None
        };
        let relay = async {
            loop {
                let outcome = relay(&own, &wakeups, &self.layouts).await;
                // Until it listens again, changes of other instances go unheard.
                wakeups.datasets().hearing(false);
                if let Err(e) = outcome {
                    tracing::warn!(error = %e, retry_in_ms = RECONNECT_AFTER.as_millis(),
                        "listening for work committed by other instances failed; workers poll meanwhile");
                    tokio::time::sleep(RECONNECT_AFTER).await;
                } else {
                    tracing::info!("the wake-up connection was lost; listening again");
                }
            }
        };
        let _: Option<()> = futures_lite::future::or(relay, stop).await;
        own.close().await;
    }
}

/// Listens until the connection is lost (`Ok`) or listening fails.
async fn relay(
    pool: &sqlx::PgPool,
    wakeups: &Wakeups,
    layouts: &crate::layout::Layouts,
) -> Result<(), sqlx::Error> {
    let schema: String = sqlx::query_scalar("SELECT current_schema()")
        .fetch_one(pool)
        .await?;
    let mut listener = PgListener::connect_with(pool).await?;
    // A lost connection ends this at once (rows are distrusted), not after reconnecting.
    listener.eager_reconnect(false);
    listener.listen(CHANNEL).await?;
    tracing::debug!(%schema, "listening for work committed by any instance");
    // Work committed before this point sent its notification to nobody.
    wake_every_kind(wakeups);
    wakeups.datasets().hearing(true);
    loop {
        let Some(notification) = listener.try_recv().await? else {
            return Ok(());
        };
        let Some(what) = notification
            .payload()
            .strip_prefix(schema.as_str())
            .and_then(|rest| rest.strip_prefix(':'))
        else {
            continue;
        };
        if let Some(import) = what.strip_prefix("finished:") {
            if let Ok(import) = ImportId::parse(import) {
                wakeups.import_finished(&import);
            }
        } else if let Some(dataset) = what.strip_prefix("dataset:") {
            if let Ok(dataset) = DatasetName::parse(dataset) {
                wakeups.datasets().changed(&dataset);
            }
        } else if let Some(dataset) = what.strip_prefix("dropped:") {
            // Deleted (ADR 37): a dataset created again under the name has its own table.
            layouts.forget(dataset);
            if let Ok(dataset) = DatasetName::parse(dataset) {
                wakeups.datasets().changed(&dataset);
            }
        } else if let Some(kind) = WorkKind::parse(what) {
            wakeups.notify(kind);
        }
    }
}

fn wake_every_kind(wakeups: &Wakeups) {
    for kind in WorkKind::ALL {
        wakeups.notify(kind);
    }
    wakeups.imports_may_have_finished();
}
