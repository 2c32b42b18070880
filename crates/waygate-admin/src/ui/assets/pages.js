// The admin UI's pages besides the overview. Each takes its root element and renders
// from /api/v1; actions re-render the page so what is shown is what the server holds.
import { h, api, act, flash, table, badge, time, pretty, diffLines, diffView, schemaField, formArguments } from "./lib.js";

const enc = encodeURIComponent;
const rerender = () => window.dispatchEvent(new HashChangeEvent("hashchange"));

// ---- upstreams ----

async function upstreams(root) {
  const { upstreams: rows } = await api("GET", "/api/v1/upstreams");
  root.append(h("h1", "Upstreams"), table(rows, [
    ["Name", (u) => u.name],
    ["Transport", (u) => u.transport],
    ["State", (u) => badge(u.state)],
    ["Origin", (u) => u.origin],
    ["Tools", (u) => u.tools, { num: true }],
    ["Restarts", (u) => (u.upstream && (u.upstream.restarts ?? u.upstream.reconnects)) ?? "", { num: true }],
    ["Last error", (u) => u.error || (u.upstream && u.upstream.last_error) || ""],
    ["", (u) => h("div.row",
      h("button", { type: "button", onclick: (e) => act(e.target, () => api("POST", `/api/v1/upstreams/${enc(u.name)}/restart`), `${u.name} restarted`).then(rerender) }, "Restart"),
      u.origin === "runtime" ? h("button.danger", { type: "button", onclick: (e) => confirm(`Remove ${u.name}?`) && act(e.target, () => api("DELETE", `/api/v1/upstreams/${enc(u.name)}`), `${u.name} removed`).then(rerender) }, "Remove") : null)],
  ], { empty: "no upstreams yet; add one below", rowId: (u) => u.name }));

  const name = h("input", { name: "name", required: true, placeholder: "weather" });
  const kind = h("select", { name: "kind" }, h("option", { value: "stdio" }, "stdio command"), h("option", { value: "http" }, "Streamable HTTP URL"));
  const command = h("input", { name: "command", placeholder: "npx", size: 40 });
  const args = h("input", { name: "args", placeholder: "-y @modelcontextprotocol/server-everything (one per line or space separated)", size: 60 });
  const url = h("input", { name: "url", placeholder: "http://127.0.0.1:9000/mcp", size: 50 });
  const form = h("form.box", { id: "add-upstream" }, h("h2", "Add an upstream"),
    h("label", h("span", "Name"), name), h("label", h("span", "Kind"), kind),
    h("label", h("span", "Command"), command), h("label", h("span", "Arguments"), args),
    h("label", h("span", "URL"), url), h("button.primary", { type: "submit" }, "Add"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const entry = { name: name.value.trim() };
    if (kind.value === "stdio") {
      entry.command = command.value.trim();
      const a = args.value.trim();
      entry.args = a ? (a.includes("\n") ? a.split("\n") : a.split(/\s+/)) : [];
    } else entry.url = url.value.trim();
    await act(form.querySelector("button"), () => api("POST", "/api/v1/upstreams", entry), `${entry.name} added`) && rerender();
  });

  const paste = h("textarea", { name: "mcpServers", placeholder: '{"mcpServers": {"name": {"command": "…", "args": ["…"]}}}' });
  const pasteForm = h("form.box", { id: "paste-upstreams" }, h("h2", "Paste an mcpServers JSON"),
    h("p.muted", "The format Claude Desktop, Cursor and VS Code use; each entry becomes a runtime upstream."),
    paste, h("button.primary", { type: "submit" }, "Add all"));
  pasteForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    let doc;
    try { doc = JSON.parse(paste.value); } catch (e) { flash(`not valid JSON: ${e.message}`, "error"); return; }
    const servers = doc.mcpServers || doc.servers || doc;
    const added = [];
    for (const [n, s] of Object.entries(servers)) {
      const entry = { name: n };
      for (const k of ["command", "args", "env", "url", "headers"]) if (s[k] !== undefined) entry[k] = s[k];
      if (s.serverUrl && !entry.url) entry.url = s.serverUrl;
      const ok = await act(null, () => api("POST", "/api/v1/upstreams", entry));
      if (ok === undefined) return;
      added.push(n);
    }
    flash(`added ${added.join(", ") || "nothing"}`);
    rerender();
  });
  root.append(form, pasteForm);
}

