// Shared pieces of the admin UI: a DOM builder (text is always set as text, never parsed
// as HTML, so a tool description cannot inject markup), the API client with the session's
// CSRF token, tables, a line diff and small formatters.

export const session = { csrf: "", principal: "", auth: true };

/** h("tag.class", {attr: v, onclick: f}, child, …): children are nodes or text. */
export function h(spec, attrs, ...children) {
  const [tag, ...classes] = spec.split(".");
  const el = document.createElement(tag || "div");
  if (classes.length) el.className = classes.join(" ");
  if (attrs && (typeof attrs !== "object" || attrs instanceof Node || Array.isArray(attrs))) {
    children.unshift(attrs);
    attrs = null;
  }
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "value") el.value = v;
    else if (k === "checked") el.checked = !!v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export class ApiError extends Error {
  constructor(status, detail, field) {
    super(detail);
    this.status = status;
    this.field = field;
  }
}

/** Call the API; throws ApiError with the problem's detail (and the field at fault). */
export async function api(method, path, body, opts = {}) {
  const headers = { Accept: opts.accept || "application/json" };
  if (session.csrf && !["GET", "HEAD"].includes(method)) headers["X-CSRF-Token"] = session.csrf;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (opts.headers) Object.assign(headers, opts.headers);
  const resp = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
    cache: "no-store",
  });
  if (resp.status === 401 && !opts.noRedirect) {
    window.dispatchEvent(new CustomEvent("waygate:logged-out"));
  }
  const text = await resp.text();
  let data = text;
  try { data = text ? JSON.parse(text) : null; } catch { /* plain text */ }
  if (!resp.ok) {
    const detail = (data && (data.detail || (data.error && (data.error.message || data.error)))) || text || resp.statusText;
    throw new ApiError(resp.status, `${resp.status}: ${detail}`, data && data.field);
  }
  return data;
}

export function flash(message, kind = "info") {
  const box = document.getElementById("flash");
  box.replaceChildren(h(`div.${kind}`, message));
  if (kind === "info") setTimeout(() => { if (box.firstChild && box.firstChild.textContent === message) box.replaceChildren(); }, 4000);
}

/** Run an action from a button: disable it meanwhile, report the outcome. */
export async function act(button, fn, done) {
  if (button) button.disabled = true;
  try {
    const r = await fn();
    if (done) flash(typeof done === "function" ? done(r) : done);
    return r;
  } catch (e) {
    flash(e.message, "error");
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}

/** A table from rows: columns are [header, row => cell, {num: true}]. */
export function table(rows, columns, opts = {}) {
  const head = h("tr", columns.map(([t]) => h("th", t)));
  const body = rows.map((r) => {
    const tr = h("tr", columns.map(([, f, o]) => h(o && o.num ? "td.num" : "td", f(r))));
    if (opts.onclick) { tr.classList.add("list-item"); tr.addEventListener("click", () => opts.onclick(r, tr)); }
    if (opts.rowId) tr.dataset.id = opts.rowId(r);
    return tr;
  });
  if (!rows.length) body.push(h("tr", h("td.muted", { colspan: columns.length }, opts.empty || "nothing here yet")));
  return h("table", h("thead", head), h("tbody", body));
}

export function badge(text, kind) {
  const k = kind || ({ up: "ok", down: "bad", running: "ok", connected: "ok", active: "ok", ready: "ok", ok: "ok", enabled: "ok",
    failed: "bad", error: "bad", revoked: "bad", denied: "bad", disabled: "warn", held: "warn", connecting: "warn",
    expired: "warn", stopped: "warn" })[String(text).toLowerCase()] || "";
  return h(`span.badge${k ? "." + k : ""}`, String(text));
}

export const time = (ms) => (ms ? new Date(ms).toLocaleString() : "");
export const pretty = (v) => JSON.stringify(v, null, 2);

/** Line diff (longest common subsequence) as [op, line] with op in "-", "+", " ". */
export function diffLines(a, b) {
  const x = a.split("\n"), y = b.split("\n");
  const n = x.length, m = y.length;
  const lcs = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--)
    lcs[i][j] = x[i] === y[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
  const out = [];
  let i = 0, j = 0;
  while (i < n && j < m) {
    if (x[i] === y[j]) { out.push([" ", x[i]]); i++; j++; }
    else if (lcs[i + 1][j] >= lcs[i][j + 1]) out.push(["-", x[i++]]);
    else out.push(["+", y[j++]]);
  }
  while (i < n) out.push(["-", x[i++]]);
  while (j < m) out.push(["+", y[j++]]);
  return out;
}

/** Render diff lines ("+…", "-…", " …" strings or [op, text] pairs). */
export function diffView(lines) {
  return h("pre.diff", lines.map((l) => {
    const [op, text] = Array.isArray(l) ? l : [l[0], l.slice(1)];
    return h(op === "+" ? "span.add" : op === "-" ? "span.del" : "span", `${op} ${text}`);
  }));
}

/** A form field for one JSON Schema property (the playground). */
export function schemaField(name, schema, required) {
  const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== "null") : schema.type;
  const label = `${name}${required ? " *" : ""}`;
  const hint = schema.description ? h("div.muted", schema.description) : null;
  let input;
  if (Array.isArray(schema.enum)) {
    input = h("select", { name }, (required ? [] : [h("option", { value: "" }, "")]).concat(
      schema.enum.map((v) => h("option", { value: JSON.stringify(v) }, String(v)))));
    input.dataset.kind = "enum";
  } else if (type === "boolean") {
    input = h("input", { type: "checkbox", name, checked: schema.default === true });
    input.dataset.kind = "boolean";
  } else if (type === "integer" || type === "number") {
    input = h("input", { type: "number", name, step: type === "integer" ? "1" : "any", value: schema.default });
    input.dataset.kind = type;
  } else if (type === "object" || type === "array" || !type) {
    input = h("textarea", { name, placeholder: type === "array" ? "[ ]" : "{ }" },
      schema.default !== undefined ? pretty(schema.default) : "");
    input.dataset.kind = "json";
  } else {
    input = h("input", { type: "text", name, value: schema.default, size: 48 });
    input.dataset.kind = "string";
  }
  input.dataset.required = required ? "1" : "";
  return h("label", h("span", label), input, hint);
}

/** The arguments a playground form holds; throws naming the field that is not valid JSON. */
export function formArguments(form) {
  const args = {};
  for (const el of form.querySelectorAll("[data-kind]")) {
    const k = el.dataset.kind;
    if (k === "boolean") { args[el.name] = el.checked; continue; }
    const v = el.value;
    if (v === "" && !el.dataset.required) continue;
    if (k === "integer" || k === "number") args[el.name] = v === "" ? undefined : Number(v);
    else if (k === "enum") args[el.name] = v === "" ? undefined : JSON.parse(v);
    else if (k === "json") {
      try { args[el.name] = JSON.parse(v); } catch (e) { throw new Error(`${el.name}: not valid JSON (${e.message})`); }
    } else args[el.name] = v;
  }
  return args;
}
