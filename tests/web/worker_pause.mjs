// Drives the Workers page's Pause and Resume buttons in headless Chromium (Debian's,
// through playwright-core), for tests/tests/it/worker_pause.rs, which starts the farm and
// checks the server's view after each step.
//
// Environment: BUILDCAT_URL (the page, served without a token), WORKER (the name of the
// idle worker the test started), SHOTS (where the screenshot goes), CHROMIUM (the browser;
// default /usr/bin/chromium).
//
// Protocol on stdout: one JSON object per line. The last line is the report:
// `{"done": true, ...}`. Any failure prints `{"error": "..."}` and exits 1.

import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const url = need("BUILDCAT_URL");
const workerName = need("WORKER");
const shots = need("SHOTS");
// Generous: the machine is shared with the rest of the suite.
const PATIENCE = 120_000;

function need(name) {
  const value = process.env[name];
  if (!value) {
    say({ error: `${name} is not set` });
    process.exit(2);
  }
  return value;
}

function say(object) {
  process.stdout.write(JSON.stringify(object) + "\n");
}

const report = { done: true, console_errors: [] };
mkdirSync(shots, { recursive: true });
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  // Root in a container has no user namespaces for Chromium's sandbox.
  args: ["--no-sandbox"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.setDefaultTimeout(PATIENCE);
  page.on("console", (message) => {
    if (message.type() === "error") report.console_errors.push(message.text());
  });
  page.on("pageerror", (error) => report.console_errors.push("page error: " + error.message));
  const row = `#workers tr[data-worker="${workerName}"]`;
  // The state the row shows once it shows `state`, read from its badge.
  const shows = async (state) => {
    await page.waitForFunction(
      ([selector, wanted]) => document.querySelector(selector + " .state")?.textContent === wanted,
      [row, state],
    );
    return page.textContent(row + " .state");
  };

  await page.goto(url + "#/workers");
  await page.waitForSelector(row);
  report.state_before = await shows("idle");
  await page.click(`${row} button[data-action="pause"]`);
  report.state_paused = await shows("paused");
  await page.waitForSelector(`${row} button[data-action="resume"]`);
  report.buttons_paused = await page.$$eval(`${row} button`, (bs) => bs.map((b) => b.dataset.action));
  await page.screenshot({ path: join(shots, "workers-paused.png"), fullPage: true });
  await page.click(`${row} button[data-action="resume"]`);
  report.state_resumed = await shows("idle");
  report.buttons_resumed = await page.$$eval(`${row} button`, (bs) => bs.map((b) => b.dataset.action));
  say(report);
} catch (error) {
  say({ error: String(error && error.stack || error) });
  process.exitCode = 1;
} finally {
  await browser.close();
}
