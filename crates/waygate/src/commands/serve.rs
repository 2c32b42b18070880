//! `waygate serve`: build the engine from the layered configuration, load plugins, and
//! serve HTTP or stdio until a signal or end of input.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use waygate_core::{Engine, EngineConfig, Events, PluginRegistry};
use waygate_transport::http::{self, HttpConfig};

use crate::cli::{Global, ServeArgs};
use crate::config::{self, FileConfig};

pub fn run(g: &Global, args: ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
    init_logging(g.log.as_deref());
    let dir = super::data_dir(g);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create data directory {}: {e}", dir.display()))?;
    let cfg_path = config::resolve_path(g.config.as_deref(), &dir);
    let file = config::load(cfg_path.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(serve(&dir, file, args))
}

fn init_logging(filter: Option<&str>) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter.unwrap_or("info"))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // stderr only: stdout belongs to the protocol in --stdio mode.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// The requestState key: config, else a random key kept in the data directory so state
/// survives restarts.
fn state_key(dir: &Path, file: &FileConfig) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    if let Some(k) = &file.mcp.state_key {
        return Ok(k.as_bytes().to_vec());
    }
    let path = dir.join("state.key");
    if let Ok(k) = std::fs::read_to_string(&path) {
        if k.trim().len() >= 32 {
            return Ok(k.trim().as_bytes().to_vec());
        }
    }
    let k = waygate_core::util::random_hex(32);
    std::fs::write(&path, &k).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    }
    Ok(k.into_bytes())
}

async fn serve(dir: &Path, file: FileConfig, args: ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
    let defaults = EngineConfig::default();
    let ecfg = EngineConfig {
        server_name: file.server.name.clone().unwrap_or_else(|| "waygate".into()),
        instructions: file.server.instructions.clone(),
        state_key: state_key(dir, &file)?,
        session_idle: file
            .mcp
            .session_idle_secs
            .map(Duration::from_secs)
            .unwrap_or(defaults.session_idle),
        max_sessions: file.mcp.max_sessions.unwrap_or(defaults.max_sessions),
        page_size: file.mcp.page_size.unwrap_or(defaults.page_size),
        list_ttl_ms: file.mcp.list_ttl_ms.unwrap_or(defaults.list_ttl_ms),
        ..defaults
    };
    let registry = Arc::new(PluginRegistry::new(Events::new(), ecfg.page_size));
    let mut names: Vec<String> = Vec::new();
    if !args.no_demo && file.plugins.demo.unwrap_or(true) {
        names.push("demo".into());
    }
    names.extend(file.plugins.enabled.iter().cloned());
    names.extend(args.plugins.iter().cloned());
    names.dedup();
    for name in &names {
        let plugin = waygate_plugins::builtin(name).ok_or_else(|| {
            format!(
                "unknown plugin {name:?}; expected one of {}",
                waygate_plugins::BUILTIN.join(", ")
            )
        })?;
        if let Err(e) = registry.load(plugin, serde_json::json!({})).await {
            tracing::error!(plugin = %name, error = %e, "plugin not loaded; continuing without it");
        }
    }
    let engine = Engine::new(ecfg, registry.clone());
    engine.start_background();

    if args.stdio {
        tracing::info!(plugins = ?names, tools = registry.catalog().tool_count(), "serving MCP on stdio");
        waygate_transport::stdio::serve(engine.clone(), tokio::io::stdin(), tokio::io::stdout()).await?;
        engine.shutdown.cancel();
        registry.shutdown_all().await;
        return Ok(());
    }

    let addr = args
        .listen
        .or(file.server.listen)
        .unwrap_or_else(|| config::DEFAULT_LISTEN.parse().unwrap_or_else(|_| unreachable!()));
    if args.no_auth {
        if !addr.ip().is_loopback() {
            return Err(format!("--no-auth is only allowed on loopback listeners, not {addr}").into());
        }
        tracing::warn!("authentication disabled (--no-auth): every local process can call every tool");
    } else {
        tracing::warn!("API-key authentication is not available in this build yet; bind to loopback only");
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr()?;
    let mut hcfg = HttpConfig::for_addr(local);
    hcfg.origins.allowed_hosts = file.http.allowed_hosts.clone();
    hcfg.origins.allowed_origins = file.http.allowed_origins.clone();
    if let Some(m) = file.http.max_body_bytes {
        hcfg.max_body_bytes = m;
    }
    if let Some(k) = file.http.keepalive_secs {
        hcfg.keepalive = Duration::from_secs(k.max(1));
    }
    let shutdown = CancellationToken::new();
    let sig = shutdown.clone();
    let eng = engine.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        eng.shutdown.cancel();
        // Give listen streams a moment to send their closing result.
        tokio::time::sleep(Duration::from_millis(100)).await;
        sig.cancel();
    });
    println!("Waygate listening on http://{local}/mcp (legacy SSE: http://{local}/sse)");
    tracing::info!(%local, plugins = ?names, tools = registry.catalog().tool_count(), data_dir = %dir.display(), "serving MCP over HTTP");
    http::serve(listener, engine.clone(), hcfg, shutdown).await?;
    engine.sessions.close_all();
    registry.shutdown_all().await;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
