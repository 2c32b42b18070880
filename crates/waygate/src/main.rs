//! The `waygate` binary: parse the command line and hand over to a subcommand.
//!
//! The system allocator is kept on purpose: mimalloc measured ~8 % more echo throughput
//! but doubled resident memory (per-thread heaps; see BENCHMARKS.md).

use std::process::ExitCode;

fn main() -> ExitCode {
    waygate::run()
}
