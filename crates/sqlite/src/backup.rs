//! Online backups of the database file (ADR 32): `VACUUM INTO` a partial file (a read
//! transaction, so imports go on), `PRAGMA integrity_check` on it, then its contents
//! written beside it and the file renamed into place: only a verified backup is ever
//! listed. Restoring puts a verified backup in the database's place, keeping the file
//! it replaces, and refuses while another process has the database open.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::str::FromStr as _;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use intake_domain::ports::{Backup, BackupContents, Backups};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions as _, Connection as _};

use crate::{SqliteStore, now, parse_ts};

const PREFIX: &str = "intake-";
const SUFFIX: &str = ".db";

/// Scheduled and on-demand backups of one database into a directory, keeping the
/// newest `keep`.
#[derive(Debug, Clone)]
pub struct SqliteBackups {
    store: SqliteStore,
    dir: PathBuf,
    keep: usize,
}

impl SqliteBackups {
    /// Backups of `store` into `dir` (created when missing), keeping the newest `keep`
    /// (at least one).
    pub fn new(store: SqliteStore, dir: PathBuf, keep: usize) -> Self {
        Self {
            store,
            dir,
            keep: keep.max(1),
        }
    }
}

/// Where a file goes while it is written or checked.
fn partial(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

/// Its contents, beside it.
fn sidecar(path: &Path) -> PathBuf {
    path.with_extension("json")
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .context("a file operation was interrupted")?
}

impl SqliteBackups {
    /// `VACUUM INTO` a partial file beside `path`, verified, `described`, then renamed
    /// to `path`. A partial file that does not verify is deleted.
    async fn write_verified(
        &self,
        path: &Path,
        described: &(dyn Fn(&Backup) -> anyhow::Result<()> + Sync),
    ) -> anyhow::Result<Backup> {
        let made_at = now();
        let writing = partial(path);
        let target = writing
            .to_str()
            .context("the backup's path is not UTF-8")?
            .to_owned();
        let _ = std::fs::remove_file(&writing);
        sqlx::query("VACUUM INTO ?")
            .bind(&target)
            .execute(&self.store.pool)
            .await
            .with_context(|| format!("writing the backup {target}"))?;
        let contents = match verify(&writing).await {
            Ok(contents) => contents,
            Err(e) => {
                let _ = std::fs::remove_file(&writing);
                return Err(e.context("the new backup did not verify and was deleted"));
            }
        };
        let backup = Backup {
            name: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            made_at,
            bytes: std::fs::metadata(&writing)?.len(),
            contents,
        };
        described(&backup).context("describing the backup")?;
        std::fs::rename(&writing, path).context("putting the backup in place")?;
        Ok(backup)
    }
}

#[async_trait::async_trait]
impl Backups for SqliteBackups {
    async fn make(&self) -> anyhow::Result<Backup> {
        let dir = self.dir.clone();
        blocking(move || {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("creating the backup directory {}", dir.display()))
        })
        .await?;
        let made_at = now();
        let name = format!("{PREFIX}{}{SUFFIX}", made_at.format("%Y%m%dT%H%M%S%.6fZ"));
        let path = self.dir.join(&name);
        let describe = |backup: &Backup| -> anyhow::Result<()> {
            std::fs::write(sidecar(&path), serde_json::to_vec_pretty(backup)?)?;
            Ok(())
        };
        let backup = self.write_verified(&path, &describe).await?;
        let kept = self.list().await?;
        for old in kept.iter().skip(self.keep) {
            let old = self.dir.join(&old.name);
            std::fs::remove_file(&old)
                .with_context(|| format!("pruning the backup {}", old.display()))?;
            let _ = std::fs::remove_file(sidecar(&old));
        }
        tracing::info!(backup = %backup.name, bytes = backup.bytes, records = backup.contents.records,
            "backup made and verified");
        Ok(backup)
    }

    async fn make_into(&self, file: &Path) -> anyhow::Result<Backup> {
        anyhow::ensure!(!file.exists(), "{} exists: name a new file", file.display());
        self.write_verified(file, &|_| Ok(())).await
    }

    async fn list(&self) -> anyhow::Result<Vec<Backup>> {
        let dir = self.dir.clone();
        let mut backups = blocking(move || {
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => {
                    return Err(anyhow::Error::new(e)
                        .context(format!("reading the backup directory {}", dir.display())));
                }
            };
            let mut backups = Vec::new();
            for entry in entries {
                let path = entry?.path();
                let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                    continue;
                };
                if !(name.starts_with(PREFIX) && name.ends_with(SUFFIX)) {
                    continue;
                }
                // A backup without its description was not put in place by `make`.
                let Ok(described) = std::fs::read(sidecar(&path)) else {
                    continue;
                };
                backups.push(serde_json::from_slice::<Backup>(&described)?);
            }
            Ok(backups)
        })
        .await?;
        backups.sort_by_key(|b| std::cmp::Reverse(b.made_at));
        Ok(backups)
    }
}

