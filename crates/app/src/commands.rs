//! `intake migrate`, `intake check`, `intake import`, `intake jobs`, `intake backup` and
//! `intake restore`.

use std::io::IsTerminal as _;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures_lite::Stream;
use indicatif::{ProgressBar, ProgressStyle};
use intake_domain::DatasetName;
use intake_domain::ImportStatus;
use intake_domain::ports::{ImportSummary, JobStatus, JobView};
use intake_domain::work::WorkKind;
use tokio::io::AsyncReadExt as _;

use crate::server::{WorkerCounts, Workers};
use crate::settings::Settings;
use crate::wiring::{Services, Storage};

/// Applies pending migrations.
///
/// # Errors
/// When the database cannot be reached or migrated.
pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    Storage::open(settings).await?;
    println!("{}: migrations applied", settings.database_url);
    Ok(())
}

/// Checks the configuration and each dependency, printing one line per check; it
/// changes nothing (no database is created, no migration applied).
pub async fn check(settings: &Settings) -> ExitCode {
    println!("configuration: ok");
    let mut ok = true;
    match settings.check_exposure() {
        Ok(()) => match settings.auth_tokens.tokens() {
            Ok(tokens) if tokens.is_empty() => {
                println!("authentication: off (no auth tokens; loopback only)");
            }
            Ok(tokens) => println!("authentication: {} bearer tokens", tokens.len()),
            Err(e) => {
                ok = false;
                println!("authentication: FAILED: {e:#}");
            }
        },
        Err(e) => {
            ok = false;
            println!("listen: FAILED: {e:#}");
        }
    }
    // Read-only: a check creates no database and applies no migration.
    match crate::wiring::probe(settings).await {
        Ok(line) => println!("database ({}): {line}", settings.database_url),
        Err(e) => {
            ok = false;
            println!("database ({}): FAILED: {e:#}", settings.database_url);
        }
    }
    if let Some(cache) = crate::wiring::redis_cache(settings) {
        let url = settings
            .redis_url
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        let answer = match cache {
            Ok(cache) => cache.ping().await,
            Err(e) => Err(e),
        };
        match answer {
            Ok(()) => println!("redis ({url}): ok"),
            Err(e) => {
                ok = false;
                println!("redis ({url}): FAILED: {e:#} (serve would run without its cache)");
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// What `import` is asked to do.
pub struct ImportArgs<'a> {
    /// The document.
    pub file: &'a Path,
    /// Its dataset.
    pub dataset: &'a str,
    /// Its media type, when not guessed from the extension.
    pub content_type: Option<String>,
    /// Leave processing to a server.
    pub no_process: bool,
}

/// Streams a file through the import service with progress, then (unless told not
/// to) processes it here and prints the import as JSON.
///
/// # Errors
/// When the file cannot be read or the import cannot be received (exit 2).
pub async fn import(settings: &Settings, args: ImportArgs<'_>) -> anyhow::Result<ExitCode> {
    let dataset = DatasetName::parse(args.dataset).context("--dataset")?;
    let file = tokio::fs::File::open(args.file)
        .await
        .with_context(|| format!("opening {}", args.file.display()))?;
    let size = file.metadata().await?.len();
    let content_type = args
        .content_type
        .unwrap_or_else(|| guess_media_type(args.file).to_owned());
    let storage = Storage::open(settings).await?;
    let services = Services::new(&storage, settings, None)?;
    let progress = Progress::new(size);
    let body = chunks(file, progress.clone());
    let received = services
        .imports
        .receive(&dataset, &content_type, "cli", None, Box::pin(body))
        .await?;
    progress.done();
    let mut import = received.import;
    if !received.is_new {
        eprintln!(
            "already received as import {}: nothing stored twice",
            import.id
        );
    }
    if !args.no_process && !import.status.is_finished() {
        import = process(&services, settings, &dataset, &import).await?;
    }
    println!("{}", serde_json::to_string_pretty(&summary(&import))?);
    Ok(match import.status {
        ImportStatus::Failed => ExitCode::from(1),
        _ => ExitCode::SUCCESS,
    })
}

/// Runs workers here until the import has finished.
async fn process(
    services: &Services,
    settings: &Settings,
    dataset: &DatasetName,
    import: &ImportSummary,
) -> anyhow::Result<ImportSummary> {
    let queued = services.imports.depth().await.unwrap_or(0);
    if queued > 1 {
        eprintln!(
            "{} other imports are queued; they are processed here too",
            queued - 1
        );
    }
    eprintln!(
        "processing import {} … (Ctrl-C leaves it queued)",
        import.id
    );
    // Deliveries and callbacks of what this import commits are the server's work.
    let counts = WorkerCounts {
        imports: settings.workers.max(1),
        ..WorkerCounts::default()
    };
    // Workers obey the pauses from their first claim.
    if let Err(e) = services.workers.read().await {
        eprintln!("could not read which kinds of work are paused: {e:#}");
    }
    // Ctrl-C is heard from here on, before anything is said that a user might answer
    // with it (the handler is installed now, not when first polled).
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .inspect_err(|e| eprintln!("Ctrl-C cannot be heard ({e}); it stops the import at once"))
        .ok();
    let workers = Workers::start(services, counts, None);
    let started = Instant::now();
    // An operator's pause holds this process's workers too: say so rather than wait
    // in silence.
    let paused_since = || {
        services
            .workers
            .kinds()
            .into_iter()
            .find(|k| k.kind == WorkKind::Imports)
            .and_then(|k| k.paused_since)
    };
    let shown = Processing::new(import.size);
    let finishing = async {
        loop {
            let mut wait = shown.every();
            if let Some(since) = paused_since() {
                eprintln!(
                    "imports are paused on every instance (since {since}): nothing is processed \
                     until POST /admin/workers/imports/resume; Ctrl-C leaves import {} queued",
                    import.id
                );
                wait = Duration::from_secs(30);
            }
            let now = services.imports.wait(dataset, &import.id, wait);
            let now = now.await?;
            if now.status.is_finished() {
                shown.done();
                return Ok(Some(now));
            }
            match services.imports.progress(&import.id) {
                Some(progress) => shown.show(&progress),
                None if paused_since().is_none() => {
                    shown.waiting(started.elapsed());
                }
                None => {}
            }
        }
    };
    let interrupted = async {
        match &mut sigint {
            Some(sigint) => sigint.recv().await,
            None => std::future::pending().await,
        };
        Ok(None)
    };
    let outcome: anyhow::Result<Option<ImportSummary>> =
        futures_lite::future::or(interrupted, finishing).await;
    // Workers roll back and release what they hold, so a server takes it at once.
    workers.stop().await;
    outcome?.ok_or_else(|| anyhow::anyhow!("interrupted: import {} stays queued", import.id))
}

fn summary(import: &ImportSummary) -> serde_json::Value {
    serde_json::json!({
        "id": import.id.to_string(),
        "dataset": import.import.dataset.to_string(),
        "status": import.status.as_str(),
        "size": import.size,
        "sha256": import.sha256,
        "report": import.report,
    })
}

/// The media type a file's extension suggests.
pub fn guess_media_type(file: &Path) -> &'static str {
    let extension = file
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("csv") => "text/csv",
        Some("xml") => "application/xml",
        Some("json") => "application/json",
        Some("ndjson" | "jsonl") => "application/x-ndjson",
        _ => "application/octet-stream",
    }
}

/// The file in 64 KiB chunks, counted into the progress as they are read.
fn chunks(
    file: tokio::fs::File,
    progress: Progress,
) -> impl Stream<Item = std::io::Result<Vec<u8>>> {
    futures_lite::stream::unfold(Some(file), move |file| {
        let progress = progress.clone();
        async move {
            let mut file = file?;
            let mut buffer = vec![0; 64 * 1024];
            match file.read(&mut buffer).await {
                Ok(0) => None,
                Ok(n) => {
                    buffer.truncate(n);
                    progress.advance(n as u64);
                    Some((Ok(buffer), Some(file)))
                }
                Err(e) => Some((Err(e), None)),
            }
        }
    })
}

/// A progress bar on a terminal; a plain line every 10% otherwise.
#[derive(Clone)]
struct Progress {
    bar: Option<ProgressBar>,
    total: u64,
    sent: Arc<std::sync::atomic::AtomicU64>,
}

impl Progress {
    fn new(total: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            let style = ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            );
            if let Ok(style) = style {
                bar.set_style(style);
            }
            bar
        });
        Self {
            bar,
            total,
            sent: Arc::default(),
        }
    }

    fn advance(&self, n: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        let before = self.sent.fetch_add(n, Relaxed);
        match &self.bar {
            Some(bar) => bar.inc(n),
            None if self.total > 0 => {
                let (was, is) = (before * 10 / self.total, (before + n) * 10 / self.total);
                if is > was {
                    eprintln!("sent {} of {} bytes ({}%)", before + n, self.total, is * 10);
                }
            }
            None => {}
        }
    }

    fn done(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}

