//! Records the git commit the binary is built from, for `waygate --version` (a build from a
//! source tarball says `unknown`, or what `WAYGATE_GIT_COMMIT` says at build time).

use std::path::Path;
use std::process::Command;

fn main() {
    link_layout();
    println!("cargo:rerun-if-env-changed=WAYGATE_GIT_COMMIT");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    // In a `git worktree` checkout `.git` is a file naming the worktree's own git dir
    // (its HEAD), whose `commondir` holds the shared refs; watch both, or a commit made
    // there would leave `--version` naming the previous one.
    let dot_git = root.join(".git");
    let git = std::fs::read_to_string(&dot_git)
        .ok()
        .and_then(|s| s.strip_prefix("gitdir:").map(|d| root.join(d.trim())))
        .unwrap_or(dot_git);
    let common = std::fs::read_to_string(git.join("commondir"))
        .map(|c| git.join(c.trim()))
        .unwrap_or_else(|_| git.clone());
    for f in [git.join("HEAD"), common.join("packed-refs"), common.join("refs/heads")] {
        if f.exists() {
            println!("cargo:rerun-if-changed={}", f.display());
        }
    }
    let commit = std::env::var("WAYGATE_GIT_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| {
            let out = Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .current_dir(&root)
                .output()
                .ok()?;
            let c = String::from_utf8(out.stdout).ok()?.trim().to_string();
            (out.status.success() && !c.is_empty()).then_some(c)
        });
    println!(
        "cargo:rustc-env=WAYGATE_GIT_COMMIT={}",
        commit.unwrap_or_else(|| "unknown".into())
    );
}

/// Linker arguments that shrink the resident memory of the `waygate` binary (x86_64 Linux
/// with glibc, where rustc links with its bundled LLD). `WAYGATE_LINK_LAYOUT=0` turns them
/// off, e.g. for a linker that does not take LLD's `INSERT` scripts.
///
/// - The functions the serving path runs (`link/hot.ld`, from `bench/hot_symbols.sh`) are
///   gathered in a `.text.hot` section in front of `.text`: the kernel maps 64 KiB around
///   every code page a process touches, so ~5 MB of hot code scattered over 37 MB kept
///   ~18 MB resident. Names the binary no longer defines match nothing.
/// - Relative relocations packed as RELR: the 1.6 MB `.rela.dyn` the loader reads at
///   every start becomes a few KB. Only when the C library knows RELR (glibc ≥ 2.36); an
///   older loader would ignore the table and run with unrelocated pointers.
fn link_layout() {
    println!("cargo:rerun-if-env-changed=WAYGATE_LINK_LAYOUT");
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    if var("WAYGATE_LINK_LAYOUT") == "0"
        || var("CARGO_CFG_TARGET_OS") != "linux"
        || var("CARGO_CFG_TARGET_ENV") != "gnu"
        || var("CARGO_CFG_TARGET_ARCH") != "x86_64"
    {
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("link/hot.ld");
    println!("cargo:rerun-if-changed={}", script.display());
    if script.exists() {
        println!("cargo:rustc-link-arg-bins=-Wl,-T,{}", script.display());
    }
    let relr = [
        "/lib/x86_64-linux-gnu/libc.so.6",
        "/usr/lib/x86_64-linux-gnu/libc.so.6",
        "/lib64/libc.so.6",
        "/usr/lib64/libc.so.6",
    ]
    .iter()
    .find_map(|p| std::fs::read(p).ok())
    .is_some_and(|libc| libc.windows(17).any(|w| w == b"GLIBC_ABI_DT_RELR"));
    if relr {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