// ---- virtual servers ----

async function servers(root) {
  const { servers: rows } = await api("GET", "/api/v1/servers");
  root.append(h("h1", "Virtual servers"), table(rows, [
    ["Name", (s) => s.name], ["Origin", (s) => s.origin],
    ["Endpoint", (s) => h("code", `/servers/${s.name}/mcp`)],
    ["Tools", (s) => s.tools.length, { num: true }],
    ["Selects", (s) => [...(s.entry.include || []), ...(s.entry.tags || []).map((t) => `tag:${t}`)].join(", ")],
    ["", (s) => s.origin === "runtime" ? h("button.danger", { type: "button", onclick: (e) => confirm(`Remove ${s.name}?`) && act(e.target, () => api("DELETE", `/api/v1/servers/${enc(s.name)}`), `${s.name} removed`).then(rerender) }, "Remove") : ""],
  ], { empty: "no virtual servers", rowId: (s) => s.name }));
  const name = h("input", { name: "name", required: true, placeholder: "dev-tools" });
  const include = h("input", { name: "include", placeholder: "github/*issue*, demo/echo", size: 50 });
  const tags = h("input", { name: "tags", placeholder: "dev, read-only", size: 40 });
  const title = h("input", { name: "title", size: 40 });
  const form = h("form.box", { id: "add-server" }, h("h2", "Add a virtual server"),
    h("label", h("span", "Name"), name), h("label", h("span", "Include (plugin/tool globs)"), include),
    h("label", h("span", "Tags"), tags), h("label", h("span", "Title"), title),
    h("button.primary", { type: "submit" }, "Add"));
  const list = (s) => s.split(",").map((x) => x.trim()).filter(Boolean);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const entry = { name: name.value.trim(), include: list(include.value), tags: list(tags.value) };
    if (title.value.trim()) entry.title = title.value.trim();
    await act(form.querySelector("button"), () => api("POST", "/api/v1/servers", entry), `${entry.name} added`) && rerender();
  });
  root.append(form);
}

// ---- catalog and playground ----

function renderResult(r) {
  const parts = [];
  if (r.isError) parts.push(h("p", badge("error"), " the tool reported an error"));
  for (const c of r.content || []) {
    if (c.type === "text") parts.push(h("pre", c.text));
    else if (c.type === "image") parts.push(h("img", { src: `data:${c.mimeType};base64,${c.data}`, alt: "image result" }));
    else if (c.type === "audio") parts.push(h("audio", { controls: true, src: `data:${c.mimeType};base64,${c.data}` }));
    else if (c.type === "resource_link" || c.type === "resource") parts.push(h("pre", pretty(c)));
    else parts.push(h("pre", pretty(c)));
  }
  if (r.structuredContent !== undefined) parts.push(h("h2", "Structured content"), h("pre", pretty(r.structuredContent)));
  if (r.task) parts.push(h("pre", pretty(r)));
  return h("div.result", { id: "result" }, parts);
}