/// Processing shown as it goes: a bar of the bytes read with the records seen and
/// their rate on a terminal, a line every 10 s otherwise.
struct Processing {
    bar: Option<ProgressBar>,
}

impl Processing {
    fn new(total: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            let style =
                ProgressStyle::with_template("processing {bar:40} {bytes}/{total_bytes} {msg}");
            if let Ok(style) = style {
                bar.set_style(style);
            }
            bar
        });
        Self { bar }
    }

    /// How long to wait between two looks.
    fn every(&self) -> Duration {
        match self.bar {
            Some(_) => Duration::from_millis(250),
            None => Duration::from_secs(10),
        }
    }

    fn show(&self, progress: &intake_domain::ingest::ImportProgress) {
        let records = format!(
            "{} records, {:.0}/s",
            progress.records_seen, progress.records_per_second
        );
        match &self.bar {
            Some(bar) => {
                bar.set_position(progress.bytes_read);
                bar.set_message(records);
            }
            None => {
                let percent = (progress.bytes_read * 100)
                    .checked_div(progress.bytes_total)
                    .unwrap_or(100);
                eprintln!(
                    "processing: {records}; {} of {} bytes read ({percent}%)",
                    progress.bytes_read, progress.bytes_total
                );
            }
        }
    }

    /// Not being processed yet (another import goes first, or a worker is starting).
    fn waiting(&self, for_: Duration) {
        if self.bar.is_none() {
            eprintln!("waiting to be processed ({} s)", for_.as_secs());
        }
    }

    fn done(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn describe(contents: &intake_domain::ports::BackupContents) -> String {
    let last = contents
        .last_import_at
        .map_or_else(|| "none".to_owned(), |t| t.to_rfc3339());
    format!(
        "{} datasets, {} records, {} imports (the last received {last})",
        contents.datasets, contents.records, contents.imports
    )
}

/// Backs the database up into `backup_dir`, or into `to`.
///
/// # Errors
/// When the database is not SQLite, or the backup cannot be made or does not verify.
pub async fn backup(settings: &Settings, to: Option<&Path>) -> anyhow::Result<()> {
    if settings.database()? == crate::settings::Database::Postgres {
        return backup_postgres(settings, to).await;
    }
    let storage = Storage::open(settings).await?;
    let backups = storage
        .backups
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("this database has no backups"))?;
    let backup = match to {
        Some(file) => backups.make_into(file).await?,
        None => backups.make().await?,
    };
    let place = to.map_or_else(
        || settings.backups().map(|(_, dir, _)| dir.join(&backup.name)),
        |file| Ok(file.to_path_buf()),
    )?;
    println!(
        "backed up and verified: {} ({} bytes): {}",
        place.display(),
        backup.bytes,
        describe(&backup.contents)
    );
    Ok(())
}

