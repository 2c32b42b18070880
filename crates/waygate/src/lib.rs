//! Command-line front end: `waygate serve`, `waygate plugins`, `waygate config`.

pub mod admin;
pub mod audit_anchor;
pub mod audit_queue;
pub mod cli;
pub mod cli_admin;
pub mod commands;
pub mod config;
pub mod fleet;
pub mod import;
pub mod logging;
pub mod ops;
pub mod otel;
pub mod plugins;
pub mod sealing;
pub mod security;
pub mod systemd;
pub mod upstreams;

use std::process::ExitCode;

use clap::Parser;

/// Parse arguments and run the chosen command; errors print one clear line and exit 1.
pub fn run() -> ExitCode {
    waygate_core::registry::tune_allocator();
    let cli = cli::Cli::parse();
    match commands::dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("waygate: error: {}", waygate_security::scrub(&e.to_string()));
            ExitCode::from(1)
        }
    }
}
