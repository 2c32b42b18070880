//! One warm guest instance (a store with its exports resolved) and the call protocol:
//! the host asks the guest for a buffer (`waygate_alloc`), writes the JSON request,
//! calls the entry point, reads the packed `(ptr << 32) | len` answer, and hands the
//! buffer back (`waygate_free`, when exported).

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::{Extern, InstancePre, Memory, Store, TypedFunc, UpdateDeadline};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use super::host::{self, Caps};
use super::runtime::{HostState, MemoryCap, Runtime};
use super::spec::{split_dir, WasmSpec};

pub(crate) struct Slot {
    store: Store<HostState>,
    memory: Memory,
    alloc: TypedFunc<i32, i32>,
    free: Option<TypedFunc<(i32, i32), ()>>,
    init: TypedFunc<(i32, i32), i64>,
    call: TypedFunc<(i32, i32), i64>,
}

/// A wall clock stopped at the epoch, for guests not granted the time of day.
struct StoppedClock;

impl wasmtime_wasi::HostWallClock for StoppedClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

/// The WASI context a spec grants: nothing unless named.
fn wasi_for(spec: &WasmSpec) -> Result<wasmtime_wasi::p1::WasiP1Ctx, String> {
    let mut b = WasiCtxBuilder::new();
    for d in &spec.fs_read {
        let (host_dir, guest) = split_dir(d);
        b.preopened_dir(host_dir, guest, FsPerms::ReadOnly)
            .map_err(|e| format!("fs_read {host_dir:?}: {e}"))?;
    }
    for name in &spec.env {
        if let Ok(v) = std::env::var(name) {
            b.env(name, v);
        }
    }
    if !spec.wall_clock {
        b.wall_clock(StoppedClock);
    }
    Ok(b.build_p1())
}

fn need<T>(f: Option<T>, name: &str) -> Result<T, String> {
    f.ok_or_else(|| format!("module does not export {name:?}"))
}

fn typed<P: wasmtime::WasmParams, R: wasmtime::WasmResults>(
    store: &mut Store<HostState>,
    inst: &wasmtime::Instance,
    name: &str,
) -> Result<Option<TypedFunc<P, R>>, String> {
    match inst.get_export(&mut *store, name) {
        Some(Extern::Func(f)) => f
            .typed::<P, R>(&*store)
            .map(Some)
            .map_err(|e| format!("export {name:?} has the wrong signature: {e}")),
        Some(_) => Err(format!("export {name:?} is not a function")),
        None => Ok(None),
    }
}

impl Slot {
    /// Instantiate, run `_initialize` (reactor modules) and resolve the ABI exports.
    pub async fn new(
        rt: &Runtime,
        pre: &InstancePre<HostState>,
        spec: &WasmSpec,
        caps: Arc<Caps>,
    ) -> Result<Slot, String> {
        let state = HostState {
            wasi: wasi_for(spec)?,
            limits: MemoryCap {
                bytes: (spec.memory_mib as usize) << 20,
            },
            deadline: Instant::now() + Duration::from_millis(spec.time_ms),
            caps,
        };
        let mut store = Store::new(&rt.engine, state);
        store.limiter(|s| &mut s.limits);
        store.epoch_deadline_callback(|ctx| {
            if Instant::now() >= ctx.data().deadline {
                Err(wasmtime::format_err!(TimeLimit))
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        store.set_epoch_deadline(1);
        let inst = pre.instantiate_async(&mut store).await.map_err(|e| describe(&e))?;
        let memory = match inst.get_export(&mut store, "memory") {
            Some(Extern::Memory(m)) => m,
            _ => return Err("module exports no memory named \"memory\"".into()),
        };
        if let Some(start) = typed::<(), ()>(&mut store, &inst, "_initialize")? {
            start.call_async(&mut store, ()).await.map_err(|e| describe(&e))?;
        }
        let alloc = need(typed(&mut store, &inst, "waygate_alloc")?, "waygate_alloc")?;
        let init = need(typed(&mut store, &inst, "waygate_init")?, "waygate_init")?;
        let call = need(typed(&mut store, &inst, "waygate_call")?, "waygate_call")?;
        let free = typed(&mut store, &inst, "waygate_free")?;
        Ok(Slot {
            store,
            memory,
            alloc,
            free,
            init,
            call,
        })
    }

    /// Call `waygate_init` with the settings; the guest's manifest JSON.
    pub async fn init(&mut self, input: &[u8], time: Duration, max_out: usize) -> Result<Vec<u8>, String> {
        let f = self.init.clone();
        self.exchange(&f, input, time, max_out).await
    }

    /// Call `waygate_call`; the guest's answer JSON.
    pub async fn call(&mut self, input: &[u8], time: Duration, max_out: usize) -> Result<Vec<u8>, String> {
        let f = self.call.clone();
        self.exchange(&f, input, time, max_out).await
    }

    async fn exchange(
        &mut self,
        entry: &TypedFunc<(i32, i32), i64>,
        input: &[u8],
        time: Duration,
        max_out: usize,
    ) -> Result<Vec<u8>, String> {
        self.store.data_mut().deadline = Instant::now() + time;
        self.store.set_epoch_deadline(1);
        let len = i32::try_from(input.len()).map_err(|_| "request too large for a 32-bit guest".to_string())?;
        let ptr = self
            .alloc
            .call_async(&mut self.store, len)
            .await
            .map_err(|e| describe(&e))?;
        self.memory
            .write(&mut self.store, ptr as u32 as usize, input)
            .map_err(|_| "waygate_alloc returned a buffer outside memory".to_string())?;
        let packed = entry.call_async(&mut self.store, (ptr, len)).await.map_err(|e| {
            let why = describe(&e);
            if why == TimeLimit.to_string() {
                format!("stopped at its time limit of {} ms", time.as_millis())
            } else {
                why
            }
        })?;
        let (optr, olen) = host::unpack(packed);
        if olen as usize > max_out {
            return Err(format!("answer of {olen} bytes exceeds max_output_bytes ({max_out})"));
        }
        let out = host::slice(self.memory.data(&self.store), optr as i32, olen as i32)
            .ok_or("answer pointer is outside memory")?
            .to_vec();
        // Both buffers go back to the guest's allocator (the guest must not free them).
        if let Some(free) = &self.free {
            free.call_async(&mut self.store, (ptr, len))
                .await
                .map_err(|e| describe(&e))?;
            free.call_async(&mut self.store, (optr as i32, olen as i32))
                .await
                .map_err(|e| describe(&e))?;
        }
        Ok(out)
    }
}

/// Marker error raised by the epoch callback.
#[derive(Debug)]
struct TimeLimit;

impl std::fmt::Display for TimeLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("time limit exceeded")
    }
}

/// A trap or host error as one line: the root cause, without wasmtime's backtrace.
fn describe(e: &wasmtime::Error) -> String {
    if let Some(t) = e.downcast_ref::<wasmtime::Trap>() {
        return format!("trap: {t}");
    }
    let root = e.chain().last().map_or_else(|| e.to_string(), |r| r.to_string());
    root.lines().next().unwrap_or_default().to_string()
}
