//! Backups of the service's schema with PostgreSQL's own tools (ADR 32): `pg_dump
//! --format=custom` inside a snapshot whose contents are counted in the same
//! transaction, checked with `pg_restore --list`; restored with `pg_restore --clean
//! --single-transaction`. The password goes to the tools in `PGPASSWORD`, never on
//! their command line.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use intake_domain::ports::{Backup, BackupContents};
use sqlx::Connection as _;

use crate::{PgStore, Settings};

/// A URL without its password, and the password (percent-decoded).
fn split_password(url: &str) -> (String, Option<String>) {
    let mut url = url.to_owned();
    let mut password = None;
    if let Some(start) = url.find("://").map(|i| i + 3) {
        let end = url[start..]
            .find(['/', '?'])
            .map_or(url.len(), |i| start + i);
        if let Some(at) = url[start..end].rfind('@').map(|i| start + i)
            && let Some(colon) = url[start..at].find(':').map(|i| start + i)
        {
            password = Some(decode(&url[colon + 1..at]));
            url.replace_range(colon..at, "");
        }
    }
    if let Some(query) = url.find('?') {
        let (head, params) = url.split_at(query);
        let mut kept = Vec::new();
        for pair in params[1..].split('&') {
            match pair.strip_prefix("password=") {
                Some(value) => password = Some(decode(value)),
                None => kept.push(pair),
            }
        }
        url = if kept.is_empty() {
            head.to_owned()
        } else {
            format!("{head}?{}", kept.join("&"))
        };
    }
    (url, password)
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One of PostgreSQL's client tools, told how to connect; a missing tool is named with
/// what to install.
fn tool(name: &str, settings: &Settings) -> anyhow::Result<(Command, String)> {
    let (url, password) = split_password(&settings.url);
    match Command::new(name).arg("--version").output() {
        Ok(out) if out.status.success() => {}
        Ok(_) | Err(_) => anyhow::bail!(
            "{name} is not installed (or does not run): install PostgreSQL's client tools, of \
             the server's major version or newer (Debian and Ubuntu: apt install \
             postgresql-client; Alpine: apk add postgresql-client)"
        ),
    }
    let mut command = Command::new(name);
    if let Some(password) = password {
        command.env("PGPASSWORD", password);
    }
    Ok((command, url))
}

fn run(mut command: Command, what: &str) -> anyhow::Result<String> {
    let out = command
        .output()
        .with_context(|| format!("running {what}"))?;
    let said = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    anyhow::ensure!(out.status.success(), "{what} failed: {said}");
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .context("a backup tool was interrupted")?
}

/// Checks a dump with `pg_restore --list`: it must be readable and hold the service's
/// tables.
fn check(file: &Path, settings: &Settings) -> anyhow::Result<()> {
    let (mut list, _) = tool("pg_restore", settings)?;
    list.arg("--list").arg(file);
    let listed = run(list, "pg_restore --list")?;
    anyhow::ensure!(
        listed.contains("TABLE DATA") && listed.contains(" imports "),
        "{} is not a dump of Intake's schema",
        file.display()
    );
    Ok(())
}

/// Refuses while another process of the service (a server, an import) is connected to
/// the schema: a restore under it would fail half-way or be written over.
async fn refuse_while_used(settings: &Settings) -> anyhow::Result<()> {
    let store = PgStore::connect(settings)?;
    let name = crate::application_name(settings.schema.as_deref());
    let users: Vec<(Option<String>, i64)> = sqlx::query_as(
        "SELECT client_addr::text, COUNT(*) FROM pg_stat_activity \
         WHERE application_name = $1 AND datname = current_database() \
         AND pid <> pg_backend_pid() GROUP BY client_addr",
    )
    .bind(&name)
    .fetch_all(&store.pool)
    .await
    .context("asking PostgreSQL who uses the schema")?;
    store.pool.close().await;
    let connections: i64 = users.iter().map(|(_, n)| n).sum();
    anyhow::ensure!(
        connections == 0,
        "{connections} connections of Intake processes use this schema ({}): stop the \
         servers (and imports) first, then restore",
        settings.schema.as_deref().unwrap_or("public")
    );
    Ok(())
}

impl PgStore {
    /// What the schema holds now, in `db`'s transaction.
    async fn contents(db: &mut sqlx::PgConnection) -> anyhow::Result<BackupContents> {
        let (datasets, records): (i64, i64) =
            sqlx::query_as("SELECT COUNT(*), COALESCE(SUM(records), 0)::bigint FROM datasets WHERE deleted_at IS NULL")
                .fetch_one(&mut *db)
                .await?;
        let (imports, last): (i64, Option<DateTime<Utc>>) =
            sqlx::query_as("SELECT COUNT(*), MAX(received_at) FROM imports")
                .fetch_one(&mut *db)
                .await?;
        Ok(BackupContents {
            datasets: u64::try_from(datasets)?,
            records: u64::try_from(records)?,
            imports: u64::try_from(imports)?,
            last_import_at: last,
        })
    }

    /// Dumps the service's schema into `file` (which must not exist) with `pg_dump
    /// --format=custom`, online, in one snapshot whose contents are counted in the same
    /// transaction; the dump is checked before it is put in place.
    ///
    /// # Errors
    /// When `pg_dump` is missing or fails, or the dump does not check.
    pub async fn dump_into(&self, settings: &Settings, file: &Path) -> anyhow::Result<Backup> {
        anyhow::ensure!(!file.exists(), "{} exists: name a new file", file.display());
        let schema = self.schema.clone().unwrap_or_else(|| "public".into());
        let mut db = self.pool.acquire().await?;
        let mut tx = db
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await?;
        let snapshot: String = sqlx::query_scalar("SELECT pg_export_snapshot()")
            .fetch_one(&mut *tx)
            .await?;
        let contents = Self::contents(&mut tx).await?;
        let (mut dump, url) = tool("pg_dump", settings)?;
        let mut writing = file.as_os_str().to_owned();
        writing.push(".partial");
        let writing = PathBuf::from(writing);
        dump.args(["--format=custom", "--no-owner"])
            .arg(format!("--schema={schema}"))
            .arg(format!("--snapshot={snapshot}"))
            .arg("--file")
            .arg(&writing)
            .arg("--dbname")
            .arg(url);
        let (checked, target) = (settings.clone(), file.to_path_buf());
        let put = blocking(move || {
            let _ = std::fs::remove_file(&writing);
            let done = run(dump, "pg_dump").and_then(|_| check(&writing, &checked));
            if let Err(e) = done {
                let _ = std::fs::remove_file(&writing);
                return Err(e);
            }
            let bytes = std::fs::metadata(&writing)?.len();
            std::fs::rename(&writing, &target)?;
            Ok(bytes)
        });
        // The snapshot lives as long as this transaction: pg_dump has taken it by the
        // time it has finished.
        let bytes = put.await?;
        tx.rollback().await?;
        Ok(Backup {
            name: file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            made_at: Utc::now(),
            bytes,
            contents,
        })
    }
}

/// Restores a dump made by [`PgStore::dump_into`] over the service's schema, in one
/// transaction (`pg_restore --clean --if-exists --single-transaction`): what was there
/// is replaced whole, or nothing changes. Stop the servers first.
///
/// # Errors
/// When `pg_restore` is missing, the dump does not check, or the restore fails.
pub async fn restore(settings: &Settings, file: &Path) -> anyhow::Result<BackupContents> {
    refuse_while_used(settings).await?;
    let (checked, from) = (settings.clone(), file.to_path_buf());
    blocking(move || {
        check(&from, &checked)?;
        let (mut restore, url) = tool("pg_restore", &checked)?;
        restore
            .args([
                "--clean",
                "--if-exists",
                "--single-transaction",
                "--no-owner",
            ])
            .arg("--dbname")
            .arg(url)
            .arg(&from);
        run(restore, "pg_restore").map(|_| ())
    })
    .await?;
    let store = PgStore::connect(settings)?;
    let mut db = store.pool.acquire().await?;
    let contents = PgStore::contents(&mut db).await?;
    Ok(contents)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::split_password;

    #[test]
    fn the_password_leaves_the_url_for_the_environment() {
        assert_eq!(
            split_password("postgres://u:s3c%40ret@h:5432/db?sslmode=disable"),
            (
                "postgres://u@h:5432/db?sslmode=disable".to_owned(),
                Some("s3c@ret".to_owned())
            )
        );
        assert_eq!(
            split_password("postgres://u@h/db?password=s3cret&sslmode=require"),
            (
                "postgres://u@h/db?sslmode=require".to_owned(),
                Some("s3cret".to_owned())
            )
        );
        assert_eq!(
            split_password("postgres://postgres@127.0.0.1:5432/test"),
            ("postgres://postgres@127.0.0.1:5432/test".to_owned(), None)
        );
    }
}
