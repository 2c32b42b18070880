#!/usr/bin/env python3
"""What a gateway hop costs: the shared harness's rmcp echo server answered directly, against
the same server behind a Waygate gateway over stdio and over Streamable HTTP.

Every server (gateway and upstream alike) is pinned to core 0, the load generator to core 1,
so each setup gets the same CPU. For each run the CPU time of the gateway and of the upstream
is read from /proc/PID/stat before and after the load (warm-up included, divided by all
requests, as the anchor harness does): the gateway's µs per call *is* the added CPU. c=64
gives the throughput and CPU figures, c=1 the added latency (p50). Rounds alternate setups;
read the medians. Loopback only, every run bounded by -d/-w.

With PROXY set (federation.sh sets it), a fifth setup, `hyperproxy`, puts bench/hyper-proxy —
a bare hyper reverse proxy with no MCP logic — in front of the same upstream: the floor that
any gateway on hyper and tokio pays for an HTTP hop on this machine.

    bench/federation.sh [ROUNDS=3]        (builds, then runs this file)
"""
import json, os, shutil, socket, statistics as st, subprocess, sys, tempfile, time, urllib.request

LG, BIN, RMCP, BODY = (os.environ[k] for k in ("LG", "BIN", "RMCP", "BODY"))
ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 3
DUR, WARM = os.environ.get("FED_DURATION", "5"), os.environ.get("FED_WARMUP", "1")
TICK = os.sysconf("SC_CLK_TCK")
HDRS = ["-H", "MCP-Protocol-Version: 2026-07-28", "-H", "Mcp-Method: tools/call", "-H", "Mcp-Name: echo"]


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def children(pid):
    # A child is listed under the thread that spawned it, so read every thread's list.
    found = []
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{t}/children") as f:
                found += [int(p) for p in f.read().split()]
        except OSError:
            pass
    return found


def port():
    # A port the kernel says is free now; a random one in the ephemeral range (32768+)
    # collided now and then with the load's own client connections.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ok(url, secs=15):
    end = time.time() + secs
    while time.time() < end:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return True
        except Exception as e:  # 4xx from rmcp's GET /mcp still means it listens
            if hasattr(e, "code"):
                return True
            time.sleep(0.05)
    return False


def spawn(cmd, **kw):
    return subprocess.Popen(["taskset", "-c", "0", *cmd], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)


def start(setup, data):
    """Returns (url, gateway pid or None, upstream pid, processes)."""
    gw_port, up_port = port(), port()
    common = ["--no-auth", "--no-audit", "--log", "error", "--data-dir", data]
    if setup == "native":  # for scale: Waygate answering its own echo tool
        gw = spawn([BIN, "serve", "--listen", f"127.0.0.1:{gw_port}", *common])
        wait_ok(f"http://127.0.0.1:{gw_port}/ready")
        return f"http://127.0.0.1:{gw_port}/mcp", None, gw.pid, [gw]
    if setup == "direct":
        up = spawn([RMCP, "--port", str(up_port)])
        wait_ok(f"http://127.0.0.1:{up_port}/mcp")
        return f"http://127.0.0.1:{up_port}/mcp", None, up.pid, [up]
    procs = []
    if setup == "hyperproxy":  # the floor of an HTTP hop: bench/hyper-proxy, no MCP logic
        up = spawn([RMCP, "--port", str(up_port)])
        wait_ok(f"http://127.0.0.1:{up_port}/mcp")
        px = spawn([os.environ["PROXY"], "--port", str(gw_port), "--upstream", f"127.0.0.1:{up_port}"])
        wait_ok(f"http://127.0.0.1:{gw_port}/mcp")
        return f"http://127.0.0.1:{gw_port}/mcp", px.pid, up.pid, [up, px]
    if setup == "stdio":
        upstream = f'transport = "stdio"\ncommand = "{RMCP}"\nargs = ["--stdio"]\n'
    else:
        up = spawn([RMCP, "--port", str(up_port)])
        procs.append(up)
        wait_ok(f"http://127.0.0.1:{up_port}/mcp")
        upstream = f'transport = "http"\nurl = "http://127.0.0.1:{up_port}/mcp"\n'
    cfg = os.path.join(data, "gw.toml")
    with open(cfg, "w") as f:
        f.write(f'version = 3\n[plugins]\ndemo = false\n[[upstreams]]\nname = "rmcp"\nprefix = "never"\nrequired = true\n{upstream}')
    gw = spawn([BIN, "serve", "--listen", f"127.0.0.1:{gw_port}", "--config", cfg, *common])
    procs.append(gw)
    if not wait_ok(f"http://127.0.0.1:{gw_port}/ready"):
        sys.exit(f"{setup}: gateway not ready")
    up_pid = procs[0].pid if setup == "http" else (children(gw.pid) or [None])[0]
    return f"http://127.0.0.1:{gw_port}/mcp", gw.pid, up_pid, procs


def load(url, c, pids):
    before = [cpu_s(p) if p else 0.0 for p in pids]
    out = subprocess.run(["taskset", "-c", "1", LG, "http", "--url", url, "--body", BODY, "-c", str(c), "-d", DUR,
                          "-w", WARM, *HDRS, "--expect", '"text":"hello"', "--json"],
                         capture_output=True, text=True, timeout=int(DUR) + int(WARM) + 60)
    after = [cpu_s(p) if p else 0.0 for p in pids]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    total = r["requests"] + r.get("warmup_requests", 0)
    us = [(a - b) * 1e6 / total if total else float("nan") for a, b in zip(after, before)]
    return dict(rps=r["rps"], p50=r["latency_ms"]["p50"], errors=r["errors"], gw_us=us[0] if pids[0] else None, up_us=us[1])


DEFAULT = "direct,stdio,http,native" + (",hyperproxy" if os.environ.get("PROXY") else "")
SETUPS = tuple(os.environ.get("FED_SETUPS", DEFAULT).split(","))
rows = []
for rnd in range(ROUNDS):
    for setup in SETUPS:
        data = tempfile.mkdtemp(prefix="wg-fed-")
        url, gw, up, procs = start(setup, data)
        try:
            for c in (64, 1):
                r = load(url, c, [gw, up])
                r.update(setup=setup, c=c)
                rows.append(r)
                gw_s = "-" if r["gw_us"] is None else f"{r['gw_us']:.1f}"
                print(f"round {rnd + 1} {setup:6} c={c:<2} {r['rps']:>8.0f} req/s  p50 {r['p50']:.3f} ms  "
                      f"gateway {gw_s} µs/call  upstream {r['up_us']:.1f} µs/call  errors {r['errors']}", flush=True)
        finally:
            for p in reversed(procs):
                p.terminate()
                p.wait()
            shutil.rmtree(data, ignore_errors=True)


def med(setup, c, key):
    v = [r[key] for r in rows if r["setup"] == setup and r["c"] == c and r[key] is not None]
    return st.median(v) if v else None


print("\n| setup | req/s c=64 | gateway CPU µs/call | upstream (native: Waygate) CPU µs/call | p50 c=1 (ms) | added p50 c=1 (ms) |")
print("|---|---:|---:|---:|---:|---:|")
base = med("direct", 1, "p50") or 0.0
for s in SETUPS:
    g = med(s, 64, "gw_us")
    print(f"| {s} | {med(s, 64, 'rps'):.0f} | {'-' if g is None else f'{g:.1f}'} | {med(s, 64, 'up_us'):.1f} | "
          f"{med(s, 1, 'p50'):.3f} | {med(s, 1, 'p50') - base:+.3f} |")
print(f"errors {sum(r['errors'] for r in rows)}")
