//! The one wasmtime engine every WASM plugin shares, its epoch ticker, and the linker
//! with the host functions a guest may import (WASI preview 1 and `waygate.*`).
//!
//! Time limits use epoch interruption rather than fuel: it costs one load and compare
//! per loop back-edge instead of counting every instruction, and it measures wall time,
//! which is what a caller waits for. Each tick the store's callback checks its own
//! deadline and yields to the executor, so a spinning guest never holds a runtime thread.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use wasmtime::{Caller, Config, Engine, Linker, ResourceLimiter};
use wasmtime_wasi::p1::WasiP1Ctx;

use super::host;

/// How often the epoch advances; the granularity of time limits.
pub(crate) const TICK: Duration = Duration::from_millis(2);

/// Per-store state: WASI context, limits and the capabilities of the plugin.
pub(crate) struct HostState {
    pub wasi: WasiP1Ctx,
    pub limits: MemoryCap,
    pub deadline: Instant,
    pub caps: Arc<host::Caps>,
}

/// Refuses memory growth past the plugin's cap with an error naming the cap, which traps
/// the call (a plain `-1` from `memory.grow` would leave most guests to crash vaguely).
pub(crate) struct MemoryCap {
    pub bytes: usize,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.bytes {
            return Err(wasmtime::format_err!(
                "memory limit of {} MiB reached (asked for {} MiB)",
                self.bytes >> 20,
                desired.div_ceil(1 << 20)
            ));
        }
        Ok(true)
    }
    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

pub(crate) struct Runtime {
    pub engine: Engine,
    pub linker: Linker<HostState>,
}

static RUNTIME: OnceLock<Result<Arc<Runtime>, String>> = OnceLock::new();

/// The shared runtime, built on first use (a server without WASM plugins never pays).
pub(crate) fn get() -> Result<Arc<Runtime>, String> {
    RUNTIME
        .get_or_init(|| build().map(Arc::new).map_err(|e| e.to_string()))
        .clone()
}

fn build() -> wasmtime::Result<Runtime> {
    let mut config = Config::new();
    config.epoch_interruption(true);
    config.max_wasm_stack(512 << 10);
    let engine = Engine::new(&config)?;
    let ticker = engine.clone();
    std::thread::Builder::new()
        .name("wasm-epoch".into())
        .spawn(move || loop {
            std::thread::sleep(TICK);
            ticker.increment_epoch();
        })
        .map_err(|e| wasmtime::format_err!("cannot start the epoch thread: {e}"))?;
    let mut linker: Linker<HostState> = Linker::new(&engine);
    wasmtime_wasi::p1::add_to_linker_async(&mut linker, |s: &mut HostState| &mut s.wasi)?;
    linker.func_wrap(
        "waygate",
        "log",
        |caller: Caller<'_, HostState>, level: i32, ptr: i32, len: i32| host::log(caller, level, ptr, len),
    )?;
    linker.func_wrap_async(
        "waygate",
        "http_request",
        |caller: Caller<'_, HostState>, (ptr, len): (i32, i32)| Box::new(host::http_request(caller, ptr, len)),
    )?;
    Ok(Runtime { engine, linker })
}
