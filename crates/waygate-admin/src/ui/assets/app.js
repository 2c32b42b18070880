// The admin UI's entry: login, navigation by hash (#/page), and the overview page. The
// other pages are in pages.js. Everything goes through /api/v1 with the session cookie.
import { h, api, session, flash, table, badge } from "./lib.js";
import { pages } from "./pages.js";

const main = () => document.getElementById("main");
let timer = null;

function stopTimer() {
  if (timer) clearInterval(timer);
  timer = null;
}

function showLogin(message) {
  stopTimer();
  document.getElementById("nav").hidden = true;
  document.getElementById("logout").hidden = true;
  document.getElementById("who").textContent = "";
  const key = h("input", { type: "password", name: "key", autocomplete: "off", placeholder: "wg_…", required: true });
  const form = h("form.box.login", { id: "login-form" },
    h("h1", "Sign in"),
    h("p.muted", "Use an API key with the admin or admin:read scope. It is kept in an HttpOnly session cookie, never in this page."),
    h("label", h("span", "API key"), key),
    h("button.primary", { type: "submit" }, "Sign in"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const r = await api("POST", "/ui/login", undefined, {
        headers: { Authorization: `Bearer ${key.value.trim()}` }, noRedirect: true,
      });
      key.value = "";
      Object.assign(session, r);
      flash(`signed in as ${r.principal}`);
      start();
    } catch (e) {
      flash(e.status === 401 ? "that key was not accepted" : e.message, "error");
    }
  });
  main().replaceChildren(form);
  if (message) flash(message, "error");
  key.focus();
}

async function logout() {
  try { await api("POST", "/ui/logout", undefined, { noRedirect: true }); } catch { /* cookie cleared anyway */ }
  session.csrf = "";
  flash("signed out");
  showLogin();
}

async function start() {
  try {
    Object.assign(session, await api("GET", "/ui/session", undefined, { noRedirect: true }));
  } catch (e) {
    if (e.status === 401 || e.status === 403) return showLogin();
    main().replaceChildren(h("p", e.message));
    return;
  }
  document.getElementById("nav").hidden = false;
  document.getElementById("logout").hidden = !session.auth;
  document.getElementById("who").textContent = session.auth ? `signed in as ${session.principal}` : "authentication disabled";
  if (!location.hash) location.hash = "#/overview";
  route();
}

async function route() {
  stopTimer();
  const [name, ...rest] = location.hash.replace(/^#\//, "").split("/");
  const page = name === "overview" || !name ? overview : pages[name];
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.getAttribute("href") === `#/${name}`);
  const root = h("section", { id: `page-${name || "overview"}` });
  main().replaceChildren(root);
  if (!page) { root.append(h("p", `no page ${name}`)); return; }
  try {
    await page(root, rest.map(decodeURIComponent));
  } catch (e) {
    root.append(h("p.muted", e.message));
  }
}

// ---- overview: health, rates, latency and a chart from the live Prometheus text ----

