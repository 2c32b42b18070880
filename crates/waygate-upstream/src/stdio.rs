//! A spawned stdio server: newline-delimited JSON-RPC on its stdin/stdout, stderr kept
//! for the logs and for the error shown when it dies.
//!
//! The child gets a cleared environment plus a few harmless basics and the configured
//! variables — never the gateway's own (which may hold `WAYGATE_SECRET_KEY` or database
//! passwords).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::client::Inbound;
use crate::error::UpstreamError;
use crate::link::Related;

/// Longest line accepted from a server (a bigger one ends the connection).
const MAX_LINE: usize = 64 << 20;
/// Variables passed through from the gateway's environment.
const BASE_ENV: [&str; 7] = ["PATH", "HOME", "USER", "LANG", "LC_ALL", "TMPDIR", "TZ"];

#[derive(Debug, Clone)]
pub struct StdioTarget {
    pub command: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: Option<PathBuf>,
}

pub(crate) struct StdioWire {
    out: mpsc::UnboundedSender<Vec<u8>>,
    /// Asks the reaper to stop the process.
    kill: CancellationToken,
    /// Cancelled once the server's output ended and its exit is known.
    gone: CancellationToken,
    why: Arc<Mutex<String>>,
}

impl StdioWire {
    pub(crate) fn spawn(t: StdioTarget, inbound: Arc<Inbound>) -> Result<StdioWire, UpstreamError> {
        let mut cmd = Command::new(&t.command);
        cmd.args(&t.args)
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for k in BASE_ENV {
            if let Some(v) = std::env::var_os(k) {
                cmd.env(k, v);
            }
        }
        cmd.envs(t.env.iter().map(|(k, v)| (k, v)));
        if let Some(d) = &t.cwd {
            if !d.is_dir() {
                return Err(UpstreamError::Connect(format!(
                    "cwd {} is not a directory",
                    d.display()
                )));
            }
            cmd.current_dir(d);
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| UpstreamError::Connect(format!("cannot start {:?}: {e}", t.command)))?;
        let (Some(mut stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(UpstreamError::Connect("child process without pipes".into()));
        };
        let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let gone = CancellationToken::new();
        let why = Arc::new(Mutex::new(String::new()));
        let tail = Arc::new(Mutex::new(VecDeque::<String>::new()));
        let kill = CancellationToken::new();
        // Writer: one line per message, in order; closing stdin on shutdown asks the
        // server to exit.
        let k = kill.clone();
        tokio::spawn(async move {
            loop {
                let mut line = tokio::select! {
                    m = rx.recv() => match m { Some(l) => l, None => break },
                    _ = k.cancelled() => break,
                };
                line.push(b'\n');
                // Whatever else is queued goes out in the same write (one syscall under load).
                while let Ok(more) = rx.try_recv() {
                    line.extend_from_slice(&more);
                    line.push(b'\n');
                    if line.len() > 1 << 20 {
                        break;
                    }
                }
                if stdin.write_all(&line).await.is_err() || stdin.flush().await.is_err() {
                    break;
                }
            }
        });
        tokio::spawn(log_stderr(inbound.name.clone(), stderr, tail.clone()));
        // Reaper: owns the process, reports how it ended, stops it when asked.
        let (exit_tx, mut exit_rx) = tokio::sync::watch::channel(None::<String>);
        let k = kill.clone();
        tokio::spawn(async move {
            let status = tokio::select! {
                s = child.wait() => s,
                _ = k.cancelled() => match tokio::time::timeout(Duration::from_secs(2), child.wait()).await {
                    Ok(s) => s,
                    Err(_) => {
                        let _ = child.start_kill();
                        child.wait().await
                    }
                },
            };
            let _ = exit_tx.send(Some(match status {
                Ok(s) => format!("exited with {s}"),
                Err(e) => format!("exit status unknown: {e}"),
            }));
        });
        let reply = tx.clone();
        let (g, w) = (gone.clone(), why.clone());
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout);
            let end = loop {
                match read_line(&mut reader).await {
                    Ok(Some(line)) if line.iter().all(u8::is_ascii_whitespace) => continue,
                    Ok(Some(line)) => match std::str::from_utf8(&line) {
                        Ok(text) => {
                            if let Some(answer) = inbound.handle_text(text, Related::Infer) {
                                let _ = reply.send(answer.to_string().into_bytes());
                            }
                        }
                        Err(e) => {
                            tracing::warn!(upstream = %inbound.name, error = %e, "upstream wrote a line that is not UTF-8 JSON; ignored")
                        }
                    },
                    Ok(None) => break "the server closed its output".to_string(),
                    Err(e) => break e,
                }
            };
            // The exit status (a server may close its output and linger: then none).
            let exited = tokio::time::timeout(Duration::from_secs(1), exit_rx.wait_for(Option::is_some))
                .await
                .ok()
                .and_then(|r| r.ok().and_then(|v| v.clone()));
            let end = exited.map_or(end.clone(), |x| format!("{x} ({end})"));
            let last: Vec<String> = tail.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect();
            let reason = if last.is_empty() {
                end
            } else {
                format!("{end}; last stderr: {}", last.join(" | "))
            };
            *w.lock().unwrap_or_else(|e| e.into_inner()) = reason.clone();
            inbound.fail_all(UpstreamError::Closed(reason));
            g.cancel();
        });
        Ok(StdioWire {
            out: tx,
            kill,
            gone,
            why,
        })
    }

    pub(crate) fn send(&self, msg: &Value) -> Result<(), UpstreamError> {
        self.send_bytes(crate::envelope::to_bytes(msg))
    }

    /// One message already serialized (a line without its newline).
    pub(crate) fn send_bytes(&self, line: Vec<u8>) -> Result<(), UpstreamError> {
        if self.gone.is_cancelled() {
            return Err(UpstreamError::Closed(self.reason()));
        }
        self.out
            .send(line)
            .map_err(|_| UpstreamError::Closed("the server's input is closed".into()))
    }

    fn reason(&self) -> String {
        self.why.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Resolves with the reason once the server's output ended.
    pub(crate) async fn closed(&self) -> String {
        self.gone.cancelled().await;
        self.reason()
    }

    /// Give the server up to 2 s to exit after its input closes, then kill it.
    pub(crate) async fn shutdown(&self) {
        self.kill.cancel();
    }
}

