//! `intake-app`: the `intake` binary's library (DESIGN §3, §14). The only crate that
//! knows every adapter: it reads the configuration, installs telemetry, builds the
//! adapters the URLs name, injects them into the domain's services, runs the import
//! workers and the HTTP server, and carries the command line. No business rule lives
//! here.

pub mod cli;
pub mod commands;
pub mod remote;
pub mod replay;
pub mod server;
pub mod settings;
pub mod telemetry;
pub mod wiring;

use std::process::ExitCode;

use cli::{Cli, Command};
use settings::Settings;

/// Runs a parsed command line to its exit status.
pub async fn run(cli: Cli) -> ExitCode {
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("intake: configuration: {e:#}");
            return ExitCode::from(2);
        }
    };
    let command = cli.command.unwrap_or(Command::Serve);
    // A one-shot command prints its own result: only warnings are worth logging, unless
    // the operator asked for another level.
    let quiet = Settings {
        log: "warn".into(),
        ..settings.clone()
    };
    let is_default_level = settings.log == Settings::default().log;
    let logged = match command {
        Command::Serve => &settings,
        _ if is_default_level => &quiet,
        _ => &settings,
    };
    if let Err(e) = telemetry::init(logged) {
        eprintln!("intake: {e:#}");
        return ExitCode::from(2);
    }
    let names = std::env::vars_os().filter_map(|(name, _)| name.into_string().ok());
    for (name, closest) in settings::unknown_variables(names) {
        match closest {
            Some(closest) => {
                tracing::warn!(variable = %name, "{name} is not a setting and is ignored: did you mean {closest}?");
            }
            None => tracing::warn!(variable = %name, "{name} is not a setting and is ignored"),
        }
    }
    let outcome = match command {
        Command::Serve => serve(&settings).await.map(|()| ExitCode::SUCCESS),
        Command::Migrate => commands::migrate(&settings)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Check => Ok(commands::check(&settings).await),
        Command::Backup { to } => commands::backup(&settings, to.as_deref())
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Jobs {
            dataset,
            watch,
            json,
        } => commands::jobs(&settings, dataset.as_deref(), watch, json)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Datasets { action, server } => remote::datasets(&server, action).await,
        Command::Aggregate {
            dataset,
            measure,
            group_by,
            filters,
            server,
        } => {
            let question = remote::Question {
                dataset: &dataset,
                measure: &measure,
                group_by: group_by.as_deref(),
                filters: &filters,
            };
            remote::aggregate(&server, &question).await
        }
        Command::Records {
            dataset,
            filters,
            limit,
            server,
        } => remote::records(&server, &dataset, &filters, limit).await,
        Command::Restore { file } => commands::restore(&settings, &file)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Import {
            file,
            dataset,
            content_type,
            no_process,
        } => {
            let args = commands::ImportArgs {
                file: &file,
                dataset: &dataset,
                content_type,
                no_process,
            };
            commands::import(&settings, args).await
        }
        Command::Replay {
            file,
            dataset,
            server,
            token,
            delay,
            seed,
            measure,
            group_by,
        } => {
            let args = replay::ReplayArgs {
                server,
                token,
                dataset,
                delay_ms: delay,
                seed,
                measure,
                group_by,
                progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
            };
            replay::replay(&file, &args)
                .await
                .map(|_| ExitCode::SUCCESS)
        }
    };
    outcome.unwrap_or_else(|e| {
        tracing::error!(error = %format!("{e:#}"), "intake failed");
        eprintln!("intake: {e:#}");
        ExitCode::from(2)
    })
}

async fn serve(settings: &Settings) -> anyhow::Result<()> {
    let app = server::Application::build(settings).await?;
    actix_web::rt::spawn(server::stop_on_signals(app.handle()));
    app.run_until_stopped().await
}
