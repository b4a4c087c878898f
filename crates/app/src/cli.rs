//! The command line of the `intake` binary.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Intake: data contracts, a raw vault, latest state with history, and analytics over
/// a versioned REST API.
///
/// Configuration comes from defaults (the embedded stack: SQLite under ./data, the
/// API on 127.0.0.1:8080), then the TOML file given by --config or INTAKE_CONFIG,
/// then INTAKE_* environment variables (INTAKE_LISTEN, INTAKE_DATABASE_URL,
/// INTAKE_LOG, …; the README lists every key).
///
/// Bearer tokens (INTAKE_AUTH_TOKENS=name:sha256hex:scope,scope;…, scopes read, write,
/// admin) guard every route but health, readiness and the API documents; with none
/// configured, serve binds a loopback address only.
#[derive(Debug, Parser)]
#[command(name = "intake", version, about, long_about)]
pub struct Cli {
    /// A TOML configuration file.
    #[arg(long, short, global = true, env = "INTAKE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the REST API and run the import workers (the default). Stops gracefully
    /// on SIGINT or SIGTERM; a second SIGINT exits at once.
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Send a local file to a dataset through the import service, then process it
    /// here and print its report as JSON. Exit status: 0 completed, 1 failed
    /// (rejected), 2 not imported (bad input, unknown dataset, …).
    Import {
        /// The document to import.
        file: PathBuf,
        /// The dataset it belongs to.
        #[arg(long, short)]
        dataset: String,
        /// Its media type (default: from the file's extension: .csv, .xml, .json,
        /// .ndjson or .jsonl; anything else is application/octet-stream, read in the
        /// contract's format).
        #[arg(long)]
        content_type: Option<String>,
        /// Only store and queue it, for a running server's workers to process.
        #[arg(long)]
        no_process: bool,
    },
    /// Replay a JSON array of updates against a running server, as the account-update
    /// indexer challenge does: one at a time in file order, each after a random pause
    /// (uniform, seeded); then wait until every callback they set has fired or been
    /// cancelled, and print the highest record per group (`…/top`) with a summary
    /// (indexed, ignored as old, invalid, callbacks fired, late and cancelled). Exit
    /// status: 0 done, 2 refused or unreachable.
    Replay {
        /// The JSON array of updates (examples/data/account-updates.json).
        file: PathBuf,
        /// The dataset to send them to (it must exist).
        #[arg(long, short)]
        dataset: String,
        /// The running server.
        #[arg(long, env = "INTAKE_SERVER", default_value = "http://127.0.0.1:8080")]
        server: String,
        /// A bearer token for it (`read` and `write` scopes).
        #[arg(long, env = "INTAKE_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// The pause before each update: a range of milliseconds.
        #[arg(long, default_value = "0..1000ms", value_parser = crate::replay::parse_delay)]
        delay: std::ops::RangeInclusive<u64>,
        /// The seed of the pauses (the same seed, the same run).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// The measure to rank by.
        #[arg(long, default_value = "tokens")]
        measure: String,
        /// The dimension to group by.
        #[arg(long, default_value = "subtype")]
        group_by: String,
    },
    /// Back the database up now, online (a running server goes on). SQLite: into
    /// `backup_dir` (keeping the newest `backup_keep`) or into FILE, checked with
    /// `PRAGMA integrity_check` before it counts. PostgreSQL: `pg_dump --format=custom`
    /// of the service's schema into FILE (or `intake-<time>.dump` in `backup_dir`, else
    /// here), checked with `pg_restore --list`; needs PostgreSQL's client tools. Prints
    /// what it holds.
    Backup {
        /// A new file to write the backup to, instead of `backup_dir`.
        #[arg(long, value_name = "FILE")]
        to: Option<PathBuf>,
    },
    /// Restore a backup into the database `database_url` names, checking it first, and
    /// print what it restored. SQLite: refuses while a server or an import uses it, and
    /// keeps the file it replaces (renamed `….replaced-<time>`). PostgreSQL: `pg_restore
    /// --clean --single-transaction` over the service's schema, refused while a server
    /// or an import is connected to it.
    Restore {
        /// The backup to restore.
        file: PathBuf,
    },
    /// List jobs (of one dataset, or of all), newest first, with progress bars for
    /// running ones; read from the database, so it works with or without a server.
    /// Start and steer jobs through the API (`/v1/datasets/{ds}/jobs`).
    Jobs {
        /// Only this dataset's jobs.
        #[arg(long, short)]
        dataset: Option<String>,
        /// Follow the jobs until none is queued or running.
        #[arg(long)]
        watch: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Check the configuration (a listen address beyond loopback needs auth tokens)
    /// and that the database (and Redis, when set) answers; exit non-zero if not.
    /// Read-only: it says where the database is and what migrations it lacks, and
    /// creates or migrates nothing.
    Check,
    /// List, create, show or delete datasets on a running server.
    Datasets {
        /// What to do.
        #[command(subcommand)]
        action: DatasetsAction,
        #[command(flatten)]
        server: Server,
    },
    /// A measure's statistics per group of a dimension, from a running server.
    Aggregate {
        /// The dataset.
        dataset: String,
        /// The measure.
        #[arg(long, short)]
        measure: String,
        /// The dimension to group by (none: one group of everything).
        #[arg(long, short)]
        group_by: Option<String>,
        /// Only records whose dimension has this value (`NAME=VALUE`, repeatable).
        #[arg(long = "filter", short, value_name = "NAME=VALUE", value_parser = crate::remote::parse_filter)]
        filters: Vec<(String, String)>,
        #[command(flatten)]
        server: Server,
    },
    /// Records of a dataset, filtered by fields, from a running server.
    Records {
        /// The dataset.
        dataset: String,
        /// Only records whose field has this value (`NAME=VALUE`, repeatable; a name
        /// given twice keeps either value).
        #[arg(value_name = "NAME=VALUE", value_parser = crate::remote::parse_filter)]
        filters: Vec<(String, String)>,
        /// Records at most.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[command(flatten)]
        server: Server,
    },
}

/// What `intake datasets` does.
#[derive(Debug, Subcommand)]
pub enum DatasetsAction {
    /// Every dataset: name, contract version, records, revision.
    List,
    /// Create a dataset with its first contract.
    Create {
        /// Its name.
        name: String,
        /// The contract (a JSON file, `examples/contracts/` has some).
        #[arg(long, value_name = "FILE")]
        contract: PathBuf,
    },
    /// One dataset: its counts, contract versions and recent imports.
    Show {
        /// Its name.
        name: String,
    },
    /// Delete a dataset (an `admin` token): its records, history, events,
    /// subscriptions, sources and jobs. Its documents stay in the vault, and its name
    /// taken, unless `--purge`.
    Delete {
        /// Its name.
        name: String,
        /// Also remove its documents and free the name.
        #[arg(long)]
        purge: bool,
    },
}

/// Where the running server is, and how to answer (also after a subcommand:
/// `intake datasets list --json`).
#[derive(Debug, Clone, clap::Args)]
pub struct Server {
    /// The running server.
    #[arg(
        long,
        global = true,
        env = "INTAKE_SERVER",
        default_value = "http://127.0.0.1:8080"
    )]
    pub server: String,
    /// A bearer token for it (`read` to read, `write` to create a dataset, `admin` to
    /// delete one).
    #[arg(long, global = true, env = "INTAKE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print the server's JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}