function parseMetrics(text) {
  const out = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = line.match(/^([a-zA-Z_:][\w:]*)(\{(.*)\})?\s+(\S+)/);
    if (!m) continue;
    const labels = {};
    for (const p of (m[3] || "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[p[1]] = p[2];
    out.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return out;
}

function summarize(samples) {
  let requests = 0, errors = 0;
  const buckets = new Map();
  for (const s of samples) {
    if (s.name === "waygate_requests_total") {
      requests += s.value;
      if (["error", "tool_error"].includes(s.labels.outcome)) errors += s.value;
    } else if (s.name === "waygate_request_duration_seconds_bucket") {
      const le = s.labels.le === "+Inf" ? Infinity : Number(s.labels.le);
      buckets.set(le, (buckets.get(le) || 0) + s.value);
    }
  }
  return { requests, errors, buckets: [...buckets.entries()].sort((a, b) => a[0] - b[0]) };
}

/** A quantile from cumulative histogram bucket deltas (upper bound of the bucket). */
function quantile(buckets, q) {
  const total = buckets.length ? buckets[buckets.length - 1][1] : 0;
  if (!total) return null;
  for (const [le, c] of buckets) if (c >= q * total) return le;
  return null;
}

function chart(series) {
  const W = 1000, H = 200, P = 28;
  const max = Math.max(1, ...series.map((p) => p.rate));
  const x = (i) => P + (i * (W - P - 6)) / Math.max(1, series.length - 1);
  const y = (v) => H - P + 6 - (v / max) * (H - P - 10);
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("class", "chart");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "requests per second");
  const el = (tag, attrs, text) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    svg.append(e);
  };
  for (const f of [0, 0.5, 1]) {
    el("line", { class: "grid", x1: P, x2: W, y1: y(max * f), y2: y(max * f) });
    el("text", { x: 2, y: y(max * f) + 3 }, (max * f).toFixed(max < 10 ? 1 : 0));
  }
  const line = (k) => series.map((p, i) => `${x(i).toFixed(1)},${y(p[k]).toFixed(1)}`).join(" ");
  if (series.length > 1) {
    el("polyline", { class: "req", points: line("rate") });
    el("polyline", { class: "err", points: line("errRate") });
  }
  el("text", { x: W - 190, y: 12 }, "MCP requests/s (blue), errors/s (red)");
  return svg;
}

async function overview(root) {
  const series = [];
  let last = null;
  const cards = h("div.cards");
  const chartBox = h("div");
  const upBox = h("div");
  root.append(h("h1", "Overview"), cards, chartBox, h("h2", "Upstreams"), upBox);
  const tick = async () => {
    const [health, ready, text, ups] = await Promise.all([
      fetch("/health", { cache: "no-store" }).then((r) => r.ok, () => false),
      fetch("/ready", { cache: "no-store" }).then((r) => r.ok, () => false),
      api("GET", "/ui/metrics"),
      api("GET", "/api/v1/upstreams").catch(() => ({ upstreams: [] })),
    ]);
    const now = summarize(parseMetrics(text));
    const t = performance.now() / 1000;
    let rate = 0, errRate = 0, p50 = null, p99 = null;
    if (last) {
      const dt = Math.max(0.001, t - last.t);
      rate = Math.max(0, (now.requests - last.requests) / dt);
      errRate = Math.max(0, (now.errors - last.errors) / dt);
      const delta = now.buckets.map(([le, c], i) => [le, c - ((last.buckets[i] || [le, 0])[1])]);
      p50 = quantile(delta, 0.5);
      p99 = quantile(delta, 0.99);
    }
    if (p50 === null) { p50 = quantile(now.buckets, 0.5); p99 = quantile(now.buckets, 0.99); }
    last = { ...now, t };
    series.push({ rate, errRate });
    if (series.length > 60) series.shift();
    const ms = (v) => (v === null ? "–" : v === Infinity ? "> max" : `≤ ${(v * 1000).toFixed(v < 0.01 ? 1 : 0)} ms`);
    const card = (label, value, id) => h("div.card", { id }, h("b", value), h("span", label));
    cards.replaceChildren(
      card("health", health ? "up" : "down", "card-health"),
      card("ready", ready ? "ready" : "not ready", "card-ready"),
      card("requests/s", rate.toFixed(1), "card-rate"),
      card("errors/s", errRate.toFixed(2), "card-errors"),
      card("p50 latency", ms(p50), "card-p50"),
      card("p99 latency", ms(p99), "card-p99"),
      card("MCP requests since start", String(now.requests), "card-total"),
    );
    chartBox.replaceChildren(chart(series));
    upBox.replaceChildren(table(ups.upstreams || [], [
      ["Name", (u) => u.name], ["State", (u) => badge(u.state)], ["Tools", (u) => u.tools, { num: true }],
      ["Last error", (u) => u.error || ""],
    ], { empty: "no upstreams" }));
  };
  await tick();
  timer = setInterval(() => tick().catch((e) => flash(e.message, "error")), 3000);
}

window.addEventListener("hashchange", () => { if (document.getElementById("nav").hidden === false) route(); });
window.addEventListener("waygate:logged-out", () => showLogin("your session ended; sign in again"));
document.getElementById("logout").addEventListener("click", logout);
start();