function playground(box, tool) {
  const schema = tool.definition.inputSchema || {};
  const props = schema.properties || {};
  const required = new Set(schema.required || []);
  const fields = Object.entries(props).map(([n, s]) => schemaField(n, s || {}, required.has(n)));
  const out = h("div");
  const form = h("form.box", { id: "playground" },
    h("h2", `Playground: ${tool.name}`),
    tool.description ? h("p.muted", tool.description) : null,
    fields.length ? fields : h("p.muted", "This tool takes no arguments."),
    h("div.row", h("button.primary", { type: "submit" }, "Call"), h("span.muted", `origin: ${tool.origin} (${tool.origin_tier})`)));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    let args;
    try { args = formArguments(form); } catch (e) { flash(e.message, "error"); return; }
    const r = await act(form.querySelector("button"), () => api("POST", `/api/v1/tools/${enc(tool.name)}/call`, { arguments: args }));
    if (r !== undefined) out.replaceChildren(renderResult(r));
  });
  box.replaceChildren(form, out, h("h2", "Definition"), h("pre", pretty(tool.definition)));
}

async function catalog(root, [selected]) {
  const q = h("input", { type: "search", placeholder: "search name, title, description", size: 40, name: "q" });
  const listBox = h("div"), detail = h("div");
  let cursor = null;
  const load = async (more) => {
    const params = new URLSearchParams({ limit: "100" });
    if (q.value.trim()) params.set("q", q.value.trim());
    if (more && cursor) params.set("cursor", cursor);
    const page = await api("GET", `/api/v1/catalog/tools?${params}`);
    cursor = page.next_cursor || null;
    const t = table(page.items, [
      ["Tool", (t) => t.name], ["Origin", (t) => `${t.origin} (${t.origin_tier})`],
      ["Pin", (t) => (t.pin ? badge(t.pin) : "")], ["Description", (t) => (t.description || "").slice(0, 120)],
    ], { onclick: (t) => { location.hash = `#/catalog/${enc(t.name)}`; }, rowId: (t) => t.name });
    if (more) listBox.append(t); else listBox.replaceChildren(h("p.muted", `${page.total} tools`), t);
    if (cursor) listBox.append(h("button", { type: "button", onclick: (e) => { e.target.remove(); load(true); } }, "More"));
  };
  q.addEventListener("input", () => load(false).catch((e) => flash(e.message, "error")));
  root.append(h("h1", "Catalog"), h("div.split", h("div", q, listBox), detail));
  await load(false);
  if (selected) {
    try { playground(detail, await api("GET", `/api/v1/catalog/tools/${enc(selected)}`)); }
    catch (e) { detail.replaceChildren(h("p", e.message)); }
  } else detail.append(h("p.muted", "Pick a tool to try it in the playground."));
}

// ---- plugins ----

async function plugins(root) {
  const { plugins: rows } = await api("GET", "/api/v1/plugins");
  const action = (p, a, label) => h("button", { type: "button", onclick: (e) => act(e.target, () => api("POST", `/api/v1/plugins/${enc(p.name)}/${a}`), `${p.name}: ${label}`).then(rerender) }, label);
  root.append(h("h1", "Plugins"), table(rows, [
    ["Name", (p) => p.name], ["Tier", (p) => p.tier], ["Origin", (p) => p.origin], ["State", (p) => badge(p.state)],
    ["Tools", (p) => p.tools, { num: true }], ["Detail", (p) => p.error || p.module || ""],
    ["", (p) => h("div.row",
      p.state === "disabled" ? action(p, "enable", "enable") : action(p, "disable", "disable"),
      p.tier === "wasm" ? action(p, "reload", "reload") : null,
      p.origin === "runtime" ? h("button.danger", { type: "button", onclick: (e) => act(e.target, () => api("DELETE", `/api/v1/plugins/${enc(p.name)}`), `${p.name} unloaded`).then(rerender) }, "unload") : null)],
  ], { rowId: (p) => p.name }));
  const name = h("input", { name: "name", required: true, placeholder: "my-plugin" });
  const module = h("input", { name: "module", required: true, size: 50, placeholder: "/srv/plugins/my-plugin.wasm (as the server sees it)" });
  const fsRead = h("input", { name: "fs_read", size: 40, placeholder: "/srv/data:/data (comma separated)" });
  const form = h("form.box", { id: "load-plugin" }, h("h2", "Load a WASM plugin"),
    h("label", h("span", "Name"), name), h("label", h("span", "Module"), module), h("label", h("span", "Read-only dirs"), fsRead),
    h("button.primary", { type: "submit" }, "Load"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const spec = { name: name.value.trim(), module: module.value.trim(), fs_read: fsRead.value.split(",").map((x) => x.trim()).filter(Boolean) };
    await act(form.querySelector("button"), () => api("POST", "/api/v1/plugins", { wasm: spec }), `${spec.name} loaded`) && rerender();
  });
  root.append(form);
}

