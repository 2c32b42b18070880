//! Test harness: start the real `waygate` binary and talk to it over loopback HTTP or
//! stdio with a deliberately small HTTP/1.1 client (so tests see raw status codes,
//! headers and bodies exactly as any client would).

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod stdio;
// Not every test executable that shares this harness speaks stdio.
#[allow(unused_imports)]
pub use stdio::Stdio_;

pub const MODERN: &str = "2026-07-28";

pub struct Server {
    child: Child,
    pub addr: String,
    _dir: TempDir,
}

/// A directory removed on drop.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("waygate-test-{tag}-{}-{}", std::process::id(), nanos()));
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_waygate")
}

/// Run a `waygate` subcommand to completion: (success, stdout, stderr).
pub fn cli(args: &[&str]) -> (bool, String, String) {
    cli_env(args, &[], None)
}

/// [`cli`] with extra environment variables and optional standard input.
pub fn cli_env(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> (bool, String, String) {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .env_remove("WAYGATE_DATABASE_URL")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run waygate");
    if let Some(mut i) = child.stdin.take() {
        let _ = i.write_all(stdin.unwrap_or("").as_bytes());
    }
    let out = child.wait_with_output().expect("run waygate");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

impl Server {
    /// `waygate serve --listen 127.0.0.1:0 --no-auth` plus `extra` args; waits for the URL line.
    pub fn start(extra: &[&str]) -> Server {
        Server::start_in(None, extra)
    }

    /// Like [`Server::start`] with a caller-owned data directory.
    pub fn start_in(data_dir: Option<&std::path::Path>, extra: &[&str]) -> Server {
        let mut args = vec!["--no-auth"];
        args.extend_from_slice(extra);
        Server::spawn(data_dir, &args).0
    }

    /// With authentication on (the default); returns the admin key printed on first start.
    pub fn start_with_auth(data_dir: &std::path::Path) -> (Server, Option<String>) {
        Server::spawn(Some(data_dir), &[])
    }

    fn spawn(data_dir: Option<&std::path::Path>, extra: &[&str]) -> (Server, Option<String>) {
        Server::spawn_logging(data_dir, extra, None)
    }

    /// With authentication on and `extra` args; returns the admin key printed on first start.
    pub fn start_auth_with(data_dir: &std::path::Path, extra: &[&str]) -> (Server, Option<String>) {
        Server::spawn_logging(Some(data_dir), extra, None)
    }

    /// `--no-auth` plus `extra`, returning once it listens, ready or not (`/ready` may be 503).
    pub fn start_unready(data_dir: &std::path::Path, extra: &[&str]) -> Server {
        let mut args = vec!["--no-auth"];
        args.extend_from_slice(extra);
        Server::spawn_inner(Some(data_dir), &args, None, false, &[]).0
    }

    /// Like [`Server::start_unready`] with authentication on: for listeners the plain
    /// helpers cannot talk to (TLS).
    pub fn start_auth_unready(data_dir: &std::path::Path, extra: &[&str]) -> (Server, Option<String>) {
        Server::spawn_inner(Some(data_dir), extra, None, false, &[])
    }

    /// Like `start_with_auth`, with the log written to `log` (JSON lines, level info).
    pub fn start_logging_to(data_dir: &std::path::Path, log: &std::path::Path) -> (Server, Option<String>) {
        Server::spawn_logging(Some(data_dir), &["--log-format", "json", "--log", "info"], Some(log))
    }

    /// Authentication on, with extra environment (`WAYGATE_SECRET_KEY`, say).
    pub fn start_auth_env(
        data_dir: &std::path::Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> (Server, Option<String>) {
        Server::spawn_inner(Some(data_dir), extra, None, true, env)
    }

    fn spawn_logging(
        data_dir: Option<&std::path::Path>,
        extra: &[&str],
        log: Option<&std::path::Path>,
    ) -> (Server, Option<String>) {
        Server::spawn_inner(data_dir, extra, log, true, &[])
    }

    fn spawn_inner(
        data_dir: Option<&std::path::Path>,
        extra: &[&str],
        log: Option<&std::path::Path>,
        wait_ready: bool,
        env: &[(&str, &str)],
    ) -> (Server, Option<String>) {
        let dir = TempDir::new("srv");
        let data = data_dir
            .map(std::path::Path::to_path_buf)
            .unwrap_or_else(|| dir.0.clone());
        let mut child = Command::new(bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .args(extra)
            .env("WAYGATE_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(match log {
                Some(p) => Stdio::from(std::fs::File::create(p).expect("log file")),
                None => Stdio::inherit(),
            })
            .spawn()
            .expect("spawn waygate");
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        out.read_line(&mut line).expect("read url line");
        let addr = line
            .split("://")
            .nth(1)
            .and_then(|s| s.split('/').next())
            .unwrap_or_else(|| panic!("no URL in {line:?}"))
            .to_string();
        // Keep draining stdout so the child never blocks on a full pipe; pick up a key line.
        let (ktx, krx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sink = String::new();
            while out.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
                if let Some(k) = sink.trim().strip_prefix("WAYGATE_API_KEY=") {
                    let _ = ktx.send(k.to_string());
                }
                sink.clear();
            }
        });
        let s = Server { child, addr, _dir: dir };
        // A bound, not a timing assertion: starting many upstreams while other tests (and a
        // browser) share the two cores can take a while.
        let end = Instant::now() + Duration::from_secs(60);
        while wait_ready && s.request("GET", "/ready", &[], b"").status != 200 {
            assert!(Instant::now() < end, "server never became ready");
            std::thread::sleep(Duration::from_millis(20));
        }
        // The key line comes before readiness; with --no-auth there is none to wait for.
        let key = if extra.contains(&"--no-auth") {
            None
        } else {
            krx.recv_timeout(Duration::from_millis(300)).ok()
        };
        (s, key)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
        http(&self.addr, method, path, headers, body)
    }

    /// POST a JSON body to /mcp with the usual MCP headers plus `headers`.
    pub fn post(&self, body: &Value, headers: &[(&str, &str)]) -> Response {
        let mut h = vec![
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
        ];
        h.extend_from_slice(headers);
        self.request("POST", "/mcp", &h, body.to_string().as_bytes())
    }

    /// POST a JSON body to /mcp with the usual MCP headers plus `headers`, and read the
    /// response incrementally (SSE).
    pub fn post_stream(&self, body: &Value, headers: &[(&str, &str)]) -> Stream {
        let mut h = vec![
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
        ];
        h.extend_from_slice(headers);
        Stream::open(&self.addr, "POST", "/mcp", &h, body.to_string().as_bytes())
    }

    /// A 2026-07-28 request with envelope and mirrored headers.
    pub fn modern(&self, id: i64, method: &str, params: Value, caps: Value) -> Response {
        self.modern_with(id, method, params, caps, &[])
    }

    /// [`Server::modern`] with extra headers (a caller's credential).
    pub fn modern_with(
        &self,
        id: i64,
        method: &str,
        mut params: Value,
        caps: Value,
        extra: &[(&str, &str)],
    ) -> Response {
        let meta = json!({
            "io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": caps,
            "io.modelcontextprotocol/clientInfo": {"name": "waygate-test", "version": "1"}
        });
        // The caller's own `_meta` members stay beside the envelope.
        let mut meta = meta;
        if let (Some(own), Some(m)) = (params.get("_meta").and_then(Value::as_object), meta.as_object_mut()) {
            m.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        params["_meta"] = meta;
        let name = params
            .get("name")
            .or_else(|| params.get("uri"))
            .or_else(|| params.get("taskId"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let mut h: Vec<(&str, &str)> = vec![("mcp-protocol-version", MODERN), ("mcp-method", method)];
        if let Some(n) = &name {
            h.push(("mcp-name", n));
        }
        h.extend_from_slice(extra);
        self.post(
            &json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}),
            &h,
        )
    }

    /// Open a legacy session; returns its id.
    pub fn initialize(&self, version: &str, caps: Value) -> String {
        self.initialize_with(version, caps, &[])
    }

    /// [`Server::initialize`] with extra headers (a caller's credential) on both requests.
    pub fn initialize_with(&self, version: &str, caps: Value, extra: &[(&str, &str)]) -> String {
        let r = self.post(
            &json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
                "protocolVersion": version, "capabilities": caps, "clientInfo": {"name":"t","version":"1"}}}),
            extra,
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let sid = r.header("mcp-session-id").expect("session id").to_string();
        let mut h = vec![("mcp-session-id", sid.as_str()), ("mcp-protocol-version", version)];
        h.extend_from_slice(extra);
        let n = self.post(&json!({"jsonrpc":"2.0","method":"notifications/initialized"}), &h);
        assert_eq!(n.status, 202);
        sid
    }
}

