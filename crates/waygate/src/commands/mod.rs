//! One module per subcommand, and what they share: finding the data directory, loading
//! the layered configuration, opening the store.

mod audit;
mod catalog;
mod config_cmd;
mod connect;
mod db;
mod doctor;
mod import;
pub(crate) mod keys;
mod plugins;
mod policies;
mod progress;
pub(crate) mod reload;
mod remote;
mod remote_admin;
pub(crate) mod secrets;
mod serve;
mod state;
mod upstreams;

use std::path::PathBuf;

use crate::cli::{Cli, Command, Global};
use crate::config::{self, Layered};

pub type CmdResult = Result<(), Box<dyn std::error::Error>>;

pub fn dispatch(cli: Cli) -> CmdResult {
    match cli.command {
        Command::Serve(args) => serve::run(&cli.global, args),
        Command::Plugins { command } => plugins::run(&cli.global, command),
        Command::Upstreams { command } => upstreams::run(&cli.global, command),
        Command::Config { command } => config_cmd::run(&cli.global, command),
        Command::Db { command } => db::run(&cli.global, command),
        Command::Import(args) => import::run(&cli.global, args),
        Command::Keys { command } => keys::run(&cli.global, command),
        Command::Doctor => doctor::run(&cli.global),
        Command::Secrets { command } => secrets::run(&cli.global, command),
        Command::Audit { command } => audit::run(&cli.global, command),
        Command::Export { out } => state::export(&cli.global, out),
        Command::ImportState { file, dry_run } => state::import_state(&cli.global, file, dry_run),
        Command::Servers { command } => catalog::servers(&cli.global, command),
        Command::Catalog { command } => catalog::catalog(&cli.global, command),
        Command::Pins { command } => catalog::pins(&cli.global, command),
        Command::Policies { command, server } => policies::policies(&cli.global, command, server),
        Command::Limits { command, server } => policies::limits(&cli.global, command, server),
        Command::Connect(args) => connect::run(&cli.global, args),
        Command::Health { url, ready } => health(&cli.global, url, ready),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            use std::io::Write;
            // Into memory first: clap_complete panics when its writer fails (`| head`).
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "waygate", &mut script);
            match std::io::stdout().write_all(&script) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
                _ => Ok(()),
            }
        }
    }
}

/// The data directory: flag/env, else `./waygate-data`.
pub(crate) fn data_dir(g: &Global) -> PathBuf {
    g.data_dir.clone().unwrap_or_else(|| PathBuf::from("waygate-data"))
}

/// Defaults < file < environment; flags are applied by each command.
pub(crate) fn load_config(g: &Global) -> Result<Layered, config::ConfigError> {
    let dir = data_dir(g);
    let mut l = config::layers_load(
        config::resolve_path(g.config.as_deref(), &dir).as_deref(),
        &config::env_overrides(),
    )?;
    if let Some(url) = &g.database_url {
        l.cfg.store.url = Some(waygate_security::Secret::new(url.clone()));
        l.set_flag("store.url", "--database-url / WAYGATE_DATABASE_URL");
    }
    Ok(l)
}

/// The store URL in effect: config/flag, else a SQLite file in the data directory.
pub(crate) fn store_url(g: &Global, l: &Layered) -> String {
    l.cfg
        .store
        .url
        .as_ref()
        .map(|u| u.expose().to_string())
        .unwrap_or_else(|| format!("sqlite://{}/waygate.db", data_dir(g).display()))
}

pub(crate) fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build()
}

/// Open the store, creating the data directory for SQLite, and migrate it.
pub(crate) async fn open_store(g: &Global, l: &Layered) -> Result<waygate_store::Store, Box<dyn std::error::Error>> {
    crate::audit_anchor::install(&l.cfg, &data_dir(g));
    open_store_at(data_dir(g), store_url(g, l)).await
}

pub(crate) async fn open_store_at(
    dir: PathBuf,
    url: String,
) -> Result<waygate_store::Store, Box<dyn std::error::Error>> {
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create data directory {}: {e}", dir.display()))?;
    Ok(waygate_store::Store::open_migrated(&url).await?)
}

/// `waygate health`: exit 0 when `/health` (or `/ready`) answers 200 within 5 s.
fn health(g: &Global, url: Option<String>, ready: bool) -> CmdResult {
    let base = match url {
        Some(u) => u.trim_end_matches('/').to_string(),
        None => {
            let cfg = load_config(g)?.cfg;
            let addr = std::env::var("WAYGATE_LISTEN")
                .ok()
                .or_else(|| cfg.server.listen.map(|a| a.to_string()))
                .unwrap_or_else(|| config::DEFAULT_LISTEN.to_string());
            // A wildcard listener is reached on loopback from inside the container.
            let addr = addr.replace("0.0.0.0:", "127.0.0.1:").replace("[::]:", "[::1]:");
            let scheme = if cfg.server.tls_cert.is_some() { "https" } else { "http" };
            format!("{scheme}://{addr}")
        }
    };
    let url = format!("{base}/{}", if ready { "ready" } else { "health" });
    runtime()?.block_on(async {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(std::time::Duration::from_secs(5))
            // The certificate names the public host, not 127.0.0.1: a liveness probe only
            // asks whether the process answers.
            .danger_accept_invalid_certs(true)
            .build()?;
        let status = client
            .get(&url)
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?
            .status();
        if !status.is_success() {
            return Err(format!("{url}: {status}").into());
        }
        println!("{url}: {status}");
        Ok(())
    })
}