// ---- keys ----

/** The key just created, shown once on the next render and then forgotten. */
let freshKey = null;

async function keys(root) {
  const [{ keys: rows }, secrets] = await Promise.all([api("GET", "/api/v1/keys"), api("GET", "/api/v1/secrets").catch(() => ({ secrets: [] }))]);
  const shown = h("div", { id: "new-key" });
  if (freshKey) {
    shown.append(h("div.box", h("p", h("b", `Key ${freshKey.name} created. Copy it now: it is shown only once.`)), h("div.secret", { id: "secret" }, freshKey.key)));
    freshKey = null;
  }
  root.append(h("h1", "API keys"), table(rows, [
    ["Name", (k) => k.name], ["Id", (k) => h("code", k.id)], ["Scopes", (k) => k.scopes.join(" ")],
    ["State", (k) => badge(k.state)], ["Created", (k) => time(k.created_at * (k.created_at < 1e12 ? 1000 : 1))],
    ["", (k) => k.state === "active" ? h("button.danger", { type: "button", onclick: (e) => confirm(`Revoke ${k.name}?`) && act(e.target, () => api("DELETE", `/api/v1/keys/${enc(k.id)}`), `${k.name} revoked`).then(rerender) }, "Revoke") : ""],
  ], { rowId: (k) => k.name }), shown);
  const name = h("input", { name: "name", required: true, placeholder: "ci-bot" });
  const scopes = h("input", { name: "scopes", value: "mcp", size: 40 });
  const form = h("form.box", { id: "create-key" }, h("h2", "Create a key"),
    h("label", h("span", "Name"), name),
    h("label", h("span", "Scopes"), scopes, h("div.muted", "space separated: mcp, admin, admin:read, metrics, tool:NAME …")),
    h("button.primary", { type: "submit" }, "Create"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const r = await act(form.querySelector("button"), () => api("POST", "/api/v1/keys", { name: name.value.trim(), scopes: scopes.value.split(/[\s,]+/).filter(Boolean) }));
    if (!r) return;
    freshKey = r;
    rerender();
  });
  root.append(form, h("h2", "Secrets"), h("p.muted", "Names only; values never leave the server."),
    table(secrets.secrets.map((s) => ({ s })), [["Name", (x) => x.s]], { empty: "no stored secrets" }));
}

// ---- pins ----

async function pins(root) {
  const { held } = await api("GET", "/api/v1/pins");
  root.append(h("h1", "Tool pins"), h("p.muted", "A tool whose definition changed since it was approved is held back from every client until approved here."));
  if (!held.length) root.append(h("p", { id: "no-held" }, "No tool is held back."));
  for (const p of held) {
    const before = p.approved_definition ? pretty(p.approved_definition) : "";
    root.append(h("div.box", { "data-pin": `${p.plugin}/${p.tool}` },
      h("h2", `${p.plugin} / ${p.tool}`),
      h("p.muted", `changed: ${p.changed.join(", ") || "(new)"} · approved ${p.approved_sha256 ? p.approved_sha256.slice(0, 12) : "none"} → offered ${p.sha256.slice(0, 12)}`),
      diffView(diffLines(before, pretty(p.definition))),
      h("button.primary", { type: "button", onclick: (e) => act(e.target, () => api("POST", `/api/v1/pins/${enc(p.plugin)}/${enc(p.tool)}/approve`), `${p.tool} approved`).then(rerender) }, "Approve")));
  }
}

