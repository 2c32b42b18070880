//! Log output: JSON lines on stderr (pretty on a terminal), one filter that an operator can
//! change while the server runs (`PUT /api/v1/log-level`). Inside a request every JSON line
//! carries a `request` object — correlation id, trace id, principal, MCP method and target —
//! from the request's [`waygate_core::logctx`].

use std::sync::OnceLock;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, reload, EnvFilter, Registry};

static FILTER: OnceLock<(reload::Handle<EnvFilter, Registry>, std::sync::Mutex<String>)> = OnceLock::new();

/// Install the global subscriber. `format`: `auto` (the journal format when stderr is the
/// systemd journal, pretty on a terminal, JSON otherwise), `json`, `journal` or `pretty`.
pub fn init(filter: Option<&str>, format: &str) {
    use std::io::IsTerminal;
    let spec = filter.unwrap_or("info").to_string();
    let env = EnvFilter::try_new(&spec).unwrap_or_else(|_| EnvFilter::new("info"));
    let (layer, handle) = reload::Layer::new(env);
    // stderr only: stdout belongs to the protocol in --stdio mode.
    let journal = format == "journal" || (format == "auto" && crate::systemd::stderr_is_journal());
    let json = !journal && (format == "json" || (format == "auto" && !std::io::stderr().is_terminal()));
    let registry = tracing_subscriber::registry().with(layer);
    let ok = if journal {
        let out = fmt::layer().event_format(JournalLines).with_writer(Scrubbed);
        registry.with(out).try_init().is_ok()
    } else if json {
        let out = fmt::layer().event_format(JsonLines).with_writer(Scrubbed);
        registry.with(out).try_init().is_ok()
    } else {
        let out = fmt::layer()
            .with_target(false)
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(Scrubbed);
        registry.with(out).try_init().is_ok()
    };
    if ok {
        let _ = FILTER.set((handle, std::sync::Mutex::new(spec)));
    }
}

/// Log lines go to stderr with every known secret and URL credential scrubbed
/// (`waygate_security::redact`), whatever the code that logged them put in.
struct Scrubbed;

/// One event's bytes, scrubbed and written whole when the event is done.
struct ScrubbedLine(Vec<u8>);

impl<'a> fmt::MakeWriter<'a> for Scrubbed {
    type Writer = ScrubbedLine;
    fn make_writer(&'a self) -> ScrubbedLine {
        ScrubbedLine(Vec::with_capacity(256))
    }
}

impl std::io::Write for ScrubbedLine {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for ScrubbedLine {
    fn drop(&mut self) {
        use std::io::Write;
        let text = String::from_utf8_lossy(&self.0);
        let _ = std::io::stderr()
            .lock()
            .write_all(waygate_security::scrub(&text).as_bytes());
    }
}

/// The filter in effect.
pub fn current() -> String {
    FILTER
        .get()
        .map(|(_, s)| s.lock().unwrap_or_else(|e| e.into_inner()).clone())
        .unwrap_or_default()
}

/// Replace the filter (`info`, `debug,waygate_core=trace`, …); the error names the problem.
pub fn set(spec: &str) -> Result<(), String> {
    let env = EnvFilter::try_new(spec).map_err(|e| format!("invalid log filter {spec:?}: {e}"))?;
    let (handle, current) = FILTER.get().ok_or("logging is not initialized")?;
    handle.reload(env).map_err(|e| e.to_string())?;
    *current.lock().unwrap_or_else(|e| e.into_inner()) = spec.to_string();
    tracing::warn!(filter = spec, "log filter changed");
    Ok(())
}

/// One JSON object per event (keys sorted): `timestamp`, `level`, `target`, the event's
/// fields (`message` among them), and `request` when the event happens while a request is
/// served.
struct JsonLines;

impl<S, N> fmt::FormatEvent<S, N> for JsonLines
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &fmt::FmtContext<'_, S, N>,
        mut writer: fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        use serde_json::{Map, Value};
        let meta = event.metadata();
        let mut obj = Map::new();
        obj.insert("timestamp".into(), Value::String(waygate_core::util::rfc3339_now()));
        obj.insert("level".into(), Value::String(meta.level().to_string()));
        obj.insert("target".into(), Value::String(meta.target().to_string()));
        let mut fields = Fields(Map::new());
        event.record(&mut fields);
        for (k, v) in fields.0 {
            // Event fields never overwrite the envelope.
            let k = if obj.contains_key(&k) { format!("field.{k}") } else { k };
            obj.insert(k, v);
        }
        if let Some(c) = waygate_core::logctx::current() {
            let mut r = Map::new();
            let mut put = |k: &str, v: Option<&str>| {
                if let Some(v) = v {
                    r.insert(k.into(), Value::String(v.to_string()));
                }
            };
            put("id", c.request_id.as_deref());
            put("trace_id", c.trace_id.as_deref());
            put("principal", c.principal.as_deref());
            put("method", c.method);
            put("target", c.target.as_deref());
            obj.insert("request".into(), Value::Object(r));
        }
        writeln!(writer, "{}", Value::Object(obj))
    }
}