impl Server {
    /// SIGTERM (graceful shutdown) and wait for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st;
            }
            assert!(Instant::now() < end, "server did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// The JSON body, or for an SSE body the last `data:` message.
    pub fn json(&self) -> Value {
        if self
            .header("content-type")
            .is_some_and(|c| c.starts_with("text/event-stream"))
        {
            return self.sse_messages().pop().expect("no SSE message");
        }
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    pub fn sse_messages(&self) -> Vec<Value> {
        self.text()
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str(d.trim()).ok())
            .collect()
    }
}

/// One request on a fresh connection (`Connection: close`), reading to the end.
pub fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).ok();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("write");
    // The server may answer (e.g. 413) and close before reading a large body.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    parse_response(&raw)
}

pub fn parse_response(raw: &[u8]) -> Response {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("no header end");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    Response { status, headers, body }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = b.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&b[..end]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = end + 2;
        out.extend_from_slice(&b[start..(start + size).min(b.len())]);
        b = &b[(start + size + 2).min(b.len())..];
    }
    out
}

/// A stream that is read incrementally (SSE); the request is sent on open.
pub struct Stream {
    reader: BufReader<TcpStream>,
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

impl Stream {
    pub fn open(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Stream {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).ok();
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).expect("write");
        s.write_all(body).expect("write");
        let mut reader = BufReader::new(s);
        let mut line = String::new();
        reader.read_line(&mut line).expect("status line");
        let status = line.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status");
        let mut headers = Vec::new();
        loop {
            line.clear();
            reader.read_line(&mut line).expect("header");
            if line.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        Stream {
            reader,
            status,
            headers,
        }
    }