// ---- audit ----

async function audit(root) {
  const f = {};
  const field = (n, ph) => (f[n] = h("input", { name: n, placeholder: ph, size: 18 }));
  const outcome = (f.outcome = h("select", { name: "outcome" }, ["", "ok", "error", "denied", "tool_error"].map((o) => h("option", { value: o }, o || "any outcome"))));
  const form = h("form.box.row", { id: "audit-filter" }, field("method", "method (tools/*)"), field("target", "target"), field("principal", "principal"), outcome, h("button.primary", { type: "submit" }, "Search"));
  const out = h("div");
  let cursor = null;
  const run = async (more) => {
    const params = new URLSearchParams({ limit: "50" });
    for (const [k, el] of Object.entries(f)) if (el.value.trim()) params.set(k, el.value.trim());
    if (more && cursor) params.set("cursor", cursor);
    const page = await api("GET", `/api/v1/audit?${params}`);
    cursor = page.next_cursor || null;
    const t = table(page.items, [
      ["Time", (e) => time(e.ts)], ["Principal", (e) => e.record.principal || ""], ["Method", (e) => e.record.method || e.record.action || ""],
      ["Target", (e) => e.record.target || e.record.tool || ""], ["Outcome", (e) => badge(e.record.outcome || "")],
      ["Record", (e) => h("details", h("summary", "show"), h("pre", pretty(e.record)))],
    ], { empty: "no matching records" });
    if (more) out.append(t); else out.replaceChildren(t);
    if (cursor) out.append(h("button", { type: "button", onclick: (e) => { e.target.remove(); run(true); } }, "Older"));
  };
  form.addEventListener("submit", (ev) => { ev.preventDefault(); run(false).catch((e) => flash(e.message, "error")); });
  const verify = h("button", { type: "button", onclick: (e) => act(e.target, () => api("POST", "/api/v1/audit/verify"), (v) => (v.intact ? `chain intact (${v.rows} rows)` : `chain broken at ${v.first_bad}`)) }, "Verify chain");
  root.append(h("h1", "Audit trail"), form, verify, out);
  await run(false);
}

// ---- config snapshots ----

async function config(root, [selected]) {
  const { snapshots } = await api("GET", "/api/v1/config/snapshots");
  const detail = h("div");
  root.append(h("h1", "Configuration"), h("div.split",
    h("div", h("h2", "Snapshots"), table(snapshots, [
      ["Id", (s) => s.id, { num: true }], ["When", (s) => time(s.created_at)], ["Source", (s) => s.source], ["sha256", (s) => s.sha256.slice(0, 10)],
    ], { onclick: (s) => { location.hash = `#/config/${s.id}`; }, rowId: (s) => s.id })),
    detail));
  if (!selected) {
    detail.append(await editor(snapshots[0]), await rules(), await operations());
    const eff = await api("GET", "/api/v1/config");
    detail.append(h("h2", "Effective configuration (secrets redacted)"), h("pre", pretty(eff.config)));
    return;
  }
  const d = await api("GET", `/api/v1/config/snapshots/${enc(selected)}/diff`);
  detail.append(h("h2", `Snapshot ${d.from} compared with the latest (${d.to})`),
    d.lines.some((l) => l[0] !== " ") ? diffView(d.lines) : h("p.muted", "identical"),
    h("button.danger", { type: "button", id: "rollback", onclick: (e) => confirm(`Roll back to snapshot ${d.from}?`) && act(e.target, () => api("POST", `/api/v1/config/snapshots/${d.from}/rollback`), (r) => (r.restart_needed.length ? `rolled back; restart needed for ${r.restart_needed.join(", ")}` : "rolled back")).then(() => { location.hash = "#/config"; }) }, `Roll back to ${d.from}`));
}

