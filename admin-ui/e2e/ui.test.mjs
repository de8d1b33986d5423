// The admin UI end to end: the real wsgate binary (ephemeral ports, a token file with an admin
// and a viewer), Debian's chromium driven by playwright-core, and real WebSocket clients (the
// browser's own, in a second page). Each test saves a screenshot of its view into docs/admin-ui/.
//
// Env: WSGATE_BIN (the binary), WSGATE_UI_DIR (the built UI), CHROMIUM (default /usr/bin/chromium).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = join(HERE, "..", "..");
const SHOTS = join(REPO, "docs", "admin-ui");
const ADMIN = "admin-token-e2e-0123456789abcdef";
const VIEWER = "viewer-token-e2e-0123456789abcdef";
// Generous deadlines: the condition is waited for, never slept on.
const WAIT = 10_000;

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on("error", reject);
  });
}

async function waitFor(fn, what, timeout = WAIT) {
  const end = Date.now() + timeout;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch {
      // not yet
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

let gw, browser, admin, clients, dataPort, adminPort, log = "";

const CONFIG = `
routes:
  - name: echo
    path: /echo
    echo: {}
  - name: feed
    path: /feed/{session_id}
    pubsub: {}
`;

before(async () => {
  const tmp = mkdtempSync(join(tmpdir(), "wsgate-ui-"));
  writeFileSync(join(tmp, "tokens"), `admin ${ADMIN}\nviewer ${VIEWER}\n`);
  writeFileSync(join(tmp, "wsgate.yaml"), CONFIG);
  [dataPort, adminPort] = [await freePort(), await freePort()];
  const grpcPort = await freePort();
  const args = ["--port", dataPort, "--admin-port", adminPort, "--grpc-port", grpcPort,
    "--listen", "127.0.0.1", "--grpc-listen", "127.0.0.1", "--workers", "2",
    "--shutdown-grace", "1", "--config", join(tmp, "wsgate.yaml"),
    "--admin-token-file", join(tmp, "tokens")].map(String);
  if (process.env.WSGATE_UI_DIR) args.push("--admin-ui-dir", process.env.WSGATE_UI_DIR);
  gw = spawn(process.env.WSGATE_BIN ?? join(REPO, "build/controlplane/main/wsgate"), args,
             { stdio: ["ignore", "pipe", "pipe"] });
  gw.stdout.on("data", (d) => (log += d));
  gw.stderr.on("data", (d) => (log += d));
  await waitFor(async () => (await fetch(`http://127.0.0.1:${adminPort}/ready`)).ok, "wsgate /ready");
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
  mkdirSync(SHOTS, { recursive: true });
  admin = await login(ADMIN);
  // The WebSocket clients run in a page of their own origin-less context: real browser sockets.
  clients = await browser.newPage();
  await clients.goto(`http://127.0.0.1:${dataPort}/health`);
  await clients.evaluate(() => {
    window.sockets = {};
    window.openWs = (key, url) => new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      const rec = { ws, messages: [], close: null };
      window.sockets[key] = rec;
      ws.onmessage = (e) => rec.messages.push(e.data);
      ws.onclose = (e) => (rec.close = { code: e.code, reason: e.reason });
      ws.onopen = () => resolve(true);
      ws.onerror = () => reject(new Error("ws error " + url));
    });
  });
});

after(async () => {
  await browser?.close();
  if (gw && gw.exitCode === null) {
    gw.kill("SIGTERM");
    await new Promise((r) => gw.once("exit", r));
  }
});

const ui = (path = "/") => `http://127.0.0.1:${adminPort}${path}`;
const ws = (path) => `ws://127.0.0.1:${dataPort}${path}`;
const shot = (page, name) => page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
const sock = (key) => clients.evaluate((k) => {
  const r = window.sockets[k];
  return { messages: r.messages, close: r.close };
}, key);

async function login(token, name) {
  const ctx = await browser.newContext({ viewport: { width: 1200, height: 800 } });
  const page = await ctx.newPage();
  await page.goto(ui("/"));
  await page.getByLabel("Token").fill(token);
  if (name) await shot(page, name);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.getByTestId("identity").waitFor();
  return page;
}

