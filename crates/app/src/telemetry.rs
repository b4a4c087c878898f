//! The one tracing subscriber of the process: a filter from `log` (`INTAKE_LOG`), JSON
//! lines with the span fields (so every line of a request carries its `request_id`)
//! or pretty output on a terminal.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::settings::{LogFormat, Settings};

/// Installs the subscriber; a second call (tests) leaves the first in place.
///
/// # Errors
/// When the filter does not parse.
pub fn init(settings: &Settings) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(&settings.log)
        .map_err(|e| anyhow::anyhow!("log: {e} (got {:?})", settings.log))?;
    let json = match settings.log_format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_span_events(FmtSpan::NONE);
    let installed = if json {
        builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .try_init()
    } else {
        builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init()
    };
    // Already installed (several applications in one test process): keep it.
    let _ = installed;
    Ok(())
}
