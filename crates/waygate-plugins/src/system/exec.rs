//! `execute_command`: allowlisted programs, run directly (never through a shell, so
//! `;`, `|`, `$(…)` in arguments are plain text), with a clean environment, no stdin, a
//! time limit that kills the process, and capped output.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

use super::SystemSpec;

pub(super) struct Commands {
    /// Allowed name → absolute program path, resolved once at start.
    allowed: BTreeMap<String, PathBuf>,
    timeout: Duration,
    max_output: usize,
}

/// An absolute path, or a name found on PATH now (so a later PATH change cannot swap it).
pub(super) fn resolve(cmd: &str) -> Result<PathBuf, String> {
    let p = Path::new(cmd);
    if p.is_absolute() {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(format!("{cmd} does not exist"))
        };
    }
    if cmd.contains('/') || cmd.is_empty() {
        return Err(format!("{cmd:?}: give a program name or an absolute path"));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(cmd))
        .find(|c| c.is_file())
        .ok_or_else(|| format!("{cmd} not found on PATH"))
}

impl Commands {
    pub fn new(spec: &SystemSpec) -> Result<Self, String> {
        let mut allowed = BTreeMap::new();
        for c in &spec.commands {
            allowed.insert(c.clone(), resolve(c)?);
        }
        Ok(Commands {
            allowed,
            timeout: Duration::from_millis(spec.command_timeout_ms),
            max_output: spec.max_output_bytes,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.allowed.is_empty()
    }

    pub async fn run(&self, command: &str, args: &[String], cwd: Option<PathBuf>) -> Result<String, String> {
        let program = self
            .allowed
            .get(command)
            .ok_or_else(|| format!("{command:?} is not an allowed command (allowed: {})", self.names()))?;
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("LANG", "C.UTF-8")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(d) = cwd {
            cmd.current_dir(d);
        }
        let mut child = cmd.spawn().map_err(|e| format!("cannot start {command}: {e}"))?;
        let (out, err) = (child.stdout.take(), child.stderr.take());
        let cap = self.max_output;
        let work = async {
            let (o, e) = tokio::join!(capped(out, cap), capped(err, cap));
            let status = child.wait().await;
            (o, e, status)
        };
        match tokio::time::timeout(self.timeout, work).await {
            Ok((o, e, status)) => {
                let code = status.map(|s| s.code().map_or("killed by a signal".into(), |c| c.to_string()));
                let mut text = format!("exit status: {}\n", code.unwrap_or_else(|e| e.to_string()));
                text.push_str(&format!("--- stdout ---\n{o}"));
                if !e.is_empty() {
                    text.push_str(&format!("\n--- stderr ---\n{e}"));
                }
                Ok(text)
            }
            // Dropping `work` drops the child, and kill_on_drop kills it.
            Err(_) => Err(format!(
                "{command} did not finish within {} ms and was killed",
                self.timeout.as_millis()
            )),
        }
    }

    fn names(&self) -> String {
        self.allowed.keys().cloned().collect::<Vec<_>>().join(", ")
    }
}

/// Read at most `cap` bytes, then keep draining (so the child does not block on a full
/// pipe) without storing; the text notes how much was dropped.
async fn capped(stream: Option<impl AsyncRead + Unpin>, cap: usize) -> String {
    let Some(mut s) = stream else { return String::new() };
    let mut kept = Vec::new();
    let mut total = 0usize;
    let mut buf = [0u8; 8192];
    while let Ok(n) = s.read(&mut buf).await {
        if n == 0 {
            break;
        }
        total += n;
        let room = cap.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
    }
    let mut text = String::from_utf8_lossy(&kept).into_owned();
    if total > kept.len() {
        text.push_str(&format!("\n…[truncated: {total} bytes, max_output_bytes {cap}]"));
    }
    text
}
