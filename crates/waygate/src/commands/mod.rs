//! One module per subcommand.

mod config_cmd;
mod plugins;
mod serve;

use std::path::PathBuf;

use crate::cli::{Cli, Command, Global};

pub fn dispatch(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    match cli.command {
        Command::Serve(args) => serve::run(&cli.global, args),
        Command::Plugins { command } => plugins::run(&cli.global, command),
        Command::Config { command } => config_cmd::run(&cli.global, command),
    }
}

/// The data directory: flag/env, else `./waygate-data`.
pub(crate) fn data_dir(g: &Global) -> PathBuf {
    g.data_dir.clone().unwrap_or_else(|| PathBuf::from("waygate-data"))
}
