//! The `intake` binary: parse the command line, then hand over to the library.

use std::process::ExitCode;

use clap::Parser as _;

#[actix_web::main]
async fn main() -> ExitCode {
    intake_app::run(intake_app::cli::Cli::parse()).await
}