/// Checks a database file (`PRAGMA integrity_check`, opened read-only) and reads what
/// it holds.
///
/// # Errors
/// When it cannot be opened, is not an Intake database, or is damaged (the first
/// problems SQLite found are named).
pub async fn verify(file: &Path) -> anyhow::Result<BackupContents> {
    let mut db = SqliteConnectOptions::new()
        .filename(file)
        .read_only(true)
        .connect()
        .await
        .with_context(|| format!("opening {}", file.display()))?;
    let problems: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&mut db)
        .await
        .with_context(|| format!("checking {}", file.display()))?;
    if problems != ["ok"] {
        let first: Vec<_> = problems.into_iter().take(5).collect();
        anyhow::bail!("{} is damaged: {}", file.display(), first.join("; "));
    }
    let (datasets, records): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), COALESCE(SUM(records), 0) FROM datasets WHERE deleted_at IS NULL",
    )
    .fetch_one(&mut db)
    .await
    .with_context(|| format!("{} is not an Intake database", file.display()))?;
    let (imports, last): (i64, Option<String>) =
        sqlx::query_as("SELECT COUNT(*), MAX(received_at) FROM imports")
            .fetch_one(&mut db)
            .await
            .with_context(|| format!("{} is not an Intake database", file.display()))?;
    db.close().await?;
    Ok(BackupContents {
        datasets: u64::try_from(datasets)?,
        records: u64::try_from(records)?,
        imports: u64::try_from(imports)?,
        last_import_at: last.map(|t| parse_ts(&t)).transpose()?,
    })
}

/// The database file a `sqlite://` URL names.
///
/// # Errors
/// When the URL is not a SQLite URL.
pub fn database_file(url: &str) -> anyhow::Result<PathBuf> {
    let options = SqliteConnectOptions::from_str(url)
        .with_context(|| format!("parsing the SQLite URL {url:?}"))?;
    Ok(options.get_filename().to_path_buf())
}

/// The lock every process using the database holds shared while it has the file open;
/// restoring takes it alone.
fn lock_file(database: &Path) -> anyhow::Result<File> {
    let mut name = database.as_os_str().to_owned();
    name.push(".lock");
    File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(PathBuf::from(&name))
        .with_context(|| format!("opening {}", PathBuf::from(name).display()))
}

/// Holds the database's lock shared for as long as it lives.
///
/// # Errors
/// When the lock file cannot be opened, or a restore holds the lock.
pub(crate) fn share(database: &Path) -> anyhow::Result<Option<File>> {
    if database.as_os_str().is_empty() || database.as_os_str() == ":memory:" {
        return Ok(None);
    }
    let file = lock_file(database)?;
    match file.try_lock_shared() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => {
            anyhow::bail!(
                "{} is being restored; try again when it is done",
                database.display()
            )
        }
        Err(std::fs::TryLockError::Error(e)) => {
            Err(anyhow::Error::new(e).context("locking the database file"))
        }
    }
}

/// Waits for, then holds alone, the database's migration lock, so processes started
/// together migrate one after the other (SQLite's migrations take no lock of their own).
///
/// # Errors
/// When the lock file cannot be opened or locked.
pub(crate) async fn migrating(database: &Path) -> anyhow::Result<Option<File>> {
    if database.as_os_str().is_empty() || database.as_os_str() == ":memory:" {
        return Ok(None);
    }
    let mut name = database.as_os_str().to_owned();
    name.push(".migrating");
    let path = PathBuf::from(name);
    blocking(move || {
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        file.lock()
            .context("waiting for another process's migrations")?;
        Ok(Some(file))
    })
    .await
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    /// What the restored database holds.
    pub contents: BackupContents,
    /// Where the database it replaced was kept, if there was one.
    pub replaced: Option<PathBuf>,
}

/// Puts the backup `backup` in the place of the database `url` names, after checking
/// it; the file it replaces (with its `-wal`) is kept beside it, renamed.
///
/// # Errors
/// When the backup does not verify, another process has the database open (`intake
/// serve`, `intake import`), or a file cannot be moved; nothing is changed then.
pub async fn restore(backup: &Path, url: &str, at: DateTime<Utc>) -> anyhow::Result<Restored> {
    let contents = verify(backup)
        .await
        .with_context(|| format!("{} cannot be restored", backup.display()))?;
    let database = database_file(url)?;
    let backup = backup.to_path_buf();
    let replaced = blocking(move || {
        if let Some(dir) = database.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let lock = lock_file(&database)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
                "{} is in use by another process (intake serve or intake import): stop it first",
                database.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => return Err(e.into()),
        }
        let copying = partial(&database);
        std::fs::copy(&backup, &copying)
            .with_context(|| format!("copying {} into place", backup.display()))?;
        let replaced = if database.exists() {
            let mut kept = database.as_os_str().to_owned();
            kept.push(format!(".replaced-{}", at.format("%Y%m%dT%H%M%SZ")));
            let kept = PathBuf::from(kept);
            std::fs::rename(&database, &kept)?;
            for side in ["-wal", "-shm"] {
                let mut from = database.as_os_str().to_owned();
                from.push(side);
                let mut to = kept.as_os_str().to_owned();
                to.push(side);
                if Path::new(&from).exists() {
                    std::fs::rename(&from, &to)?;
                }
            }
            Some(kept)
        } else {
            None
        };
        std::fs::rename(&copying, &database)?;
        drop(lock);
        Ok(replaced)
    })
    .await?;
    Ok(Restored { contents, replaced })
}
