//! WAL checkpoints off the writers' path (ADR 42). SQLite's automatic checkpoint runs
//! inside the commit that takes the WAL past 1,000 pages, so a request storing an
//! upload, or an import committing, would pay for copying the WAL into the database
//! file and syncing it. The store's connections have it off; a task of the store
//! checkpoints instead, `PASSIVE` (it never waits for readers or writers), on a
//! connection of its own every [`CHECKPOINT_EVERY`], until the store is closed or
//! dropped.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::ConnectOptions as _;
use sqlx::Connection as _;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How often the WAL is copied into the database file.
pub(crate) const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

/// The checkpointing task: the store holds it. Dropped, the task stops at once.
#[derive(Debug)]
pub(crate) struct Checkpoints {
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Checkpoints {
    /// Starts checkpointing the database `options` open, on the current runtime.
    pub(crate) fn start(options: SqliteConnectOptions) -> Arc<Self> {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(options, stopped));
        Arc::new(Self {
            stop,
            task: Mutex::new(Some(task)),
        })
    }

    /// Stops the task and waits until its connection is closed, so nothing of this
    /// store has the file open afterwards (a restore may replace it).
    pub(crate) async fn close(&self) {
        let _ = self.stop.send(true);
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

async fn run(options: SqliteConnectOptions, mut stopped: watch::Receiver<bool>) {
    let mut own: Option<SqliteConnection> = None;
    let mut failing = false;
    loop {
        let tick = async {
            tokio::time::sleep(CHECKPOINT_EVERY).await;
            true
        };
        // The store closed (`true` sent) or dropped (the sender gone).
        let stop = async {
            let _ = stopped.changed().await;
            false
        };
        if !futures_lite::future::or(tick, stop).await {
            break;
        }
        let done = match own.as_mut() {
            Some(conn) => checkpoint(conn).await,
            None => match options.connect().await {
                Ok(conn) => checkpoint(own.insert(conn)).await,
                Err(e) => Err(e),
            },
        };
        match done {
            Ok(()) if failing => {
                failing = false;
                tracing::info!("checkpointing the SQLite WAL works again");
            }
            Ok(()) => {}
            Err(e) => {
                own = None;
                if !failing {
                    failing = true;
                    tracing::warn!(error = %e, "checkpointing the SQLite WAL failed; the WAL grows until it works again");
                }
            }
        }
    }
    if let Some(conn) = own {
        let _ = conn.close().await;
    }
}

async fn checkpoint(conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
        .execute(conn)
        .await
        .map(drop)
}
