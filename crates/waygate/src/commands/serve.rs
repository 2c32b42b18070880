//! `waygate serve`: build the engine from the layered configuration, open the store, load
//! plugins, and serve HTTP or stdio until a signal or end of input. The config file is
//! watched (and SIGHUP honoured) so plugin changes apply without a restart.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use waygate_core::{Engine, EngineConfig, Events, PluginRegistry};
use waygate_transport::http::{self, HttpConfig};

use super::{reload, CmdResult};
use crate::cli::{Global, ServeArgs};
use crate::config::{self, Layered};

pub fn run(g: &Global, args: ServeArgs) -> CmdResult {
    crate::logging::init(g.log.as_deref(), &g.log_format);
    let mut layered = super::load_config(g)?;
    if let Some(v) = layered.upgraded_from {
        tracing::warn!(
            from = v,
            to = config::CURRENT_VERSION,
            "config file uses an older format; upgraded in memory (run `waygate config migrate --write`)"
        );
    }
    if let Some(addr) = args.listen {
        layered.cfg.server.listen = Some(addr);
        layered.set_flag("server.listen", "--listen");
    }
    // Before any thread or child process exists: what systemd passed us.
    crate::systemd::init();
    let activated = crate::systemd::take_listener()?;
    let rt = super::runtime()?;
    let r = rt.block_on(serve(g, layered, args, activated));
    // Do not wait for threads stuck in blocking reads (stdin in `--stdio` mode after a
    // SIGTERM): everything that matters was flushed above.
    rt.shutdown_timeout(Duration::from_secs(2));
    r
}

