//! Changes other processes commit to the same database file (`intake import` beside a
//! running server): SQLite cannot notify, so [`SqliteStore::relay_changes`] asks the
//! file's `PRAGMA data_version` on a connection of its own every
//! [`POLL_EVERY`], and when another connection committed anything, this process's
//! [`KnownDatasets`] forgets every catalog row it keeps (ADR 25). Changes this process
//! commits are heard at once, in process.

use std::convert::Infallible;
use std::time::Duration;

use intake_domain::datasets::KnownDatasets;
use intake_domain::ingest::Shutdown;
use sqlx::{ConnectOptions as _, SqliteConnection};

use crate::SqliteStore;

/// How often the file is asked whether it changed: how long a change committed by
/// another process may go unseen by this one's answers.
pub const POLL_EVERY: Duration = Duration::from_millis(100);

/// The wait before trying again after the database failed.
const RETRY_AFTER: Duration = Duration::from_secs(2);

impl SqliteStore {
    /// Tells `known` of changes committed by other connections to this database until
    /// `shutdown`; while it runs, `known` may answer from memory. Run it on the runtime.
    pub async fn relay_changes(&self, known: KnownDatasets, shutdown: Shutdown) {
        let stop = async {
            shutdown.wait().await;
            None
        };
        let relay = async {
            loop {
                let Err(e) = self.poll_changes(&known).await;
                known.hearing(false);
                tracing::warn!(error = %e, retry_in_ms = RETRY_AFTER.as_millis(),
                    "watching the database file for other processes' changes failed; answers read the catalog meanwhile");
                tokio::time::sleep(RETRY_AFTER).await;
            }
        };
        let _: Option<()> = futures_lite::future::or(relay, stop).await;
        known.hearing(false);
    }

    async fn poll_changes(&self, known: &KnownDatasets) -> Result<Infallible, sqlx::Error> {
        let mut own: SqliteConnection = self.pool.connect_options().connect().await?;
        let mut seen = data_version(&mut own).await?;
        known.hearing(true);
        loop {
            tokio::time::sleep(POLL_EVERY).await;
            let now = data_version(&mut own).await?;
            if now != seen {
                seen = now;
                known.all_may_have_changed();
            }
        }
    }
}

/// Changes whenever another connection commits to the file.
async fn data_version(conn: &mut SqliteConnection) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("PRAGMA data_version")
        .fetch_one(conn)
        .await
}