/// `pg_dump` of the service's schema into `to`, or `intake-<time>.dump` in
/// `backup_dir` (or here).
async fn backup_postgres(settings: &Settings, to: Option<&Path>) -> anyhow::Result<()> {
    let pg = settings.postgres();
    let store = intake_postgres::PgStore::connect(&pg)?;
    let file = match to {
        Some(file) => file.to_path_buf(),
        None => {
            let dir = std::path::PathBuf::from(if settings.backup_dir.is_empty() {
                "."
            } else {
                settings.backup_dir.as_str()
            });
            std::fs::create_dir_all(&dir)?;
            let at = chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ");
            dir.join(format!("intake-{at}.dump"))
        }
    };
    let backup = store.dump_into(&pg, &file).await?;
    println!(
        "backed up and checked: {} ({} bytes): {}",
        file.display(),
        backup.bytes,
        describe(&backup.contents)
    );
    Ok(())
}

/// Restores the backup `file` into the database.
///
/// # Errors
/// When the database is in use (SQLite), or the backup does not verify.
pub async fn restore(settings: &Settings, file: &Path) -> anyhow::Result<()> {
    if settings.database()? == crate::settings::Database::Postgres {
        let contents = intake_postgres::restore(&settings.postgres(), file).await?;
        println!(
            "restored {} into {}: {}",
            file.display(),
            settings.database_url,
            describe(&contents)
        );
        return Ok(());
    }
    let url = settings.database_url.expose();
    let restored = intake_sqlite::restore(file, url, chrono::Utc::now()).await?;
    println!(
        "restored {} into {}: {}",
        file.display(),
        settings.database_url,
        describe(&restored.contents)
    );
    if let Some(kept) = restored.replaced {
        println!("the database it replaced is kept at {}", kept.display());
    }
    Ok(())
}

