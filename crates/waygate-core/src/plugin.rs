//! The plugin contract shared by every tier (native Rust now; WASM and out-of-process
//! servers plug in behind the same trait, so the catalog never cares where a tool lives).
//!
//! Lifecycle: [`Plugin::initialize`] declares what the plugin provides (its [`Manifest`]),
//! [`Plugin::execute`] serves calls, [`Plugin::shutdown`] releases resources. Handlers are
//! written once in the stateless (MRTR) style: when they need input from the user or the
//! client they return [`Outcome::InputRequired`]; the engine turns that into a
//! 2026-07-28 `input_required` result or, for a legacy session, into real server→client
//! requests, and calls the handler again with the answers.

use std::future::Future;
use std::pin::Pin;

use serde_json::{Map, Value};

use crate::context::CallContext;
use crate::events::Events;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a plugin is asked to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Tool(String),
    Resource(String),
    Prompt(String),
    /// `completion/complete` for a prompt (`ref/prompt`) or resource template (`ref/resource`).
    Complete {
        reference: Value,
    },
}

/// One call, with the answers of earlier rounds when the handler asked for input.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub target: Target,
    /// Tool arguments, prompt arguments or completion params; `{}` when absent.
    pub arguments: Value,
    /// Answers keyed like the `requests` of the previous [`Outcome::InputRequired`].
    pub input_responses: Option<Map<String, Value>>,
    /// The state the handler attached to its previous `InputRequired`, verified by the engine.
    pub state: Option<Value>,
    /// `arguments` exactly as the caller wrote them, while they are what it sent (no
    /// pre-hook changed them), for plugins that forward them: an upstream gets the
    /// caller's numbers and key order, which a `Value` would not keep. Set for remote
    /// plugins only; others read `arguments`.
    pub raw_arguments: Option<std::sync::Arc<str>>,
    /// The caller's own `params._meta` members that a forwarding plugin passes on (vendor
    /// keys, `traceparent`); MCP's reserved keys and the progress token belong to this hop
    /// and are left out. Set for remote plugins only.
    pub caller_meta: Option<Map<String, Value>>,
}

impl Invocation {
    pub fn input(&self, key: &str) -> Option<&Value> {
        self.input_responses.as_ref().and_then(|m| m.get(key))
    }
    pub fn arg_str(&self, key: &str) -> Option<&str> {
        self.arguments.get(key).and_then(Value::as_str)
    }
}

/// The answer of a handler.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The result object (`CallToolResult`, `ReadResourceResult`, …) without `resultType`.
    Complete(Value),
    /// More input is needed. `requests` maps keys to `{method, params}` input requests
    /// (`elicitation/create`, `sampling/createMessage`, `roots/list`); `state` comes back
    /// in [`Invocation::state`], integrity-protected by the engine.
    InputRequired {
        requests: Map<String, Value>,
        state: Option<Value>,
    },
    /// A result exactly as another MCP server wrote it (a gateway's upstream): the engine
    /// passes the text on and edits only the top-level members the caller's revision needs
    /// (`resultType`, `_meta` server info), so key order and number precision survive.
    /// Anything that must read the result (hooks, response caps, body logs) parses it.
    Forward(Box<serde_json::value::RawValue>),
}

