//! The `waygate` binary: parse the command line and hand over to a subcommand.

use std::process::ExitCode;

// The request path allocates many small, short-lived JSON values; mimalloc's thread-local
// free lists serve them markedly faster than glibc malloc (measured in BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    waygate::run()
}