/// Lists the jobs of `dataset` (or of every dataset), newest first; running ones with a
/// progress bar. With `watch`, follows them until none is queued or running.
///
/// # Errors
/// When the database cannot be read or the dataset does not exist.
pub async fn jobs(
    settings: &Settings,
    dataset: Option<&str>,
    watch: bool,
    json: bool,
) -> anyhow::Result<()> {
    let storage = Storage::open(settings).await?;
    let services = Services::new(&storage, settings, None)?;
    let names = match dataset {
        Some(d) => vec![DatasetName::parse(d.to_owned()).context("the dataset's name")?],
        None => services
            .datasets
            .list()
            .await?
            .into_iter()
            .map(|d| d.name)
            .collect(),
    };
    let read = || async {
        let mut all = Vec::new();
        for name in &names {
            all.extend(services.jobs.list(name).await?);
        }
        anyhow::Ok(all)
    };
    let jobs = read().await?;
    if json {
        let rows: Vec<_> = jobs.iter().map(job_json).collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if jobs.is_empty() {
        println!("no jobs");
        return Ok(());
    }
    if !watch {
        for job in &jobs {
            println!("{}", job_line(job));
        }
        return Ok(());
    }
    let bars = indicatif::MultiProgress::new();
    let style = ProgressStyle::with_template("{prefix} {bar:30} {pos}/{len} {per_sec} {msg}")?;
    let mut shown: Vec<(String, ProgressBar)> = Vec::new();
    loop {
        let jobs = read().await?;
        for job in &jobs {
            let bar = match shown.iter().find(|(id, _)| *id == job.id) {
                Some((_, bar)) => bar.clone(),
                None => {
                    let bar = bars.add(ProgressBar::new(0).with_style(style.clone()));
                    bar.set_prefix(format!("{} {} {}", job.dataset, job.kind, job.id));
                    shown.push((job.id.clone(), bar.clone()));
                    bar
                }
            };
            bar.set_length(job.total.unwrap_or(job.done).max(job.done));
            bar.set_position(job.done);
            bar.set_message(job.status.as_str());
            if !matches!(job.status, JobStatus::Queued | JobStatus::Running) {
                bar.finish();
            }
        }
        let live = jobs
            .iter()
            .any(|j| matches!(j.status, JobStatus::Queued | JobStatus::Running));
        if !live {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// One job as a line of text: running ones with a bar.
fn job_line(job: &JobView) -> String {
    let progress = match job.total {
        Some(total) if total > 0 => {
            let filled = usize::try_from(job.done.min(total) * 30 / total).unwrap_or(30);
            let bar = if job.status == JobStatus::Running {
                format!("[{}{}] ", "#".repeat(filled), "-".repeat(30 - filled))
            } else {
                String::new()
            };
            format!(
                "{bar}{}/{total} ({}%)",
                job.done,
                job.done.min(total) * 100 / total
            )
        }
        _ => format!("{} done", job.done),
    };
    let error = job
        .error
        .as_deref()
        .map(|e| format!("  {e}"))
        .unwrap_or_default();
    format!(
        "{}  {}  {:<9}  {}  {progress}{error}",
        job.dataset,
        job.id,
        job.status.as_str(),
        job.kind
    )
}

fn job_json(job: &JobView) -> serde_json::Value {
    serde_json::json!({
        "id": job.id,
        "dataset": job.dataset.as_str(),
        "kind": job.kind,
        "params": job.params,
        "status": job.status.as_str(),
        "done": job.done,
        "total": job.total,
        "error": job.error,
        "running_on": job.held_by,
        "created_at": job.created_at,
        "finished_at": job.finished_at,
        "checkpoints": job.checkpoints.iter().map(|c| serde_json::json!({"n": c.n, "done": c.done, "at": c.at})).collect::<Vec<_>>(),
    })
}
