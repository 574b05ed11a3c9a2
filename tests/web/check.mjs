// Drives Buildcat's web page in headless Chromium (Debian's, through playwright-core) and
// reports what it saw, for tests/tests/it/web.rs, which starts the farm and checks the
// report against `buildcat status --json`.
//
// Environment: BUILDCAT_URL (the page), RENDER_JOB (a 12-task render, submitted while no
// worker runs: it waits queued), LONG_JOB (a job no worker will take), WORKER (the name of
// the worker the test starts), TOKEN (the server's --http-token-file contents: the page
// must ask for it), SHOTS (where screenshots go), CHROMIUM (the browser; default
// /usr/bin/chromium).
//
// Protocol on stdout: one JSON object per line. `{"step": "jobs-seen"}` says the jobs page
// shows the render at 0 tasks done: the test then starts the worker. The last line is the
// report: `{"done": true, ...}`. Any failure prints `{"error": "..."}` and exits 1.

import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const url = need("BUILDCAT_URL");
const renderJob = need("RENDER_JOB");
const longJob = need("LONG_JOB");
const workerName = need("WORKER");
const shots = need("SHOTS");
const token = need("TOKEN");
const PREVIEW_ROUTE = "/api/v1/jobs/{job}/previews/latest";
// Every wait is generous: Blender renders on a machine shared with other tests.
const PATIENCE = 240_000;

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
  // The one error the check provokes on purpose (deleting a queued job: 409) is logged by
  // Chromium as a failed resource; it is kept apart, by its address, from real errors.
  // So is the refused sign-in with a wrong token (401 from /api/v1/login).
  const provoked = [[`/api/v1/jobs/${longJob}`, "409"], ["/api/v1/login", "401"]];
  report.provoked_errors = [];
  page.on("console", (message) => {
    if (message.type() !== "error") return;
    const where = message.location().url || "";
    const path = where ? new URL(where, url).pathname : "";
    if (provoked.some(([p, code]) => p === path && message.text().includes(code))) {
      report.provoked_errors.push(message.text());
    } else {
      report.console_errors.push(message.text() + (where ? " at " + where : ""));
    }
  });
  page.on("pageerror", (error) => report.console_errors.push("page error: " + error.message));
  const go = (hash) => page.evaluate((h) => { location.hash = h; }, hash);
  // Words a page shows only when it rendered a value that was missing.
  report.stray_text = [];
  const strays = async (view) => {
    const shown = await page.evaluate(() => document.getElementById("main").innerText);
    for (const word of shown.match(/\b(null|undefined|NaN|\[object Object\])\b/g) || []) {
      report.stray_text.push(view + ": " + word);
    }
  };

  // Sign in: the page asks for the token; a wrong one is refused with the server's
  // message; the right one is kept by the browser as an HttpOnly cookie, out of the
  // script's reach.
  await page.goto(url + "#/jobs");
  await page.waitForSelector("#login", { state: "visible" });
  await page.fill("#token", "not-the-token");
  await page.click('#login button[type="submit"]');
  await page.waitForSelector("#login-error", { state: "visible" });
  report.login_error = await page.textContent("#login-error");
  await page.fill("#token", token);
  await page.click('#login button[type="submit"]');
  await page.waitForSelector("#login", { state: "hidden" });
  const cookie = (await page.context().cookies()).find((c) => c.name === "buildcat_token");
  report.cookie = cookie ? { httpOnly: cookie.httpOnly, sameSite: cookie.sameSite } : null;
  report.script_sees_cookie = await page.evaluate(() => document.cookie.includes("buildcat_token"));

  // Jobs: the render is listed, then its progress advances without a reload.
  const renderRow = `#jobs tr[data-number="${renderJob}"]`;
  await page.waitForSelector(renderRow);
  const before = Number(await page.getAttribute(`${renderRow} .progress`, "data-finished"));
  report.jobs_page_first_finished = before;
  say({ step: "jobs-seen" });
  await page.waitForFunction(
    ([row, count]) => {
      const bar = document.querySelector(row + " .progress");
      return bar && Number(bar.dataset.finished) > count;
    },
    [renderRow, before],
  );
  report.jobs_page_later_finished = Number(await page.getAttribute(`${renderRow} .progress`, "data-finished"));
  report.reloads = await page.evaluate(() => performance.getEntriesByType("navigation").length);

  // Job: the grid of its tasks fills in; a task's log shows.
  await go(`#/job/${renderJob}`);
  await page.waitForSelector("#task-grid .cell");
  report.grid_cells = await page.locator("#task-grid .cell").count();
  report.grid_first_finished = await page.locator('#task-grid .cell[data-state="finished"]').count();
  await page.waitForFunction(() => {
    const cells = [...document.querySelectorAll("#task-grid .cell")];
    return cells.length > 0 && cells.every((cell) => cell.dataset.state === "finished");
  });
  report.grid_last_finished = await page.locator('#task-grid .cell[data-state="finished"]').count();
  report.grid_tooltip = await page.getAttribute('#task-grid .cell[data-index="0"]', "title");
  await page.click('#task-grid .cell[data-index="0"]');
  await page.waitForFunction(() => (document.getElementById("log")?.textContent || "").trim().length > 0);
  report.log_excerpt = (await page.textContent("#log")).slice(0, 400);
  const served = await page.evaluate(async (route) => {
    const document = await (await fetch("/api/v1/openapi.json")).json();
    return Boolean(document.paths && document.paths[route]);
  }, PREVIEW_ROUTE);
  if (served) {
    await page.waitForSelector('#preview[data-preview="shown"]');
    report.preview = await page.evaluate(() => {
      const img = document.getElementById("preview-image");
      return img && img.complete && img.naturalWidth > 0 ? "decoded" : "not decoded";
    });
  } else {
    report.preview = "route not served";
    report.preview_text = await page.textContent("#preview");
  }
  await strays("job");
  await page.screenshot({ path: join(shots, "job.png"), fullPage: true });

  // Jobs again: an error from the API is shown as the server's message; cancel works.
  await go("#/jobs");
  const longRow = `#jobs tr[data-number="${longJob}"]`;
  await page.waitForSelector(longRow);
  await page.check(`${longRow} input.select`);
  await page.click("#action-delete");
  await page.waitForFunction(() => !document.getElementById("error").hidden);
  report.delete_error = await page.textContent("#error");
  await page.check(`${longRow} input.select`);
  await page.click("#action-cancel");
  await page.waitForSelector(`${longRow}[data-state="canceled"]`);
  report.long_job_state_shown = await page.getAttribute(longRow, "data-state");
  await strays("jobs");
  await page.screenshot({ path: join(shots, "jobs.png"), fullPage: true });

  // Workers: the worker is listed.
  await go("#/workers");
  await page.waitForSelector(`#workers tr[data-worker="${workerName}"]`);
  report.worker_row = await page.textContent(`#workers tr[data-worker="${workerName}"]`);
  await strays("workers");
  await page.screenshot({ path: join(shots, "workers.png"), fullPage: true });

  // Farm: queues, workers, the chart.
  await go("#/farm");
  await page.waitForSelector("#queues table");
  await page.waitForSelector("#throughput svg");
  report.farm_queues = await page.locator("#queues tbody tr").count();
  report.chart_bars = await page.locator("#throughput svg rect").count();
  await strays("farm");
  await page.screenshot({ path: join(shots, "farm.png"), fullPage: true });
  report.live = await page.textContent("#live");
  report.reloads_at_end = await page.evaluate(() => performance.getEntriesByType("navigation").length);
  say(report);
} catch (error) {
  say({ error: String(error && error.stack ? error.stack : error), partial: report });
  process.exitCode = 1;
} finally {
  await browser.close();
}