impl Outcome {
    /// The result as a `Value`, for readers that need the tree. Valid JSON that a `Value`
    /// cannot hold (a number beyond `f64`, such as `1E+400`) becomes `null` here; only the
    /// paths that need a tree (hooks, caps, body logs, task results) take this way.
    pub fn forwarded_value(raw: &serde_json::value::RawValue) -> Value {
        serde_json::from_str(raw.get()).unwrap_or(Value::Null)
    }
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PluginError {
    /// The tool ran and failed in a way the model can read (`isError: true` result).
    #[error("{0}")]
    ToolFailed(String),
    /// Arguments are wrong (JSON-RPC -32602).
    #[error("invalid params: {0}")]
    InvalidParams(String),
    /// The named tool, prompt or resource does not exist in this plugin.
    #[error("not found: {0}")]
    NotFound(String),
    /// The handler needs a client capability this request did not declare (-32021 in
    /// 2026-07-28); the value is the `ClientCapabilities` object that is missing.
    #[error("missing client capability {0}")]
    MissingCapability(Value),
    /// The plugin itself is broken (JSON-RPC -32603); the message is safe to show.
    #[error("plugin failure: {0}")]
    Internal(String),
}

/// A tool as the plugin declares it: the full MCP `Tool` object (name, description,
/// inputSchema, …) as the newest revision shapes it.
///
/// Held as its JSON text, not as a `Value`: a gateway keeps every federated tool's
/// definition for as long as it serves it, and at 10 000 tools a tree of maps per
/// definition costs tens of megabytes where the text costs one or two. The catalog reads
/// the text once per change; [`ToolDef::definition`] parses it for the rare other reader.
#[derive(Debug, Clone)]
pub struct ToolDef {
    name: Box<str>,
    text: std::sync::Arc<str>,
}

#[derive(Debug, Clone)]
pub struct ResourceDef {
    pub definition: Value,
}

#[derive(Debug, Clone)]
pub struct ResourceTemplateDef {
    pub definition: Value,
}

#[derive(Debug, Clone)]
pub struct PromptDef {
    pub definition: Value,
}

/// Everything a plugin provides, declared at initialization.
#[derive(Debug, Clone, Default)]
pub struct Manifest {
    pub tools: Vec<ToolDef>,
    pub resources: Vec<ResourceDef>,
    pub resource_templates: Vec<ResourceTemplateDef>,
    pub prompts: Vec<PromptDef>,
    /// The plugin answers `completion/complete` for its prompts/templates.
    pub completions: bool,
    /// What the plugin's server tells clients about using it (an upstream's
    /// `instructions`), merged into the gateway's under the plugin's name.
    pub instructions: Option<String>,
}

impl ToolDef {
    pub fn new(definition: Value) -> ToolDef {
        let name = definition
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .into();
        // A `Value` always serializes; its map is ordered by key, so the text is canonical.
        let text = serde_json::to_string(&definition).unwrap_or_default().into();
        ToolDef { name, text }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The definition's canonical JSON text (keys in order, compact).
    pub fn text(&self) -> &std::sync::Arc<str> {
        &self.text
    }

    /// The definition, parsed.
    pub fn definition(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }
}
impl PromptDef {
    pub fn name(&self) -> &str {
        self.definition.get("name").and_then(Value::as_str).unwrap_or_default()
    }
}
impl ResourceDef {
    pub fn uri(&self) -> &str {
        self.definition.get("uri").and_then(Value::as_str).unwrap_or_default()
    }
}
impl ResourceTemplateDef {
    pub fn uri_template(&self) -> &str {
        self.definition
            .get("uriTemplate")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
}

/// Handed to [`Plugin::initialize`].
#[derive(Clone)]
pub struct PluginInit {
    /// Plugin-specific settings from the config file (`[plugins.<name>]`), `{}` if none.
    pub settings: Value,
    /// Announce catalog changes and resource updates to subscribed clients.
    pub events: Events,
}

/// A source of tools, resources and prompts.
pub trait Plugin: Send + Sync + 'static {
    /// Stable identifier, used in config, logs and collision prefixes.
    fn name(&self) -> &str;

    /// Prepare and declare what the plugin provides. Called once per load/reload.
    fn initialize<'a>(&'a self, init: &'a PluginInit) -> BoxFuture<'a, Result<Manifest, PluginError>>;

    /// Serve one call.
    fn execute<'a>(
        &'a self,
        invocation: &'a Invocation,
        ctx: &'a CallContext,
    ) -> BoxFuture<'a, Result<Outcome, PluginError>>;

    /// Release resources; in-flight calls have drained when this runs.
    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }

    /// Extra attributes for the span of a call this plugin serves; a plugin that calls
    /// another server (an upstream) names it here and its calls become CLIENT spans.
    fn span_attributes(&self) -> Option<Vec<(&'static str, String)>> {
        None
    }

    /// Whether the plugin forwards to another server (an upstream): its results are that
    /// server's to get right, so Waygate does not check them against `outputSchema`.
    ///
    /// A remote plugin's first step of a task-augmented 2026-07-28 call is awaited (not
    /// polled once) until it asks, ends, or calls [`CallContext::mark_started`]; a remote
    /// plugin must call it once its work has begun, or the caller waits for the whole call
    /// before its task exists.
    fn is_remote(&self) -> bool {
        false
    }

    /// A caller subscribed to `uri` (the plugin's own URI). A plugin that hears of changes
    /// from elsewhere — an upstream server — subscribes there; it is called on every
    /// subscription and de-duplicates. Plugins that emit their own updates ignore it.
    fn watch(&self, uri: &str) -> BoxFuture<'_, ()> {
        let _ = uri;
        Box::pin(async {})
    }

    /// The caller of a call that returned [`Outcome::InputRequired`] with `state` will not
    /// answer: its client failed or cannot answer, it cancelled or went away, it lacks the
    /// capability. A plugin holding work for the answer (an upstream server blocked on the
    /// question it asked) ends that work now, telling it `why`, rather than at its own
    /// input timeout. `owner` is the caller's [`CallContext::owner`].
    fn release<'a>(&'a self, state: &'a Value, owner: Option<&'a str>, why: &'a str) -> BoxFuture<'a, ()> {
        let _ = (state, owner, why);
        Box::pin(async {})
    }

    /// Resolves when the work held under `state` stops waiting for the caller's answer on
    /// its own (the upstream died, timed out, or answered anyway), so a session-era caller
    /// is not left answering a question nobody waits for: `None` to have the handler run
    /// again without answers (it reports what happened), `Some(why)` when the work is
    /// gone. Pending for ever by default.
    fn held_ended<'a>(&'a self, state: &'a Value) -> BoxFuture<'a, Option<String>> {
        let _ = state;
        Box::pin(std::future::pending())
    }

    /// Why the plugin stopped working on its own (a sandboxed plugin that keeps trapping),
    /// so the registry can report it failed until it is reloaded.
    fn failure(&self) -> Option<String> {
        None
    }
}