/// For the systemd journal (`JOURNAL_STREAM`): `<priority>message key=value …` per event.
/// journald reads the sd-daemon priority prefix into `PRIORITY` (so `journalctl -p warning`
/// works) and stamps the time itself; the request's correlation id and principal stay on the
/// line for `journalctl --grep`.
struct JournalLines;

impl<S, N> fmt::FormatEvent<S, N> for JournalLines
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &fmt::FmtContext<'_, S, N>,
        mut writer: fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        use tracing::Level;
        let meta = event.metadata();
        let priority = match *meta.level() {
            Level::ERROR => 3,
            Level::WARN => 4,
            Level::INFO => 6,
            _ => 7,
        };
        let mut fields = Fields(serde_json::Map::new());
        event.record(&mut fields);
        let message = fields.0.remove("message").map(plain).unwrap_or_default();
        // One journal entry per event: a newline would start an entry without a priority.
        write!(writer, "<{priority}>{}", message.replace('\n', " "))?;
        for (k, v) in fields.0 {
            write!(writer, " {k}={}", quoted(&plain(v)))?;
        }
        if let Some(c) = waygate_core::logctx::current() {
            for (k, v) in [
                ("request_id", c.request_id.as_deref()),
                ("principal", c.principal.as_deref()),
                ("method", c.method),
            ] {
                if let Some(v) = v {
                    write!(writer, " {k}={}", quoted(v))?;
                }
            }
        }
        writeln!(writer, " target={}", meta.target())
    }
}

fn plain(v: serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    }
}

/// A value as one token: quoted (JSON-escaped) when it has spaces, quotes or newlines.
fn quoted(v: &str) -> String {
    if v.is_empty() || v.contains(|c: char| c.is_whitespace() || c == '"' || c == '=') {
        serde_json::Value::String(v.to_string()).to_string()
    } else {
        v.to_string()
    }
}

struct Fields(serde_json::Map<String, serde_json::Value>);

impl tracing::field::Visit for Fields {
    fn record_str(&mut self, f: &tracing::field::Field, v: &str) {
        self.0.insert(f.name().into(), v.into());
    }
    fn record_i64(&mut self, f: &tracing::field::Field, v: i64) {
        self.0.insert(f.name().into(), v.into());
    }
    fn record_u64(&mut self, f: &tracing::field::Field, v: u64) {
        self.0.insert(f.name().into(), v.into());
    }
    fn record_bool(&mut self, f: &tracing::field::Field, v: bool) {
        self.0.insert(f.name().into(), v.into());
    }
    fn record_f64(&mut self, f: &tracing::field::Field, v: f64) {
        self.0.insert(f.name().into(), v.into());
    }
    fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
        self.0.insert(f.name().into(), format!("{v:?}").into());
    }
}
