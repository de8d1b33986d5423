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
  await shot(admin, "route-detail");
  await clients.evaluate((u) => window.openWs("chat", u), ws("/chat"));
  await clients.evaluate(() => window.sockets.chat.ws.send("hello chat"));
  await waitFor(async () => (await sock("chat")).messages.includes("hello chat"), "echo on /chat");
  await admin.goto(ui("/routes"));
  await admin.getByRole("table", { name: "Routes" }).getByRole("link", { name: "chat" }).waitFor();
  await shot(admin, "routes");
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