/// The requestState key: config, else a random key kept in the data directory so state
/// survives restarts.
fn state_key(dir: &Path, l: &Layered) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    if let Some(k) = &l.cfg.mcp.state_key {
        return Ok(k.expose().as_bytes().to_vec());
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

async fn serve(g: &Global, l: Layered, args: ServeArgs, activated: Option<std::net::TcpListener>) -> CmdResult {
    let dir = super::data_dir(g);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create data directory {}: {e}", dir.display()))?;
    crate::audit_anchor::install(&l.cfg, &dir);
    // The store opens (and migrates) while the listener comes up: the MCP data path does
    // not need it, and a fresh SQLite file costs tens of milliseconds of fsyncs. A store
    // that cannot be opened still stops the process, right after.
    let (store_dir, store_url) = (dir.clone(), super::store_url(g, &l));
    // A fleet (PostgreSQL) needs the store before it serves: sessions and the requestState
    // key are shared through it, and a replica must not mint state the others cannot read.
    let fleet_store = if store_url.starts_with("postgres") {
        Some(super::open_store_at(store_dir.clone(), store_url.clone()).await?)
    } else {
        None
    };
    let state_key = match (&l.cfg.mcp.state_key, &fleet_store) {
        (None, Some(s)) => s
            .meta_claim("mcp_state_key", &waygate_core::util::random_hex(32))
            .await?
            .into_bytes(),
        _ => state_key(&dir, &l)?,
    };
    let early = fleet_store.clone();
    // Boxed errors are not `Send`; the spawned task reports a message instead.
    let store_open = async move {
        match early {
            Some(s) => Ok(s),
            None => super::open_store_at(store_dir, store_url)
                .await
                .map_err(|e| e.to_string()),
        }
    };

    let c = &l.cfg;
    let defaults = EngineConfig::default();
    let ecfg = EngineConfig {
        server_name: c.server.name.clone().unwrap_or_else(|| "waygate".into()),
        instructions: c.server.instructions.clone(),
        state_key,
        session_idle: c
            .mcp
            .session_idle_secs
            .map(Duration::from_secs)
            .unwrap_or(defaults.session_idle),
        max_sessions: c.mcp.max_sessions.unwrap_or(defaults.max_sessions),
        page_size: c.mcp.page_size.unwrap_or(defaults.page_size),
        list_ttl_ms: c.mcp.list_ttl_ms.unwrap_or(defaults.list_ttl_ms),
        validate_output: c.mcp.validate_output.unwrap_or(defaults.validate_output),
        ..defaults
    };
    let registry = Arc::new(PluginRegistry::new(Events::new(), ecfg.page_size));
    let extra = reload::CliPlugins {
        add: args.plugins.clone(),
        no_demo: args.no_demo,
    };
    let specs = crate::plugins::desired(&l.cfg, &extra.add, extra.no_demo)?;
    let names: Vec<&str> = specs.iter().map(|s| s.name()).collect();
    let manager = crate::plugins::PluginManager::new(registry.clone());
    let engine = Engine::new(ecfg, registry.clone());
    if let Some(s) = &fleet_store {
        let share = Arc::new(crate::fleet::StoreShare::new(s.clone()));
        engine.set_session_share(share.clone());
        engine.tasks.set_share(share);
        tracing::info!(
            replica = waygate_core::fleet::replica_tag(),
            "sessions, tasks and changes are shared with the other replicas on this database"
        );
        if l.cfg.audit.anchor_key.is_none() {
            tracing::warn!("[audit] anchor_key is not set: each replica signs the audit chain's head with its own <data-dir>/audit.key, so `waygate audit verify` cannot check the head; give every replica the same anchor_key");
        }
    }
    manager.set_engine(engine.clone());
    let otel = crate::otel::OtelSink::start(&l.cfg.otel)?.map(Arc::new);
    if let Some(sink) = &otel {
        engine.set_span_sink(sink.clone());
    }
    manager.set_catalog_rules(l.cfg.catalog.clone());
    engine.set_views(config::catalog::views(&l.cfg));
    // Native plugins serve from the first request; WASM plugins (pinned, compiled) join
    // once the store with their pins and remembered state is open.
    manager.apply_config(specs.clone(), l.cfg.hooks.clone(), true).await;
    engine.start_background();
    let shared = crate::security::shared_buckets(c).await?;
    // Always installed (maybe empty): a reload of `[limits]` replaces the rules in place.
    engine.set_tool_limits(crate::security::tool_limits(c, shared.clone()));
    let live_limits = crate::security::LiveLimits {
        caller: Arc::new(waygate_core::ratelimit::CallerLimit::new(
            crate::security::caller_limiter(c, shared.as_ref()),
        )),
        shared,
    };
    engine.set_policy(config::security::compile(&c.authz, &c.policies));
    engine.set_passthrough(crate::upstreams::passthrough_names(&c.upstreams));
    engine.set_body_logging(c.log.bodies.clone(), c.log.max_body_bytes.unwrap_or(4096));
    let shutdown = CancellationToken::new();

    let ready = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let audit_on = !args.no_audit && l.cfg.audit.enabled.unwrap_or(true);
    let ops = Arc::new(crate::ops::ServeOps::new(
        registry.clone(),
        l.cfg.clone(),
        ready.clone(),
        audit_on,
    ));
    let caller_limit = live_limits.caller.clone();
    let _ = ops.limits.set(live_limits);
    if let Some(b) = c.http.max_stream_buffer_bytes {
        waygate_core::outq::set_limit(b);
    }
    let api_keys = (!args.stdio && !args.no_auth).then(waygate_core::auth::ApiKeys::default);
    let backend = Arc::new(crate::admin::ServeBackend {
        ops: ops.clone(),
        reloader: std::sync::OnceLock::new(),
        writes: Default::default(),
        keys: std::sync::OnceLock::new(),
    });
    // SIGTERM/SIGINT in every mode: stop taking requests, let in-flight ones finish (HTTP
    // drains its connections, stdio stops reading and waits for its calls), then flush.
    {
        let (sig, eng) = (shutdown.clone(), engine.clone());
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutting down");
            crate::systemd::notify("STOPPING=1\nSTATUS=draining in-flight requests");
            eng.shutdown.cancel();
            // Give listen streams a moment to send their closing result.
            tokio::time::sleep(Duration::from_millis(100)).await;
            sig.cancel();
        });
    }
    tokio::spawn(crate::systemd::watchdog(shutdown.clone()));
    let mut status = String::from("serving MCP on stdio");
    let server: tokio::task::JoinHandle<std::io::Result<()>> = if args.stdio {
        tracing::info!(plugins = ?names, tools = registry.catalog().tool_count(), "serving MCP on stdio");
        let eng = engine.clone();
        let view = match args.server.as_deref() {
            None => None,
            Some(name) => Some(engine.view(name).ok_or_else(|| {
                format!(
                    "--server {name:?}: no such virtual server; configured: {}",
                    engine.view_names().join(", ")
                )
            })?),
        };
        tokio::spawn(async move {
            waygate_transport::stdio::serve_view(eng, view, tokio::io::stdin(), tokio::io::stdout()).await
        })
    } else {
        // A socket systemd passed (socket activation) wins over `server.listen`.
        let activated = activated.map(tokio::net::TcpListener::from_std).transpose()?;
        let addr = match &activated {
            Some(l) => l.local_addr()?,
            None => c.server.listen.unwrap_or_else(|| {
                config::DEFAULT_LISTEN
                    .parse()
                    .unwrap_or_else(|_| unreachable!("valid constant"))
            }),
        };
        if args.no_auth {
            if !addr.ip().is_loopback() {
                return Err(format!("--no-auth is only allowed on loopback listeners, not {addr}").into());
            }
            tracing::warn!("authentication disabled (--no-auth): every local process can call every tool");
        }
        let hosts = waygate_transport::http::OriginPolicy {
            loopback_only: addr.ip().is_loopback(),
            allowed_hosts: c.http.allowed_hosts.clone(),
            allowed_origins: c.http.allowed_origins.clone(),
        };
        hosts.check_listener(addr)?;
        if let Some(m) = c.server.metrics_listen {
            hosts
                .check_listener(m)
                .map_err(|e| format!("server.metrics_listen: {e}"))?;
        }
        let listener = match activated {
            Some(l) => {
                tracing::info!(%addr, "serving on the socket systemd passed (socket activation)");
                l
            }
            None => tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot listen on {addr}: {e}"))?,
        };
        let local = listener.local_addr()?;
        let mut hcfg = HttpConfig::for_addr(local);
        hcfg.ready = ready.clone();
        hcfg.ops = Some(ops.clone());
        hcfg.admin = Some(Arc::new(waygate_admin::Admin::new(
            backend.clone(),
            waygate_admin::AdminOptions {
                compat_routes: c.admin.compat_routes.unwrap_or(true),
            },
        )));
        if let Some(keys) = api_keys.clone() {
            let (auth, meta) = crate::security::authenticator(keys, c).await?;
            hcfg.auth = Some(auth);
            hcfg.resource_metadata = meta;
        }
        hcfg.rate = caller_limit.clone();
        hcfg.max_json_depth = c.http.max_json_depth.unwrap_or(hcfg.max_json_depth);
        hcfg.max_headers = c.http.max_headers.unwrap_or(hcfg.max_headers);
        if let Some(t) = c.http.header_timeout_secs {
            hcfg.header_timeout = Duration::from_secs(t.max(1));
        }
        if let Some(t) = c.http.body_timeout_secs {
            hcfg.body_timeout = Duration::from_secs(t.max(1));
        }
        hcfg.origins.allowed_hosts = c.http.allowed_hosts.clone();
        hcfg.origins.allowed_origins = c.http.allowed_origins.clone();
        if let Some(m) = c.http.max_body_bytes {
            hcfg.max_body_bytes = m;
        }
        if let Some(k) = c.http.keepalive_secs {
            hcfg.keepalive = Duration::from_secs(k.max(1));
        }
        if let Some(files) = c.server.tls_files() {
            let tls = waygate_transport::http::tls::Tls::new(files)?;
            tokio::spawn(tls.clone().watch(Duration::from_secs(2), shutdown.clone()));
            hcfg.tls = Some(tls);
        }
        let scheme = if hcfg.tls.is_some() { "https" } else { "http" };
        let mut metrics_line = None;
        if let Some(maddr) = c.server.metrics_listen {
            let ml = tokio::net::TcpListener::bind(maddr)
                .await
                .map_err(|e| format!("cannot listen on server.metrics_listen {maddr}: {e}"))?;
            let bound = ml.local_addr()?;
            tracing::info!(%bound, "serving /metrics without authentication on a separate listener");
            let o: Arc<dyn waygate_transport::http::Operations> = ops.clone();
            let mut mhosts = hosts.clone();
            mhosts.loopback_only = bound.ip().is_loopback();
            tokio::spawn(waygate_transport::http::serve_metrics(
                ml,
                mhosts,
                engine.clone(),
                Some(o),
                shutdown.clone(),
            ));
            metrics_line = Some(format!("Metrics on http://{bound}/metrics"));
        }
        println!("Waygate listening on {scheme}://{local}/mcp (legacy SSE: {scheme}://{local}/sse)");
        if let Some(l) = metrics_line.take() {
            println!("{l}");
        }
        tracing::info!(%local, plugins = ?names, tools = registry.catalog().tool_count(), data_dir = %dir.display(), "serving MCP over HTTP");
        status = format!("serving MCP on {scheme}://{local}/mcp");
        tokio::spawn(http::serve(listener, engine.clone(), hcfg, shutdown.clone()))
    };

    // Started only now, after the listener is up, so on a single core the first requests
    // are not queued behind SQLite's file creation.
    let store = match tokio::spawn(store_open).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            shutdown.cancel();
            return Err(e.into());
        }
        Err(e) => {
            shutdown.cancel();
            return Err(format!("store initialization panicked: {e}").into());
        }
    };
    tracing::info!(
        store = store.url(),
        schema = store.schema_version().await?,
        "store ready"
    );
    let snapshot = l
        .raw
        .clone()
        .unwrap_or_else(|| toml::to_string(&l.cfg).unwrap_or_default());
    store.snapshot_config("start", &snapshot).await?;
    let pins = crate::plugins::pinning::PinGate::open(&l.cfg.pinning, store.clone()).await;
    manager
        .restore(store.clone(), pins, specs.clone(), l.cfg.hooks.clone(), &l.cfg.outbound)
        .await;
    if let Some(keys) = &api_keys {
        if let Some(k) = l.cfg.auth.admin_key.as_ref() {
            super::keys::provision_admin_key(&store, k.expose()).await?;
        } else if let Some(k) = super::keys::first_admin_key(&store).await? {
            println!(
                "Created the first API key (name \"admin\", scopes admin,mcp). It is shown only once; store it now:"
            );
            println!("WAYGATE_API_KEY={k}");
            println!("Send it as: Authorization: Bearer $WAYGATE_API_KEY   (manage keys with `waygate keys`)");
        }
        tokio::spawn(super::keys::keep_fresh(store.clone(), keys.clone(), shutdown.clone()));
        let _ = backend.keys.set((store.clone(), keys.clone()));
        // Serve authenticated requests only once the table is loaded.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while keys.is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let _ = ops.store.set(store.clone());
    let _ = ops.plugins.set(manager.clone());
    let _ = ops.engine.set(engine.clone());
    ops.runtime_servers.restore(&store).await;
    engine.set_views(ops.views());
    crate::fleet::Fleet {
        store: store.clone(),
        ops: ops.clone(),
        engine: engine.clone(),
        keys: api_keys.clone(),
        backend: backend.clone(),
    }
    .start(shutdown.clone());
    let (audit, audit_task) =
        crate::audit_queue::AuditQueue::start(store.clone(), l.cfg.audit.queue_capacity.unwrap_or(10_000));
    let _ = ops.audit.set(audit.clone());
    if audit_on {
        engine.set_audit(audit.clone());
        engine.set_audit_arguments(l.cfg.audit.log_arguments.clone());
    } else {
        tracing::warn!("audit trail disabled: tool calls are not recorded");
    }
    ready.store(true, std::sync::atomic::Ordering::Release);
    crate::systemd::notify(&format!("READY=1\nSTATUS={status}"));
    // Start-up's code (config, migrations, schema compilation) will not run again; what
    // serving needs comes back with a minor fault. A second after ready, once.
    tokio::spawn(async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        // Reading /proc/self/smaps and madvise block: off the runtime's workers.
        if let Ok(released) = tokio::task::spawn_blocking(waygate_core::memory::release_startup_pages).await {
            tracing::debug!(kb = released / 1024, "start-up code released from the page tables");
        }
    });
    // While the database is unreachable: MCP calls keep being served (nothing on the request
    // path needs the store; API keys keep their last loaded table), `/ready` answers 503 so a
    // load balancer can prefer healthy replicas, and config snapshots are skipped with a warning.
    {
        let (store, ready, stop) = (store.clone(), ready.clone(), shutdown.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let ok = tokio::time::timeout(Duration::from_secs(2), store.ping())
                    .await
                    .is_ok_and(|r| r.is_ok());
                if ready.swap(ok, std::sync::atomic::Ordering::AcqRel) != ok {
                    if ok {
                        tracing::info!("store reachable again");
                    } else {
                        tracing::error!("store unreachable; still serving MCP, /ready reports 503");
                    }
                }
            }
        });
    }
    // Without a file: the one `serve` would read by default, created by the first write
    // through the admin API (or by hand) and applied from then on.
    let path = l.path.clone().unwrap_or_else(|| dir.join("waygate.toml"));
    let reloader = reload::Reloader::new(path, l.clone(), extra, manager.clone(), engine.clone(), ops.clone());
    let _ = backend.reloader.set(reloader.clone());
    tokio::spawn(reload::watch(reloader, shutdown.clone()));

    let served = server.await.map_err(|e| format!("server task failed: {e}"))?;
    // Everything acknowledged to a client is in the audit queue: drain it before exiting.
    audit.close();
    let _ = tokio::time::timeout(Duration::from_secs(15), audit_task).await;
    tracing::info!(
        written = audit.written.load(std::sync::atomic::Ordering::Relaxed),
        dropped = audit.dropped.load(std::sync::atomic::Ordering::Relaxed),
        "audit queue flushed"
    );
    shutdown.cancel();
    engine.shutdown.cancel();
    engine.sessions.close_all();
    registry.shutdown_all().await;
    if let Some(sink) = otel {
        // Flushing waits for the exporter: off the async threads.
        let _ = tokio::task::spawn_blocking(move || sink.shutdown()).await;
    }
    store.close().await;
    served?;
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
