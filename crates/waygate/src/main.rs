//! The `waygate` binary: parse the command line and hand over to a subcommand.

use std::process::ExitCode;

fn main() -> ExitCode {
    waygate::run()
}
