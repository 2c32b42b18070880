//! The linker script that keeps serving's code together (`crates/waygate/link/hot.ld`)
//! names functions by their symbols. A dependency or feature change renames most generic
//! instances (the symbol hash covers the crate graph), and the script then silently
//! matches nothing: nothing breaks, but resident memory after a burst grows by ~4 MB and
//! the production RSS target is lost. This test notices that and says what to run.

use std::collections::HashSet;
use std::process::Command;

/// Share of the serving functions in `hot.ld` that the binary must still define.
const MIN_COVERAGE: f64 = 0.85;

#[test]
fn the_hot_code_layout_names_the_binarys_functions() {
    // The layout is applied only where build.rs applies it.
    if !cfg!(all(target_os = "linux", target_env = "gnu", target_arch = "x86_64"))
        || option_env!("WAYGATE_LINK_LAYOUT") == Some("0")
    {
        return;
    }
    let nm = match Command::new("nm")
        .arg("--defined-only")
        .arg(crate::common::bin())
        .output()
    {
        Ok(out) if out.status.success() => out,
        Ok(out) => panic!("nm failed: {}", String::from_utf8_lossy(&out.stderr)),
        Err(e) => {
            eprintln!("skipped: nm (binutils) is not installed: {e}");
            return;
        }
    };
    // ThinLTO suffixes shared local functions with `.llvm.<n>`; the script matches by prefix.
    let defined: HashSet<&str> = std::str::from_utf8(&nm.stdout)
        .expect("nm prints UTF-8")
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .map(|s| s.split(".llvm.").next().unwrap_or(s))
        .collect();
    let script = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/link/hot.ld")).expect("hot.ld");
    // The first group is serving's functions (then the gateway's, then start-up's).
    let serving = script.split("*(").nth(1).expect("a first group in hot.ld");
    let names: Vec<&str> = serving
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter_map(|p| p.strip_prefix(".text."))
        .map(|p| p.trim_end_matches('*'))
        .collect();
    assert!(
        names.len() > 500,
        "hot.ld's serving group has only {} names",
        names.len()
    );
    let found = names.iter().filter(|n| defined.contains(*n)).count();
    let coverage = found as f64 / names.len() as f64;
    assert!(
        coverage >= MIN_COVERAGE,
        "crates/waygate/link/hot.ld names {found} of its {} serving functions the binary \
         defines ({:.0} %, at least {:.0} % expected): regenerate it with \
         `bench/hot_symbols.sh` (a dependency, feature or toolchain change renames generic \
         functions; without the layout the server keeps ~4 MB more resident)",
        names.len(),
        coverage * 100.0,
        MIN_COVERAGE * 100.0
    );
}