test("login screen refuses a wrong token and the overview shows the process live", async () => {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  await page.goto(ui("/sessions")); // a deep link answers the app (SPA fallback)
  await page.getByLabel("Token").fill("not-a-token-at-all-xxxxx");
  await page.getByRole("button", { name: "Log in" }).click();
  await page.getByText("This token is not accepted").waitFor();
  await shot(page, "login");
  await ctx.close();

  await admin.goto(ui("/"));
  await admin.getByRole("heading", { name: "Overview" }).waitFor();
  assert.match(await admin.getByTestId("identity").innerText(), /admin/);
  await clients.evaluate((u) => window.openWs("ov", u), ws("/echo"));
  await admin.getByTestId("active-connections").filter({ hasText: "1" }).waitFor({ timeout: WAIT });
  await admin.getByRole("img", { name: "Messages/s" }).waitFor();
  await shot(admin, "overview");
  await clients.evaluate(() => window.sockets.ov.ws.close());
});

test("routes: the demo routes, a new one from the form used by a real client, field errors", async () => {
  await admin.goto(ui("/routes"));
  const table = admin.getByRole("table", { name: "Routes" });
  await table.getByRole("link", { name: "echo" }).waitFor();
  await table.getByRole("link", { name: "feed" }).waitFor();

  // A server validation error shows at the field it names.
  await admin.getByRole("button", { name: "Add route" }).click();
  await admin.getByLabel("Name").fill("chat");
  await admin.getByLabel("Path").fill("nope");
  await admin.getByRole("button", { name: "Create" }).click();
  const pathError = admin.locator("[id='route.path-error']");
  await pathError.waitFor();
  assert.match(await pathError.innerText(), /route\.path/);
  await shot(admin, "routes-field-error");

  await admin.getByLabel("Path").fill("/chat");
  await admin.getByRole("button", { name: "Create" }).click();
  await admin.getByRole("heading", { name: "Route chat" }).waitFor();
  await clients.evaluate((u) => window.openWs("chat", u), ws("/chat"));
  await clients.evaluate(() => window.sockets.chat.ws.send("hello chat"));
  await waitFor(async () => (await sock("chat")).messages.includes("hello chat"), "echo on /chat");
  await admin.goto(ui("/routes"));
  await admin.getByRole("table", { name: "Routes" }).getByRole("link", { name: "chat" }).waitFor();
  await shot(admin, "routes");
});

// A RouteService call from the test itself (Connect JSON, the admin token): the server's own
// answer, not the page's.
async function routeApi(method, body) {
  const r = await fetch(ui(`/wsgate.v1.RouteService/${method}`), {
    method: "POST", headers: { "Content-Type": "application/json", Authorization: `Bearer ${ADMIN}` },
    body: JSON.stringify(body) });
  const j = await r.json();
  if (!r.ok) throw new Error(`${method}: HTTP ${r.status} ${JSON.stringify(j)}`);
  return j;
}

