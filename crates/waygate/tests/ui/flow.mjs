// The admin UI in a real headless Chromium (Debian's, driven by playwright-core): sign in,
// add an upstream, add a virtual server, call a tool from the playground, create and revoke
// a key, approve a changed pin, find the call in the audit viewer, look at a config
// snapshot, set the policies (a bad rule refused naming its key), check the session's
// defences, sign out. A screenshot of every page goes to
// $WAYGATE_UI_SHOTS (and failure.png when a step fails).
//
// Environment: WAYGATE_URL, WAYGATE_KEY (admin), WAYGATE_UI_SHOTS, WAYGATE_UPSTREAM_CMD and
// WAYGATE_UPSTREAM_ARGS (a stdio MCP server to add), WAYGATE_UI_MODULE (a WASM module to load), PLAYWRIGHT_CORE (its directory),
// CHROMIUM (the browser binary).
import { createRequire } from "node:module";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const env = (k) => {
  const v = process.env[k];
  if (!v) { console.error(`missing ${k}`); process.exit(2); }
  return v;
};
const require = createRequire(import.meta.url);
const { chromium } = require(env("PLAYWRIGHT_CORE"));
const base = env("WAYGATE_URL");
const shots = env("WAYGATE_UI_SHOTS");
mkdirSync(shots, { recursive: true });

