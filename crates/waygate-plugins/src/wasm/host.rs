//! Host functions a guest may import from the `waygate` module, and the guest-memory
//! helpers they share with the call path. Every pointer and length from a guest is
//! bounds-checked; a bad one is an error for that call, never a host panic.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use wasmtime::{AsContextMut, Caller, Extern, Memory};

use super::runtime::HostState;

/// Largest response body `http_request` hands to a guest.
const MAX_HTTP_BODY: usize = 1 << 20;
/// Longest log message kept.
const MAX_LOG: usize = 4096;

/// What a plugin was granted beyond WASI (which is configured on its context).
pub(crate) struct Caps {
    pub plugin: String,
    pub http_hosts: Vec<String>,
    pub client: Option<reqwest::Client>,
}

/// `log(level, ptr, len)`: 0 error, 1 warn, 2 info, 3 debug, else trace.
pub(crate) fn log(mut caller: Caller<'_, HostState>, level: i32, ptr: i32, len: i32) {
    let Some(mem) = memory(&mut caller) else { return };
    let Some(bytes) = slice(mem.data(&caller), ptr, len) else {
        return;
    };
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_LOG)]).into_owned();
    let plugin = caller.data().caps.plugin.as_str();
    match level {
        0 => tracing::error!(plugin, "{text}"),
        1 => tracing::warn!(plugin, "{text}"),
        2 => tracing::info!(plugin, "{text}"),
        3 => tracing::debug!(plugin, "{text}"),
        _ => tracing::trace!(plugin, "{text}"),
    }
}

/// `http_request(ptr, len) -> packed`: the request is JSON
/// `{"method","url","headers","body"}`; the answer JSON `{"status","headers","body"}` or
/// `{"error"}` is written into memory the guest allocates. Only allowed hosts, through
/// the SSRF guard, within what is left of the call's time limit.
pub(crate) async fn http_request(mut caller: Caller<'_, HostState>, ptr: i32, len: i32) -> i64 {
    let request = memory(&mut caller)
        .and_then(|m| slice(m.data(&caller), ptr, len).map(<[u8]>::to_vec))
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
    let remaining = caller.data().deadline.saturating_duration_since(Instant::now());
    let answer = match request {
        None => json!({"error": "request is not valid JSON in guest memory"}),
        Some(req) => match fetch(&caller.data().caps, &req, remaining).await {
            Ok(v) => v,
            Err(e) => json!({"error": e}),
        },
    };
    let bytes = serde_json::to_vec(&answer).unwrap_or_default();
    write_guest(&mut caller, &bytes).await.unwrap_or(0)
}

async fn fetch(caps: &Caps, req: &Value, remaining: Duration) -> Result<Value, String> {
    let client = caps
        .client
        .as_ref()
        .ok_or("network capability not granted (set http_hosts)")?;
    let r = crate::outbound::fetch(client, &caps.http_hosts, req, remaining, MAX_HTTP_BODY).await?;
    Ok(
        json!({"status": r.status, "headers": r.headers, "body": String::from_utf8_lossy(&r.body), "truncated": r.truncated}),
    )
}

pub(crate) fn memory(caller: &mut Caller<'_, HostState>) -> Option<Memory> {
    match caller.get_export("memory") {
        Some(Extern::Memory(m)) => Some(m),
        _ => None,
    }
}

/// `data[ptr..ptr+len]` if it is inside the memory.
pub(crate) fn slice(data: &[u8], ptr: i32, len: i32) -> Option<&[u8]> {
    let start = usize::try_from(ptr as u32).ok()?;
    let len = usize::try_from(len as u32).ok()?;
    data.get(start..start.checked_add(len)?)
}

/// Copy `bytes` into a buffer from the guest's `waygate_alloc`; the packed pointer/length.
async fn write_guest(caller: &mut Caller<'_, HostState>, bytes: &[u8]) -> Option<i64> {
    let alloc = match caller.get_export("waygate_alloc") {
        Some(Extern::Func(f)) => f.typed::<i32, i32>(&*caller).ok()?,
        _ => return None,
    };
    let len = i32::try_from(bytes.len()).ok()?;
    let ptr = alloc.call_async(caller.as_context_mut(), len).await.ok()?;
    let mem = memory(caller)?;
    mem.write(caller.as_context_mut(), ptr as u32 as usize, bytes).ok()?;
    Some(pack(ptr, len))
}

pub(crate) fn pack(ptr: i32, len: i32) -> i64 {
    (((ptr as u32 as u64) << 32) | len as u32 as u64) as i64
}

pub(crate) fn unpack(v: i64) -> (u32, u32) {
    let v = v as u64;
    ((v >> 32) as u32, v as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_round_trips_and_slices_are_bounded() {
        assert_eq!(unpack(pack(0x1234, 77)), (0x1234, 77));
        assert_eq!(unpack(pack(-1, -1)), (u32::MAX, u32::MAX));
        let data = [1u8, 2, 3, 4];
        assert_eq!(slice(&data, 1, 2), Some(&data[1..3]));
        assert_eq!(slice(&data, 3, 2), None);
        assert_eq!(slice(&data, -1, 1), None);
        assert_eq!(slice(&data, 0, -1), None);
    }
}
