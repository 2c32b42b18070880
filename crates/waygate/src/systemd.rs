//! systemd integration without libsystemd: the notify protocol (`READY=1`, `STATUS=`,
//! `RELOADING=1`, `STOPPING=1`, watchdog pings) as datagrams to `$NOTIFY_SOCKET`, and socket
//! activation (`LISTEN_FDS`). Every call is a no-op when systemd did not start us, so the
//! same binary runs under systemd, in a container or from a shell.

use std::ffi::OsString;
use std::sync::OnceLock;
use std::time::Duration;

/// `NOTIFY_SOCKET` and the watchdog settings, read once and removed from the environment
/// so stdio upstreams (which may be Waygates themselves) do not talk to our supervisor.
struct Env {
    socket: Option<OsString>,
    watchdog: Option<Duration>,
}

static ENV: OnceLock<Env> = OnceLock::new();

fn env() -> &'static Env {
    ENV.get_or_init(|| {
        let socket = std::env::var_os("NOTIFY_SOCKET");
        let watchdog = watchdog_from_env();
        for k in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] {
            std::env::remove_var(k);
        }
        Env { socket, watchdog }
    })
}

/// Read the supervisor's settings now (call at start, before anything spawns children).
pub fn init() {
    let _ = env();
}

/// Send one notification; errors are logged, never fatal (a lost `STATUS=` must not stop
/// the server).
pub fn notify(state: &str) {
    let Some(path) = &env().socket else { return };
    if let Err(e) = send(path, state) {
        tracing::debug!(error = %e, state, "sd_notify failed");
    }
}

#[cfg(unix)]
fn send(path: &std::ffi::OsStr, state: &str) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::UnixDatagram;
    let sock = UnixDatagram::unbound()?;
    let bytes = path.as_bytes();
    // `@name` is a socket in the abstract namespace (Linux).
    #[cfg(target_os = "linux")]
    if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        sock.send_to_addr(state.as_bytes(), &addr)?;
        return Ok(());
    }
    sock.send_to(state.as_bytes(), std::path::Path::new(path))?;
    Ok(())
}

#[cfg(not(unix))]
fn send(_: &std::ffi::OsStr, _: &str) -> std::io::Result<()> {
    Ok(())
}

/// `STATUS=` text shown by `systemctl status`.
pub fn status(text: &str) {
    notify(&format!("STATUS={}", text.replace('\n', " ")));
}

/// `RELOADING=1` with the monotonic timestamp systemd ≥ 253 asks for.
pub fn reloading() {
    notify(&format!("RELOADING=1\nMONOTONIC_USEC={}", monotonic_usec()));
}

fn monotonic_usec() -> u128 {
    // CLOCK_MONOTONIC as seen through /proc/uptime is close enough for systemd's sanity
    // check (it only orders reload messages); avoid unsafe clock_gettime.
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0, |secs| (secs * 1_000_000.0) as u128)
}

/// The watchdog interval systemd expects pings at, when it set one for this process.
pub fn watchdog_interval() -> Option<Duration> {
    env().watchdog
}

fn watchdog_from_env() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// Ping the watchdog at half its interval until `stop`.
pub async fn watchdog(stop: tokio_util::sync::CancellationToken) {
    let Some(every) = watchdog_interval() else { return };
    let mut tick = tokio::time::interval(every / 2);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => notify("WATCHDOG=1"),
        }
    }
}

/// The first listening socket systemd passed (socket activation), if any. Taken once, at
/// start: the descriptor is duplicated close-on-exec (so stdio upstreams do not inherit it)
/// and the `LISTEN_*` variables are removed from our environment for the same reason.
#[cfg(unix)]
pub fn take_listener() -> Result<Option<std::net::TcpListener>, String> {
    use std::os::fd::{FromRawFd, OwnedFd};
    let pid = std::env::var("LISTEN_PID").ok();
    let fds = std::env::var("LISTEN_FDS").ok();
    let (Some(pid), Some(fds)) = (pid, fds) else {
        return Ok(None);
    };
    std::env::remove_var("LISTEN_PID");
    std::env::remove_var("LISTEN_FDS");
    std::env::remove_var("LISTEN_FDNAMES");
    if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
        return Ok(None);
    }
    let n: u32 = fds
        .trim()
        .parse()
        .map_err(|_| format!("LISTEN_FDS={fds:?}: expected a number of sockets"))?;
    if n == 0 {
        return Ok(None);
    }
    if n > 1 {
        tracing::warn!(
            passed = n,
            "socket activation passed {n} sockets; serving on the first (fd 3)"
        );
    }
    // SAFETY: with LISTEN_PID naming this process, the sd_listen_fds protocol hands us fd 3
    // (SD_LISTEN_FDS_START) as a socket open since exec, so no descriptor this process
    // opened can carry that number and nothing else owns it; it is taken exactly once, here
    // (the LISTEN_* variables are gone after the first call).
    let passed = unsafe { OwnedFd::from_raw_fd(3) };
    let owned = passed
        .try_clone()
        .map_err(|e| format!("socket activation: fd 3 is not usable: {e}"))?;
    drop(passed);
    let listener = std::net::TcpListener::from(owned);
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("socket activation: fd 3 is not a socket: {e}"))?;
    listener
        .local_addr()
        .map_err(|e| format!("socket activation: fd 3 is not a TCP listening socket: {e}"))?;
    Ok(Some(listener))
}

#[cfg(not(unix))]
pub fn take_listener() -> Result<Option<std::net::TcpListener>, String> {
    Ok(None)
}

/// Whether stderr is connected to the journal (`JOURNAL_STREAM` names our stderr), so logs
/// can drop the timestamp journald adds itself.
#[cfg(unix)]
pub fn stderr_is_journal() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(v) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = v.split_once(':') else {
        return false;
    };
    let Ok(meta) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    dev.parse::<u64>().ok() == Some(meta.dev()) && ino.parse::<u64>().ok() == Some(meta.ino())
}

#[cfg(not(unix))]
pub fn stderr_is_journal() -> bool {
    false
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn notifications_reach_a_datagram_socket() {
        let dir = std::env::temp_dir().join(format!("wg-notify-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let sock = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        send(path.as_os_str(), "READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = sock.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
