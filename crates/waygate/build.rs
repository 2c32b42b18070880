//! Records the git commit the binary is built from, for `waygate --version` (a build from a
//! source tarball says `unknown`, or what `WAYGATE_GIT_COMMIT` says at build time).

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=WAYGATE_GIT_COMMIT");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let git = root.join(".git");
    for f in ["HEAD", "packed-refs", "refs/heads"] {
        if git.join(f).exists() {
            println!("cargo:rerun-if-changed={}", git.join(f).display());
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