/** Edit the configuration file: validate like a reload would, then apply (snapshotted). */
async function editor(latest) {
  const text = h("textarea", { name: "toml", id: "config-text", rows: 18, spellcheck: "false" });
  if (latest) text.value = (await api("GET", `/api/v1/config/snapshots/${latest.id}`)).content;
  const verdict = h("div", { id: "config-verdict" });
  const show = (v) => verdict.replaceChildren(v.valid ? h("p", badge("ok"), " valid") :
    h("ul", v.problems.map((p) => h("li", badge("error"), " ", p.field ? `${p.field}: ` : "", p.detail))));
  const validate = h("button", { type: "button", onclick: (e) => act(e.target, () => api("POST", "/api/v1/config/validate", { toml: text.value })).then((v) => v && show(v)) }, "Validate");
  const apply = h("button.primary", { type: "button", id: "config-apply", onclick: (e) => confirm("Write and apply this configuration?") &&
    act(e.target, () => api("PUT", "/api/v1/config", { toml: text.value }),
      (r) => (r.restart_needed.length ? `applied; restart needed for ${r.restart_needed.join(", ")}` : "applied")).then((r) => r && rerender()) }, "Apply");
  const reload = h("button", { type: "button", onclick: (e) => act(e.target, () => api("POST", "/api/v1/config/reload"), "configuration file re-read").then(rerender) }, "Reload from disk");
  return h("div.box", { id: "config-editor" }, h("h2", "Configuration file"),
    h("p.muted", "Loaded from the latest snapshot with literal secrets shown as \"<redacted>\": replace them (or use ${secret:NAME}) before applying."),
    text, h("div.row", validate, apply, reload), verdict);
}

/** The authorization rules and the rate limits, each replaced on its own: merged into the
 *  configuration file (the rest stays as written), validated and applied like the file. */
async function rules() {
  const now = await api("GET", "/api/v1/policies");
  const section = (id, title, value, path, hint) => {
    const text = h("textarea", { name: id, id: `${id}-text`, rows: 8, spellcheck: "false" });
    text.value = pretty(value);
    const apply = h("button.primary", { type: "button", id: `${id}-apply`, onclick: (e) => {
      let body;
      try { body = JSON.parse(text.value); } catch (err) { flash(`${title}: not JSON (${err.message})`, "error"); return; }
      act(e.target, () => api("PUT", path, body),
        (r) => (r.restart_needed.length ? `${title} applied; restart needed for ${r.restart_needed.join(", ")}` : `${title} applied`)).then((r) => r && rerender());
    } }, "Apply");
    return h("div", { id: `${id}-editor` }, h("h3", title), h("p.muted", hint), text, h("div.row", apply));
  };
  return h("div.box", { id: "rules" }, h("h2", "Policies and rate limits"),
    section("policies", "Policies", { authz: now.authz, policies: now.policies }, "/api/v1/policies",
      "authz.default (allow or deny) and the [[policies]] rules: name, effect, principals/roles/scopes, methods/tools/resources/prompts (globs)."),
    section("limits", "Rate limits", now.limits, "/api/v1/limits",
      "requests_per_second and burst per caller; tools: per-tool per_second, burst, cost, max_concurrent, timeout_ms, max_response_bytes (\"*\" for every tool)."));
}

async function operations() {
  const { filter } = await api("GET", "/api/v1/log-level");
  const input = h("input", { name: "filter", value: filter, size: 40 });
  const form = h("form.box.row", { id: "log-level" }, h("b", "Log level"), input, h("button", { type: "submit" }, "Set"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    act(form.querySelector("button"), () => api("PUT", "/api/v1/log-level", { filter: input.value.trim() }), (r) => `log filter is now ${r.filter}`);
  });
  return form;
}

export const pages = { upstreams, servers, catalog, plugins, keys, pins, audit, config };