const browser = await chromium.launch({
  executablePath: env("CHROMIUM"),
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
const page = await context.newPage();
const problems = [];
// Refusals the flow provokes on purpose (401, 400, 403) show up as failed loads; anything
// else on the console is a defect.
page.on("console", (m) => {
  if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) problems.push(`console: ${m.text()}`);
});
page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
page.setDefaultTimeout(15000);

let step = "start";
const shot = (name) => page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
const check = (cond, what) => { if (!cond) throw new Error(`${step}: ${what}`); };
const go = async (hash, ready) => {
  await page.evaluate((h) => { location.hash = h; }, hash);
  await page.waitForSelector(ready);
};
const inPage = (fn, ...args) => page.evaluate(fn, ...args);

try {
  step = "csp and login page";
  const first = await page.goto(`${base}/ui`);
  const csp = first.headers()["content-security-policy"] || "";
  check(csp.includes("script-src 'self'") && csp.includes("frame-ancestors 'none'"), `CSP is ${csp}`);
  await page.waitForSelector("#login-form");
  await shot("01-login");

  step = "a wrong key is refused";
  await page.fill("#login-form input[name=key]", "wg_not_a_real_key");
  await page.click("#login-form button[type=submit]");
  await page.waitForSelector("#flash .error");
  check(await page.isVisible("#login-form"), "still on the login form");

  step = "sign in";
  await page.fill("#login-form input[name=key]", env("WAYGATE_KEY"));
  await page.click("#login-form button[type=submit]");
  await page.waitForSelector("#card-health");
  const cookies = await context.cookies();
  const c = cookies.find((x) => x.name === "waygate_ui");
  check(c && c.httpOnly && c.secure && c.sameSite === "Strict", `session cookie ${JSON.stringify(c)}`);
  check(!c.value.includes(env("WAYGATE_KEY")), "the cookie carries the key in clear");
  check(await inPage(() => document.cookie === "" && localStorage.length === 0 && sessionStorage.length === 0), "script can see the session");
  check(!page.url().includes(env("WAYGATE_KEY")), "key in the URL");
  await page.waitForFunction(() => document.querySelector("#card-total b") && Number(document.querySelector("#card-total b").textContent) >= 0);
  await page.waitForTimeout(3500); // one refresh so the chart has two points
  await shot("02-overview");

  step = "add an upstream from the form";
  await go("#/upstreams", "#add-upstream");
  await page.fill("#add-upstream input[name=name]", "uiup");
  await page.fill("#add-upstream input[name=command]", env("WAYGATE_UPSTREAM_CMD"));
  await page.fill("#add-upstream input[name=args]", env("WAYGATE_UPSTREAM_ARGS"));
  await page.click("#add-upstream button[type=submit]");
  await page.waitForSelector('#page-upstreams tr[data-id="uiup"]');
  for (let i = 0; i < 50; i++) {
    const state = await page.textContent('#page-upstreams tr[data-id="uiup"] .badge');
    if (/^(up|connected|running|ready)$/.test(state)) break;
    await page.waitForTimeout(300);
    await go("#/upstreams", '#page-upstreams tr[data-id="uiup"]').catch(() => {});
    await go("#/overview", "#card-health");
    await go("#/upstreams", '#page-upstreams tr[data-id="uiup"]');
  }
  check(/^(up|connected|running|ready)$/.test(await page.textContent('#page-upstreams tr[data-id="uiup"] .badge')), "upstream never came up");
  await shot("03-upstreams");

  step = "add a virtual server";
  await go("#/servers", "#add-server");
  await page.fill("#add-server input[name=name]", "uivs");
  await page.fill("#add-server input[name=include]", "demo/echo");
  await page.click("#add-server button[type=submit]");
  await page.waitForSelector('#page-servers tr[data-id="uivs"]');
  await shot("04-servers");

  step = "call a tool from the playground";
  await go("#/catalog/echo", "#playground");
  await page.fill("#playground input[name=text]", "hello from the browser");
  await page.click("#playground button[type=submit]");
  await page.waitForSelector("#result pre");
  check((await page.textContent("#result")).includes("hello from the browser"), "echo result");
  await shot("05-playground");

  step = "the playground names a bad argument";
  await go("#/catalog/add", "#playground");
  await page.click("#playground button[type=submit]");
  await page.waitForSelector("#flash .error");
  check(/a|b|required|argument/i.test(await page.textContent("#flash .error")), "error names the argument");

  step = "plugins";
  await go("#/plugins", '#page-plugins tr[data-id="wat"]');
  await page.fill("#load-plugin input[name=name]", "wat2");
  await page.fill("#load-plugin input[name=module]", env("WAYGATE_UI_MODULE"));
  await page.click("#load-plugin button[type=submit]");
  await page.waitForSelector('#page-plugins tr[data-id="wat2"]');
  await shot("06-plugins");

  step = "create and revoke a key";
  await go("#/keys", "#create-key");
  await page.fill("#create-key input[name=name]", "ui-made");
  await page.fill("#create-key input[name=scopes]", "mcp");
  await page.click("#create-key button[type=submit]");
  await page.waitForSelector("#secret");
  check((await page.textContent("#secret")).length > 20, "secret shown");
  await shot("07-keys-created");
  await go("#/overview", "#card-health");
  await go("#/keys", '#page-keys tr[data-id="ui-made"]');
  check(!(await page.isVisible("#secret")), "the secret is shown only once");
  page.once("dialog", (d) => d.accept());
  await page.click('#page-keys tr[data-id="ui-made"] button.danger');
  await page.waitForFunction(() => /revoked/.test(document.querySelector('#page-keys tr[data-id="ui-made"]')?.textContent || ""));

  step = "approve a changed pin";
  await go("#/pins", '[data-pin="wat/pinme"]');
  const diff = await page.textContent('[data-pin="wat/pinme"] .diff');
  check(diff.includes("version two") && diff.includes("version one"), `pin diff: ${diff}`);
  await shot("08-pins");
  await page.click('[data-pin="wat/pinme"] button.primary');
  await page.waitForSelector("#no-held");

  step = "find the call in the audit viewer";
  await go("#/audit", "#audit-filter");
  await page.fill("#audit-filter input[name=target]", "echo");
  await page.click("#audit-filter button[type=submit]");
  await page.waitForFunction(() => /tools\/call/.test(document.querySelector("#page-audit table")?.textContent || ""));
  await shot("09-audit");

  step = "config snapshots";
  await go("#/config", "#config-editor");
  check((await page.inputValue("#config-text")).includes("pinned.wat"), "the editor holds the file");
  await page.fill("#config-text", 'version = 3\n[server]\nlisten = "nowhere"\n');
  await page.click("#config-editor button:has-text('Validate')");
  await page.waitForSelector("#config-verdict li");
  check((await page.textContent("#config-verdict")).includes("listen"), "the verdict names the key");
  await page.fill("#log-level input[name=filter]", "info,waygate_core=debug");
  await page.click("#log-level button");
  await page.waitForFunction(() => /log filter is now/.test(document.querySelector("#flash")?.textContent || ""));
  await shot("10-config");

  step = "policies and limits editors";
  const rules = (effect, name) => JSON.stringify({ authz: { default: "allow" }, policies: [{ name, effect, tools: ["no-such-tool"] }] });
  await page.fill("#policies-text", rules("maybe", "bad"));
  await page.click("#policies-apply");
  await page.waitForFunction(() => /policies\[0\]\.effect/.test(document.querySelector("#flash .error")?.textContent || ""));
  await page.fill("#policies-text", rules("deny", "ui-rule"));
  await page.click("#policies-apply");
  await page.waitForFunction(() => /Policies applied/.test(document.querySelector("#flash")?.textContent || ""));
  await page.waitForFunction(() => /ui-rule/.test(document.querySelector("#policies-text")?.value || ""));
  check((await page.inputValue("#limits-text")).includes("requests_per_second"), "the limits editor holds [limits]");
  await page.click("#page-config tbody tr.list-item");
  await page.waitForSelector("#rollback");
  await shot("11-config-diff");

  step = "a change without the CSRF token is refused";
  const status = await inPage(() => fetch("/api/v1/keys", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ name: "csrf", scopes: ["admin"] }) }).then((r) => r.status));
  check(status === 403, `POST without X-CSRF-Token answered ${status}`);

  step = "sign out";
  await page.click("#logout");
  await page.waitForSelector("#login-form");
  const after = await inPage(() => fetch("/api/v1/keys").then((r) => r.status));
  check(after === 401, `after sign-out the API answered ${after}`);
  await shot("12-signed-out");
  check(!problems.length, problems.join("\n"));
  console.log("ui flow passed");
} catch (e) {
  await shot("failure").catch(() => {});
  console.error(`FAILED at ${step}: ${e.message}`);
  if (problems.length) console.error(problems.join("\n"));
  process.exitCode = 1;
} finally {
  await browser.close();
}
