use chrono::{DateTime, Utc};

use crate::work::WorkKind;

/// Which kinds of work are paused, held in the database so every instance obeys
/// (DESIGN §12). A paused kind's workers claim nothing; its work stays queued.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait::async_trait]
pub trait PauseStore: Send + Sync {
    /// The kinds paused now, each with when it was paused, in [`WorkKind::ALL`]'s order.
    ///
    /// # Errors
    /// When the store fails (an `Unavailable` in the chain when it cannot be reached).
    async fn paused(&self) -> anyhow::Result<Vec<(WorkKind, DateTime<Utc>)>>;

    /// Pauses `kind` (at `at`) or resumes it. Idempotent: pausing a paused kind keeps
    /// its first time. Gives whether anything changed.
    ///
    /// # Errors
    /// When the store fails.
    async fn set_paused(
        &self,
        kind: WorkKind,
        paused: bool,
        at: DateTime<Utc>,
    ) -> anyhow::Result<bool>;
}