test("a route edited as YAML: saved and used; syntax and schema errors shown in place, nothing sent", async () => {
  await routeApi("PutRoute", { route: { name: "yaml-demo", path: "/yaml-demo", echo: {} } });
  const puts = [];
  const onRequest = (r) => { if (r.url().endsWith("/wsgate.v1.RouteService/PutRoute")) puts.push(r.postData()); };
  admin.on("request", onRequest);
  try {
    await admin.goto(ui("/routes/yaml-demo"));
    await admin.getByRole("heading", { name: "Route yaml-demo" }).waitFor();
    // An edit in the form is carried into the YAML (the switch converts the current route).
    await admin.getByLabel("Path").fill("/yaml-demo/from-form");
    await admin.getByRole("tab", { name: "YAML" }).click();
    const editor = admin.getByLabel("The whole route (YAML, as in the config file)");
    const text = await editor.inputValue();
    assert.match(text, /^name: yaml-demo$/m);
    assert.match(text, /^path: \/yaml-demo\/from-form$/m);
    assert.match(text, /^echo: \{\}$/m);
    const save = () => admin.getByRole("button", { name: "Save" }).click();
    const textError = admin.locator("#route-text-error");

    // A syntax error: its line and column under the editor, the cursor put there, nothing sent.
    await editor.fill("name: yaml-demo\npath: /yaml-demo/broken\n\tlimits: {}\necho: {}\n");
    await save();
    await textError.filter({ hasText: /YAML syntax error at line 3, column 1/ }).waitFor();
    assert.equal(await editor.evaluate((ta) => ta.selectionStart), "name: yaml-demo\npath: /yaml-demo/broken\n".length);
    await shot(admin, "route-detail");
    // Switching away from a broken text keeps it open with its error.
    await admin.getByRole("tab", { name: "JSON" }).click();
    assert.equal(await admin.getByRole("tab", { name: "YAML" }).getAttribute("aria-selected"), "true");
    assert.match(await editor.inputValue(), /broken/);
    await textError.waitFor();

    // Valid YAML that is no Route: an unknown field, a wrong type (fromJson's answer).
    await editor.fill("name: yaml-demo\npath: /yaml-demo/x\necho: {}\nbogus_field: 1\n");
    await save();
    await textError.filter({ hasText: /Not a valid route: .*key "bogus_field" is unknown/ }).waitFor();
    await editor.fill("name: yaml-demo\npath: /yaml-demo/x\nlimits:\n  max_message_bytes: lots\necho: {}\n");
    await save();
    await textError.filter({ hasText: /Not a valid route: .*max_message_bytes/ }).waitFor();
    assert.equal(puts.length, 0, "a request was sent for a text that is not a route");
    assert.equal((await routeApi("GetRoute", { name: "yaml-demo" })).path, "/yaml-demo");

    // The server's validation error names its field, as in the JSON editor.
    await editor.fill("name: yaml-demo\npath: nope\necho: {}\n");
    await save();
    await admin.getByRole("alert").filter({ hasText: /^route\.path: / }).waitFor();
    assert.equal(puts.length, 1);
    assert.equal((await routeApi("GetRoute", { name: "yaml-demo" })).path, "/yaml-demo");

    // A real edit in the config file's own spelling (snake_case; camelCase is taken too).
    await editor.fill([
      "# as in wsgate.yaml", "name: yaml-demo", "path: /yaml-demo/{client_id}", "limits:",
      "  max_message_bytes: 1024", "  idleTimeoutMs: 30000", "echo: {}", ""].join("\n"));
    await save();
    await admin.getByRole("status").filter({ hasText: /^Saved: version/ }).waitFor();
    assert.equal(puts.length, 2);
    const stored = await routeApi("GetRoute", { name: "yaml-demo" });
    assert.equal(stored.path, "/yaml-demo/{client_id}");
    assert.equal(String(stored.limits.maxMessageBytes), "1024");
    assert.equal(stored.limits.idleTimeoutMs, 30000);
    // The gateway serves it: a real client at the new path gets its echo, and the new limit.
    await clients.evaluate((u) => window.openWs("yaml1", u), ws("/yaml-demo/c1"));
    await clients.evaluate(() => window.sockets.yaml1.ws.send("hello yaml"));
    await waitFor(async () => (await sock("yaml1")).messages.includes("hello yaml"), "echo on /yaml-demo/c1");
    await clients.evaluate(() => window.sockets.yaml1.ws.send("y".repeat(2000)));
    assert.equal((await waitFor(async () => (await sock("yaml1")).close, "the 1009 close")).code, 1009);

    // After a reload the page shows the stored route, in YAML and converted to JSON.
    await admin.reload();
    await admin.getByRole("heading", { name: "Route yaml-demo" }).waitFor();
    await admin.getByRole("tab", { name: "YAML" }).click();
    const again = await editor.inputValue();
    assert.match(again, /^path: \/yaml-demo\/\{client_id\}$/m);
    assert.match(again, /^ {2}max_message_bytes: "?1024"?$/m);
    assert.match(again, /^ {2}idle_timeout_ms: 30000$/m);
    await admin.getByRole("tab", { name: "JSON" }).click();
    const asJson = JSON.parse(await admin.getByLabel("The whole route (proto3 JSON)").inputValue());
    assert.equal(asJson.path, "/yaml-demo/{client_id}");
    assert.equal(asJson.limits.idleTimeoutMs, 30000);
  } finally {
    admin.off("request", onRequest);
  }
});

