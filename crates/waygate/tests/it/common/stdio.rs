//! A `waygate serve --stdio` child for the tests, spoken to a line at a time.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use serde_json::{json, Value};

use super::{bin, TempDir};

/// A `waygate serve --stdio` child with line-oriented helpers.
pub struct Stdio_ {
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    pub stdout: BufReader<ChildStdout>,
    _dir: TempDir,
}

impl Stdio_ {
    pub fn start(extra: &[&str]) -> Stdio_ {
        let dir = TempDir::new("stdio");
        let mut child = Command::new(bin())
            .args(["serve", "--stdio", "--data-dir"])
            .arg(&dir.0)
            .args(extra)
            .env("WAYGATE_LOG", "info")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        Stdio_ {
            child,
            stdin,
            stdout,
            _dir: dir,
        }
    }

    pub fn send(&mut self, v: &Value) {
        self.send_raw(&v.to_string());
    }

    pub fn send_raw(&mut self, line: &str) {
        let w = self.stdin.as_mut().expect("stdin open");
        writeln!(w, "{line}").expect("write");
        w.flush().expect("flush");
    }

    /// Next stdout line, which must be one JSON value.
    pub fn recv(&mut self) -> Value {
        let mut line = String::new();
        let n = self.stdout.read_line(&mut line).expect("read");
        assert!(n > 0, "stdout closed");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line:?}"))
    }

    /// Read until the response with `id` arrives; returns it and what came before.
    pub fn recv_response(&mut self, id: i64) -> (Value, Vec<Value>) {
        let mut before = Vec::new();
        loop {
            let v = self.recv();
            if v.get("id") == Some(&json!(id)) && (v.get("result").is_some() || v.get("error").is_some()) {
                return (v, before);
            }
            before.push(v);
        }
    }
}

impl Drop for Stdio_ {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