impl Drop for StdioWire {
    /// A wire given up without a shutdown (a handshake that failed or timed out) must not
    /// leave its server running: a silent one would otherwise live on, pipes and all, one
    /// more per connection attempt.
    fn drop(&mut self) {
        self.kill.cancel();
    }
}

/// One line without its newline; `None` at end of output; an error past [`MAX_LINE`].
async fn read_line<R: AsyncBufRead + Unpin>(r: &mut R) -> Result<Option<Vec<u8>>, String> {
    let mut line = Vec::new();
    loop {
        let buf = r
            .fill_buf()
            .await
            .map_err(|e| format!("reading the server's output: {e}"))?;
        if buf.is_empty() {
            return Ok((!line.is_empty()).then_some(line));
        }
        match buf.iter().position(|b| *b == b'\n') {
            Some(i) => {
                line.extend_from_slice(&buf[..i]);
                r.consume(i + 1);
                return Ok(Some(line));
            }
            None => {
                let n = buf.len();
                line.extend_from_slice(buf);
                r.consume(n);
            }
        }
        if line.len() > MAX_LINE {
            return Err(format!("the server wrote a line over {} MiB", MAX_LINE >> 20));
        }
    }
}

/// Server stderr goes to the gateway's log; the last lines are kept for error messages.
/// At most this many stderr lines per second reach the log; the rest are counted, so a
/// chatty or hostile server cannot flood the gateway's log.
const STDERR_LINES_PER_SEC: u32 = 50;

async fn log_stderr(name: Arc<str>, stderr: tokio::process::ChildStderr, tail: Arc<Mutex<VecDeque<String>>>) {
    let mut lines = BufReader::new(stderr);
    let (mut window, mut logged, mut skipped) = (tokio::time::Instant::now(), 0u32, 0u64);
    while let Ok(Some(raw)) = read_line(&mut lines).await {
        if window.elapsed() >= Duration::from_secs(1) {
            if skipped > 0 {
                tracing::warn!(upstream = %name, skipped, "upstream stderr lines not logged (over {STDERR_LINES_PER_SEC}/s)");
            }
            (window, logged, skipped) = (tokio::time::Instant::now(), 0, 0);
        }
        let mut line = String::from_utf8_lossy(&raw).into_owned();
        if line.len() > 500 {
            let mut cut = 500;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
        }
        if logged < STDERR_LINES_PER_SEC {
            logged += 1;
            tracing::info!(upstream = %name, stderr = %line, "upstream stderr");
        } else {
            skipped += 1;
        }
        let mut t = tail.lock().unwrap_or_else(|e| e.into_inner());
        if t.len() == 3 {
            t.pop_front();
        }
        t.push_back(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_split_and_capped() {
        let data: &[u8] = b"{\"a\":1}\n\n{\"b\":2}";
        let mut r = BufReader::new(data);
        assert_eq!(read_line(&mut r).await.unwrap().unwrap(), b"{\"a\":1}");
        assert_eq!(read_line(&mut r).await.unwrap().unwrap(), b"");
        assert_eq!(read_line(&mut r).await.unwrap().unwrap(), b"{\"b\":2}");
        assert_eq!(read_line(&mut r).await.unwrap(), None);
    }
}
