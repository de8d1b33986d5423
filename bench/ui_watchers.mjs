// N separate Chromium processes, each logged in to the admin UI and watching /sessions (the page
// polls ListSessions every second over Connect). Used by bench/ui_load.py, which measures what
// they cost the gateway. Prints "READY" once every page shows its first page of sessions, then
// after `seconds` one JSON line: ListSessions answers each browser saw, and closes them.
//   node bench/ui_watchers.mjs ADMIN_URL TOKEN COUNT SECONDS
import { join, dirname } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
// playwright-core is the admin UI's own dev dependency (no browser download: Debian's chromium).
const { chromium } = await import(
  pathToFileURL(join(here, "..", "admin-ui", "node_modules", "playwright-core", "index.mjs")).href);

const [url, token, count, seconds] = process.argv.slice(2);
const browsers = [];
const answers = [];
for (let i = 0; i < Number(count); i++) {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
  browsers.push(browser);
  const page = await browser.newPage();
  answers.push(0);
  page.on("response", (r) => {
    if (r.url().endsWith("/wsgate.v1.SessionService/ListSessions") && r.status() === 200) answers[i]++;
  });
  await page.goto(`${url}/`);
  await page.getByLabel("Token").fill(token);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.getByTestId("identity").waitFor();
  await page.goto(`${url}/sessions`);
  await page.getByRole("heading", { name: "Sessions" }).waitFor();
  await page.locator("tbody tr").first().waitFor({ timeout: 30000 });
}
const before = [...answers];
console.log("READY");
await new Promise((r) => setTimeout(r, Number(seconds) * 1000));
console.log(JSON.stringify({ answers: answers.map((a, i) => a - before[i]) }));
for (const b of browsers) await b.close();
