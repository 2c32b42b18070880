//! Command-line definition. `--config` and `--data-dir` are global so every subcommand
//! finds the same configuration and store as `serve`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "waygate",
    version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("WAYGATE_GIT_COMMIT"), ")"),
    about = "Waygate: MCP server framework and gateway (every MCP revision, one endpoint)",
    long_about = "Waygate serves the Model Context Protocol to clients of every revision \
        (2025-03-26, 2025-06-18, 2025-11-25 with sessions; 2026-07-28 stateless) over \
        Streamable HTTP at /mcp, the legacy HTTP+SSE transport at /sse, and stdio. Tools, \
        resources and prompts come from plugins.\n\nConfiguration levels, lowest first: \
        built-in defaults < config file < WAYGATE_* environment < command-line flags."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Configuration file (TOML). Default: <data-dir>/waygate.toml when it exists.
    #[arg(long, global = true, env = "WAYGATE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory for persistent state (store, keys). Created if missing.
    #[arg(long, global = true, env = "WAYGATE_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Log filter, e.g. `info`, `debug`, `waygate_core=trace` (logs go to stderr).
    #[arg(long, global = true, env = "WAYGATE_LOG", value_name = "FILTER")]
    pub log: Option<String>,
    /// Log format on stderr: auto (journal under systemd's JOURNAL_STREAM, pretty on a terminal,
    /// JSON otherwise), json, journal (`<priority>message key=value`), or pretty.
    #[arg(long, global = true, env = "WAYGATE_LOG_FORMAT", value_name = "FORMAT", default_value = "auto",
          value_parser = ["auto", "json", "journal", "pretty"])]
    pub log_format: String,
    /// Database URL: sqlite://PATH (default <data-dir>/waygate.db) or postgres://USER:PASS@HOST/DB.
    #[arg(
        long,
        global = true,
        env = "WAYGATE_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the MCP server (HTTP by default, or --stdio).
    Serve(ServeArgs),
    /// Inspect plugins.
    Plugins {
        #[command(subcommand)]
        command: PluginsCommand,
    },
    /// Manage the running server's upstream MCP servers (added ones are remembered).
    Upstreams {
        #[command(subcommand)]
        command: UpstreamsCommand,
    },
    /// Inspect, check, upgrade and roll back configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Read and check the tamper-evident audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// The encrypted credential store: values sealed with WAYGATE_SECRET_KEY, referenced
    /// from upstream settings as ${secret:NAME}.
    Secrets {
        #[command(subcommand)]
        command: SecretsCommand,
    },
    /// Check configuration, store, listen address, plugins, upstreams, issuer keys, Redis
    /// and the clock; print a table with a fix for each problem; exit 1 if anything failed.
    Doctor,
    /// Manage API keys (shown once at creation; only hashes are stored).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Export this instance's state (config, plugins, upstreams, keys; secrets encrypted with
    /// WAYGATE_SECRET_KEY) as JSON.
    Export {
        /// Write to this file instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Restore a `waygate export` file into this instance (needs the same WAYGATE_SECRET_KEY).
    ImportState {
        file: PathBuf,
        #[arg(long)]
        dry_run: bool,
    },
    /// Import MCP servers from another tool's configuration as Waygate upstreams.
    Import(ImportArgs),
    /// Database schema: apply, inspect or revert migrations.
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
    /// The running server's virtual servers (`/servers/{name}/mcp`).
    Servers {
        #[command(subcommand)]
        command: crate::cli_admin::ServersCommand,
    },
    /// The running server's merged catalog: tools, resources, prompts; call a tool.
    Catalog {
        #[command(subcommand)]
        command: crate::cli_admin::CatalogCommand,
    },
    /// Tool definitions held back because they changed since they were approved.
    Pins {
        #[command(subcommand)]
        command: crate::cli_admin::PinsCommand,
    },
    /// The authorization policy and rate-limit rules the running server applies;
    /// `policies set --file F` replaces `[authz]` and every `[[policies]]` rule.
    Policies {
        #[command(subcommand)]
        command: Option<crate::cli_admin::SectionCommand>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// The rate limits (`[limits]`) the running server applies; `limits set --file F`
    /// replaces them.
    Limits {
        #[command(subcommand)]
        command: Option<crate::cli_admin::SectionCommand>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Point an MCP client (Claude Desktop, Claude Code, Cursor, VS Code, Windsurf) at this
    /// Waygate: shows the change as a diff, keeps a backup, then writes the client's file.
    Connect(crate::cli_admin::ConnectArgs),
    /// Ask a running server's `/health` (and `/ready` with --ready); exit 0 when it answers
    /// 200 within 5 s (a container HEALTHCHECK without curl in the image).
    Health {
        /// Base URL; default http://<server.listen from the config>.
        #[arg(long, env = "WAYGATE_URL", value_name = "URL")]
        url: Option<String>,
        #[arg(long)]
        ready: bool,
    },
    /// Print a shell completion script: `waygate completions bash > /etc/bash_completion.d/waygate`.
    Completions { shell: clap_complete::Shell },
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The file to import: claude_desktop_config.json, .mcp.json, .cursor/mcp.json,
    /// .vscode/mcp.json, an MCPConfig JSON, a ContextForge export, a NEXUS mcp.json.
    pub file: PathBuf,
    /// Source format (auto detects): auto, claude, cursor, windsurf, vscode, fastmcp, contextforge, nexus.
    #[arg(long, default_value = "auto")]
    pub from: String,
    /// Show the result, the diff and the lossiness report; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Start each imported stdio upstream and list its tools before writing.
    #[arg(long)]
    pub verify: bool,
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Search the trail, newest first; filters combine (globs with * and ?).
    Query {
        #[arg(long)]
        principal: Option<String>,
        #[arg(long)]
        method: Option<String>,
        /// Tool name, prompt name or resource URI.
        #[arg(long)]
        target: Option<String>,
        /// ok, tool_error, input_required, task, denied or error.
        #[arg(long)]
        outcome: Option<String>,
        /// Only records at or after this Unix time in milliseconds.
        #[arg(long)]
        since_ms: Option<i64>,
        /// Only records before this Unix time in milliseconds.
        #[arg(long)]
        until_ms: Option<i64>,
        /// Continue with the records older than a previous page (the `--cursor` it printed).
        #[arg(long, value_name = "SEQ:INDEX")]
        cursor: Option<String>,
        /// Records to print (with --url at most 500, the API's page size).
        #[arg(short = 'n', long, default_value_t = 100)]
        limit: usize,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Print the newest records as JSON lines.
    Tail {
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: i64,
    },
    /// Walk the hash chain; exit 1 at the first row that was altered, inserted or removed.
    Verify {
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum SecretsCommand {
    /// Store (or replace) a secret; the value comes from --value or standard input.
    Set {
        name: String,
        #[arg(long)]
        value: Option<String>,
    },
    /// Names and update times (never values).
    List,
    /// Remove a secret.
    Rm { name: String },
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Create a key and print it once.
    Create {
        name: String,
        /// Comma-separated scopes: mcp (call MCP endpoints), admin (everything); any other
        /// name is a role that `[[policies]]` rules can match.
        #[arg(long, default_value = "mcp")]
        scopes: String,
        /// Expire after this many days (default: never).
        #[arg(long, value_name = "DAYS")]
        expires_in_days: Option<u64>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// List keys (ids, names, scopes, state; never secrets).
    List {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Revoke a key; a running server refuses it within a second.
    Revoke {
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Revoke a key and create a replacement with the same name and scopes.
    Rotate {
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum DbCommand {
    /// Apply every pending migration.
    Migrate,
    /// List migrations and whether each is applied.
    Status,
    /// Revert the newest migration, or every migration newer than --to.
    Rollback {
        /// Keep migrations up to and including this version (0 reverts all).
        #[arg(long)]
        to: Option<i64>,
    },
}

#[derive(Args, Debug, Default)]
pub struct ServeArgs {
    /// Address to listen on (loopback by default). Port 0 picks a free port.
    #[arg(long, env = "WAYGATE_LISTEN", value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,
    /// Serve MCP on stdin/stdout instead of HTTP (logs go to stderr).
    #[arg(long)]
    pub stdio: bool,
    /// With --stdio: serve only this virtual server's view (`[[servers]]` name).
    #[arg(long, value_name = "NAME", requires = "stdio")]
    pub server: Option<String>,
    /// Enable a plugin (repeatable): demo, everything. Adds to the config file's list.
    #[arg(long = "plugin", value_name = "NAME")]
    pub plugins: Vec<String>,
    /// Do not load the default `demo` plugin.
    #[arg(long)]
    pub no_demo: bool,
    /// Disable authentication (loopback listeners only). Logs a warning on every start.
    #[arg(long)]
    pub no_auth: bool,
    /// Do not record the audit trail (same as `[audit] enabled = false`). Logs a warning.
    #[arg(long)]
    pub no_audit: bool,
}

#[derive(Subcommand, Debug)]
pub enum UpstreamsCommand {
    /// Every upstream (config file and runtime) with its transport and state.
    List {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Add an upstream, or change one added earlier (same checks as `[[upstreams]]`).
    Add(Box<UpstreamAddArgs>),
    /// Remove an upstream added at runtime (file upstreams are changed in the file).
    Rm {
        name: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Reconnect (restart the process of) an upstream.
    Restart {
        name: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Args, Debug)]
pub struct UpstreamAddArgs {
    pub name: String,
    /// A stdio server's command (stdio implied).
    #[arg(long, conflicts_with = "remote")]
    pub command: Option<String>,
    /// An argument of the command (repeatable, in order).
    #[arg(long = "arg", value_name = "ARG", allow_hyphen_values = true)]
    pub args: Vec<String>,
    /// A remote server's URL (Streamable HTTP implied, legacy SSE accepted). (`--url` is
    /// the address of the running Waygate, as for every command that talks to it.)
    #[arg(long, value_name = "URL")]
    pub remote: Option<String>,
    /// An OpenAPI 3.0/3.1 document (path as the server sees it, or URL) whose operations
    /// become tools.
    #[arg(long, value_name = "PATH|URL", conflicts_with_all = ["command", "remote"])]
    pub openapi: Option<String>,
    /// Where an OpenAPI upstream's requests go (default: the document's first server).
    #[arg(long, value_name = "URL", requires = "openapi")]
    pub base_url: Option<String>,
    /// OpenAPI operations to serve: "GET /pets/*", "/admin/*", "DELETE", "tag:NAME" (repeatable).
    #[arg(long = "include-op", value_name = "RULE", requires = "openapi")]
    pub include_ops: Vec<String>,
    /// OpenAPI operations not to serve, same rules (repeatable).
    #[arg(long = "exclude-op", value_name = "RULE", requires = "openapi")]
    pub exclude_ops: Vec<String>,
    /// stdio, http, sse or openapi (default: implied by --command / --remote / --openapi).
    #[arg(long)]
    pub transport: Option<String>,
    /// NAME=VALUE for the process environment (repeatable; `${secret:NAME}` allowed).
    #[arg(long = "env", value_name = "NAME=VALUE")]
    pub env: Vec<String>,
    /// NAME=VALUE sent to a remote server (repeatable; `${secret:NAME}` allowed).
    #[arg(long = "header", value_name = "NAME=VALUE")]
    pub headers: Vec<String>,
    /// always, on-conflict or never.
    #[arg(long)]
    pub prefix: Option<String>,
    /// Prefix text instead of the name.
    #[arg(long)]
    pub prefix_with: Option<String>,
    /// Only these tools (globs, repeatable).
    #[arg(long = "allow", value_name = "GLOB")]
    pub allow: Vec<String>,
    /// Not these tools (globs, repeatable).
    #[arg(long = "deny", value_name = "GLOB")]
    pub deny: Vec<String>,
    /// Change an existing runtime upstream instead of adding one.
    #[arg(long)]
    pub replace: bool,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Subcommand, Debug)]
pub enum PluginsCommand {
    /// List the plugins of the running server (state, tier, tools); without a running
    /// server, the built-in plugins and which ones the configuration enables.
    List {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Load a WASM plugin into the running server (remembered across restarts).
    Load {
        /// Plugin name.
        name: String,
        /// Path of the .wasm module (as the server sees it).
        module: PathBuf,
        /// Memory cap in MiB.
        #[arg(long)]
        memory_mib: Option<u32>,
        /// Time limit per call in ms.
        #[arg(long)]
        time_ms: Option<u64>,
        /// Grant read-only access to a directory (repeatable; HOST[:GUEST]).
        #[arg(long = "fs-read")]
        fs_read: Vec<String>,
        /// Grant outbound HTTP to a host (repeatable).
        #[arg(long = "http-host")]
        http_hosts: Vec<String>,
        /// Pass a host environment variable through (repeatable).
        #[arg(long = "env")]
        env: Vec<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Unload a plugin loaded at runtime.
    Unload {
        name: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Re-create a plugin (a WASM module is read again); in-flight calls finish first.
    Reload {
        name: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Start a disabled plugin.
    Enable {
        name: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Stop serving a plugin (remembered across restarts).
    Disable {
        name: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Tools held back because their definition changed since it was approved.
    Pins {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Approve the new definition of a held-back tool.
    Approve {
        plugin: String,
        tool: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

/// How to reach a running server's admin API.
#[derive(clap::Args, Debug, Clone)]
pub struct ServerArgs {
    /// Base URL of the running server. Default: http://<server.listen from the config>.
    #[arg(long, env = "WAYGATE_URL", value_name = "URL")]
    pub url: Option<String>,
    /// An API key with the admin scope.
    #[arg(long, env = "WAYGATE_API_KEY", value_name = "KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Print the API's JSON answer instead of a table (for scripts).
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Validate a configuration file (exit 1 with the file, key and reason on error).
    Validate {
        /// File to check; defaults to --config.
        file: Option<PathBuf>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Print the configuration (secrets redacted); --effective shows every key with its source.
    Show {
        #[arg(long)]
        effective: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Replace the running server's configuration with FILE (validated, written, applied,
    /// snapshotted); prints what needs a restart.
    Apply {
        file: PathBuf,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Re-read the running server's configuration file now.
    Reload {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Compare a snapshot with the latest one (or --against another).
    Diff {
        snapshot: i64,
        #[arg(long)]
        against: Option<i64>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Print the JSON Schema of the config file (for editors).
    Schema,
    /// Upgrade a file written for an older format version (prints it, or --write in place).
    Migrate {
        file: PathBuf,
        #[arg(long)]
        write: bool,
    },
    /// List stored snapshots of applied configurations.
    Snapshots {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Restore the config file from a snapshot (default: the one before the newest).
    Rollback {
        snapshot: Option<i64>,
        #[command(flatten)]
        server: ServerArgs,
    },
}
