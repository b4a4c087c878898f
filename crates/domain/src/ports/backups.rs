use chrono::{DateTime, Utc};

/// What a backup holds, read from the backup itself when it was verified.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BackupContents {
    /// Datasets.
    pub datasets: u64,
    /// Records (latest state) across datasets.
    pub records: u64,
    /// Imports received, whatever their status.
    pub imports: u64,
    /// When the newest import was received.
    pub last_import_at: Option<DateTime<Utc>>,
}

/// One backup kept.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Backup {
    /// Its file name in the backup directory.
    pub name: String,
    /// When it was made.
    pub made_at: DateTime<Utc>,
    /// Its size in bytes.
    pub bytes: u64,
    /// What it holds. Only a verified backup is kept, so every backup listed has it.
    pub contents: BackupContents,
}

/// Backups of the database (DESIGN §10, §14): made online, verified before they count,
/// the oldest pruned beyond what is kept.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait::async_trait]
pub trait Backups: Send + Sync {
    /// Makes a backup now, verifies it (a backup that fails verification is deleted
    /// and is an error), then prunes the oldest beyond the number kept.
    ///
    /// # Errors
    /// When it cannot be made or does not verify; what was there is untouched.
    async fn make(&self) -> anyhow::Result<Backup>;

    /// Makes a backup into `file` (which must not exist), verified, apart from the
    /// backups kept (nothing is pruned).
    ///
    /// # Errors
    /// When `file` exists or cannot be written, or the backup does not verify.
    async fn make_into(&self, file: &std::path::Path) -> anyhow::Result<Backup>;

    /// The backups kept, newest first.
    ///
    /// # Errors
    /// When the backup directory cannot be read.
    async fn list(&self) -> anyhow::Result<Vec<Backup>>;
}
