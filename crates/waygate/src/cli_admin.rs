//! Command-line definition of the commands that only talk to a running server's admin API
//! (virtual servers, the catalog, pins, policies and limits) and of `waygate connect`.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use crate::cli::ServerArgs;

#[derive(Subcommand, Debug)]
pub enum ServersCommand {
    /// Every virtual server (config file and runtime) with its tools.
    List {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// One virtual server: its entry and the tools it exposes.
    Show {
        name: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Add a runtime virtual server, or replace one added earlier (kept across restarts).
    Add {
        name: String,
        /// Tools to include: PLUGIN/TOOL-GLOB (`github/*issue*`, `demo/echo`) or a whole
        /// plugin or upstream by name (repeatable).
        #[arg(long = "include", value_name = "PLUGIN[/GLOB]")]
        include: Vec<String>,
        /// Tools to leave out, same form as --include (repeatable).
        #[arg(long = "exclude", value_name = "PLUGIN[/GLOB]")]
        exclude: Vec<String>,
        /// Include every tool with this tag (repeatable).
        #[arg(long = "tag", value_name = "TAG")]
        tags: Vec<String>,
        #[arg(long)]
        title: Option<String>,
        #[arg(long)]
        instructions: Option<String>,
        /// Only credentials with this scope may enter (repeatable).
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
        /// Replace an existing runtime virtual server instead of adding one.
        #[arg(long)]
        replace: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Remove a runtime virtual server.
    Rm {
        name: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum CatalogCommand {
    /// Tools with their exposed and original names, origin and pin state.
    Tools {
        /// Search names, titles and descriptions.
        #[arg(long, short)]
        query: Option<String>,
        /// Only tools from this plugin or upstream.
        #[arg(long)]
        origin: Option<String>,
        #[arg(long)]
        tag: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// One tool's full definition.
    Show {
        name: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Resources and resource templates.
    Resources {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Prompts.
    Prompts {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Call a tool over the REST API (same checks and audit as MCP); prints the result.
    Call {
        name: String,
        /// The arguments as a JSON object.
        #[arg(long, default_value = "{}")]
        args: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum PinsCommand {
    /// Held definitions with the keys that changed.
    List {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// The held definition against the approved one, line by line.
    Diff {
        plugin: String,
        tool: String,
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

/// `waygate policies …` and `waygate limits …`: one section of the running server's
/// configuration, changed without rewriting the rest of its file.
#[derive(Subcommand, Debug)]
pub enum SectionCommand {
    /// What the server applies now (the default).
    Show {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Replace the section: validated like the configuration file, written into it,
    /// snapshotted and applied without a restart.
    Set {
        /// TOML as in the configuration file (`[authz]` + `[[policies]]`, or `[limits]`;
        /// other sections of the file are ignored) or JSON as `--json` prints it.
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
        #[command(flatten)]
        server: ServerArgs,
    },
}

/// MCP clients whose configuration `waygate connect` writes.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Client {
    ClaudeDesktop,
    ClaudeCode,
    Cursor,
    Vscode,
    Windsurf,
}

#[derive(Args, Debug)]
pub struct ConnectArgs {
    pub client: Client,
    /// The client's configuration file (default: where the client keeps it).
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Connect to this virtual server's view (`/servers/NAME/mcp`, or `serve --stdio --server NAME`).
    #[arg(long, value_name = "NAME")]
    pub server: Option<String>,
    /// Have the client start `waygate serve --stdio` itself instead of using the HTTP endpoint.
    #[arg(long)]
    pub stdio: bool,
    /// The entry's name in the client's file.
    #[arg(long, default_value = "waygate")]
    pub name: String,
    /// Base URL of this Waygate (default: http://<server.listen from the config>).
    #[arg(long, env = "WAYGATE_URL", value_name = "URL")]
    pub url: Option<String>,
    /// Write the key from WAYGATE_API_KEY into the file instead of a reference to the
    /// WAYGATE_API_KEY environment variable (or, for VS Code, a password prompt).
    #[arg(long)]
    pub embed_key: bool,
    /// Show the diff; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}