test("sessions appear without a reload; Send and Close reach the client", async () => {
  await admin.goto(ui("/sessions"));
  await admin.getByRole("heading", { name: "Sessions" }).waitFor();
  for (const k of ["s1", "s2", "s3"]) await clients.evaluate(([k, u]) => window.openWs(k, u), [k, ws("/echo")]);
  await admin.getByLabel("Route").fill("echo");
  await admin.getByTestId("session-total").filter({ hasText: /^3 sessions/ }).waitFor({ timeout: WAIT });
  await shot(admin, "sessions");

  const first = admin.getByRole("table", { name: "Sessions" }).getByRole("link").first();
  await first.click();
  await admin.getByRole("heading", { name: /^Session / }).waitFor();
  await admin.getByLabel("Text").fill("hello from the ui");
  await admin.getByRole("button", { name: "Send" }).click();
  await admin.getByText("Sent.").waitFor();
  const got = await waitFor(async () => {
    for (const k of ["s1", "s2", "s3"]) {
      if ((await sock(k)).messages.includes("hello from the ui")) return k;
    }
    return null;
  }, "the sent text at one client");
  await admin.getByLabel(/^Code/).fill("4000");
  await admin.getByLabel("Reason").fill("closed from the ui");
  await admin.getByRole("button", { name: "Close session" }).click();
  await admin.getByText(/Closed with 4000/).waitFor();
  const closed = await waitFor(async () => (await sock(got)).close, "the close at the client");
  assert.deepEqual(closed, { code: 4000, reason: "closed from the ui" });
  await shot(admin, "session-detail");
});

test("a limit changed in the UI is enforced", async () => {
  await admin.goto(ui("/limits"));
  const input = admin.getByTestId("echo-maxMessageBytes");
  await input.fill("10");
  await admin.getByRole("button", { name: "Save limits of echo" }).click();
  await admin.getByText(/Live on open connections: .*max_message_bytes/).waitFor();
  await shot(admin, "limits");
  await clients.evaluate((u) => window.openWs("big", u), ws("/echo"));
  await clients.evaluate(() => window.sockets.big.ws.send("x".repeat(100)));
  const closed = await waitFor(async () => (await sock("big")).close, "the 1009 close");
  assert.equal(closed.code, 1009);
});

test("events stream in live", async () => {
  await admin.goto(ui("/events"));
  await admin.getByRole("heading", { name: "Events" }).waitFor();
  // The stream is open once the page has rendered; a new connection must show up in it.
  await waitFor(async () => {
    await clients.evaluate((u) => window.openWs("ev" + Math.random(), u), ws("/chat"));
    return (await admin.getByRole("table", { name: "Events" }).getByText("opened").count()) > 0;
  }, "an opened event");
  await shot(admin, "events");
});

test("a viewer sees the pages with every mutation disabled, and the server refuses them", async () => {
  const viewer = await login(VIEWER, null);
  assert.match(await viewer.getByTestId("identity").innerText(), /viewer/);
  await viewer.goto(ui("/routes"));
  await viewer.getByRole("table", { name: "Routes" }).getByRole("link", { name: "echo" }).waitFor();
  assert.equal(await viewer.getByRole("button", { name: "Add route" }).isDisabled(), true);
  assert.equal(await viewer.getByRole("button", { name: "Delete echo" }).isDisabled(), true);
  await shot(viewer, "viewer-routes");
  // Even a hand-made request with the viewer's token is refused by the server.
  const status = await viewer.evaluate(async (token) => {
    const r = await fetch("/wsgate.v1.RouteService/DeleteRoute", {
      method: "POST", headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
      body: JSON.stringify({ name: "echo" }),
    });
    return [r.status, (await r.json()).code];
  }, VIEWER);
  assert.deepEqual(status, [403, "permission_denied"]);
  await viewer.goto(ui("/limits"));
  await viewer.getByTestId("echo-maxMessageBytes").waitFor();
  assert.equal(await viewer.getByTestId("echo-maxMessageBytes").isDisabled(), true);
  await viewer.context().close();
  // The UI has no cookie to lean on: a request without the header is refused.
  const anon = await fetch(ui("/wsgate.v1.RouteService/ListRoutes"), {
    method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" });
  assert.equal(anon.status, 401);
  assert.equal(anon.headers.get("access-control-allow-origin"), null);
  assert.ok(!log.includes(ADMIN) && !log.includes(VIEWER), "a token reached the log");
});