    /// How long a read waits (a quiet stream then ends `next_event` with `None`).
    pub fn set_timeout(&mut self, d: Duration) {
        self.reader.get_ref().set_read_timeout(Some(d)).ok();
    }

    /// Next SSE event as `(event name, data)`, skipping chunk-size lines and comments.
    pub fn next_event(&mut self) -> Option<(String, String)> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let (mut event, mut data) = (String::from("message"), String::new());
        let mut line = String::new();
        while Instant::now() < deadline {
            line.clear();
            if self.reader.read_line(&mut line).ok()? == 0 {
                return None;
            }
            let l = line.trim_end_matches(['\r', '\n']);
            if let Some(e) = l.strip_prefix("event:") {
                event = e.trim().to_string();
            } else if let Some(d) = l.strip_prefix("data:") {
                data = d.trim().to_string();
            } else if l.is_empty() && !data.is_empty() {
                return Some((event, data));
            }
        }
        None
    }

    pub fn next_json(&mut self) -> Option<Value> {
        while let Some((ev, data)) = self.next_event() {
            if ev == "message" {
                if let Ok(v) = serde_json::from_str(&data) {
                    return Some(v);
                }
            }
        }
        None
    }
}

/// (how many, newest version) of the store's migrations, from the migration files, so tests
/// need no edit when a migration is added.
pub fn migrations() -> (usize, i64) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../waygate-store/migrations/sqlite");
    let versions: Vec<i64> = std::fs::read_dir(&dir)
        .expect("migrations directory")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".up.sql")?.split('_').next()?.parse().ok()
        })
        .collect();
    (versions.len(), versions.iter().copied().max().unwrap_or(0))
}

/// Wait until `f` holds, or fail after `secs` (a bound, not a timing assertion).
pub fn eventually(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A loopback port free at the time of asking.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A gateway (no demo plugin, no auth) in `dir` whose one upstream is the `[[upstreams]]`
/// entry `entry` (its keys, one per line).
pub fn gateway_with_upstream(dir: &std::path::Path, entry: &str) -> Server {
    std::fs::create_dir_all(dir).unwrap();
    let cfg = dir.join("gateway.toml");
    std::fs::write(
        &cfg,
        format!("version = 3\n[plugins]\ndemo = false\n[[upstreams]]\n{entry}"),
    )
    .unwrap();
    Server::start_in(Some(dir), &["--config", cfg.to_str().unwrap()])
}
