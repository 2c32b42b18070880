//! Records the git commit the binary is built from, for `waygate --version` (a build from a
//! source tarball says `unknown`, or what `WAYGATE_GIT_COMMIT` says at build time).

use std::path::Path;
use std::process::Command;

fn main() {
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
