// Buildcat's web page: a small single-page app in plain JavaScript.
//
// Views are chosen by the URL's hash (#/farm, #/jobs, #/job/42, #/workers). Each view
// fetches the JSON routes of /api/v1 (the shapes of the CLI's --json) and renders them
// with DOM calls (never HTML strings, so nothing a job is named can run here). The farm
// feed (/api/v1/events) says when anything changed; the view then refetches, at most one
// fetch in flight and one waiting. The job page also follows its job's feed and the
// selected task's log.
"use strict";

const STATES = ["queued", "started", "finished", "failed", "canceled", "deferred", "paused"];
const JOB_STATES = ["queued", "running", "paused", "finished", "failed", "canceled"];
const PREVIEW_ROUTE = "/api/v1/jobs/{job}/previews/latest";

// ---- small DOM helpers ----------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function svg(tag, attrs) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs || {})) el.setAttribute(key, String(value));
  return el;
}

function stateBadge(state) {
  return h("span", { class: "state " + state, text: state });
}

function age(iso) {
  if (!iso) return "";
  const seconds = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (seconds < 60) return Math.round(seconds) + "s";
  if (seconds < 3600) return Math.round(seconds / 60) + "m";
  if (seconds < 86400) return (seconds / 3600).toFixed(1) + "h";
  return (seconds / 86400).toFixed(1) + "d";
}

function duration(startIso, endIso) {
  if (!startIso) return "";
  const end = endIso ? Date.parse(endIso) : Date.now();
  const seconds = Math.max(0, (end - Date.parse(startIso)) / 1000);
  if (seconds < 120) return seconds.toFixed(1) + "s";
  return Math.floor(seconds / 60) + "m" + String(Math.round(seconds % 60)).padStart(2, "0") + "s";
}

function progressBar(tasks) {
  const total = Math.max(1, tasks.total);
  const bar = h("div", { class: "bar" });
  for (const state of ["finished", "started", "failed", "canceled"]) {
    if (!tasks[state]) continue;
    const part = h("span", { class: state, title: tasks[state] + " " + state });
    part.style.width = (100 * tasks[state] / total) + "%";
    bar.append(part);
  }
  return h("div", { class: "progress", "data-finished": tasks.finished, "data-total": tasks.total },
    bar, h("span", { class: "muted", text: tasks.finished + "/" + tasks.total }));
}

// ---- the API --------------------------------------------------------------------------

class Unauthorized extends Error {}

async function api(method, path, body) {
  const init = { method, credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  let data = null;
  try { data = await response.json(); } catch (_) { data = null; }
  if (response.status === 401) throw new Unauthorized((data && data.error) || "token required");
  if (!response.ok) {
    throw new Error((data && data.error) || (method + " " + path + ": HTTP " + response.status));
  }
  return data;
}

// The error shown, and whether a refresh put it there: a refresh that works clears only
// its own errors, so the answer to an action stays until the next action or view.
let errorFromRefresh = false;

function showError(message, fromRefresh) {
  const box = document.getElementById("error");
  if (!message && fromRefresh && !errorFromRefresh) return;
  errorFromRefresh = Boolean(fromRefresh);
  box.textContent = message;
  box.hidden = !message;
}

// ---- login ----------------------------------------------------------------------------

function askForToken() {
  document.getElementById("main").replaceChildren();
  document.getElementById("login").hidden = false;
  setLive("off", "sign in first");
  document.getElementById("token").focus();
}

document.getElementById("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = document.getElementById("token");
  const problem = document.getElementById("login-error");
  try {
    await api("POST", "/api/v1/login", { token: input.value });
    input.value = "";
    problem.hidden = true;
    document.getElementById("login").hidden = true;
    connectFeed();
    route();
  } catch (error) {
    problem.textContent = error.message;
    problem.hidden = false;
  }
});

// ---- the live feed and refreshing -----------------------------------------------------

let feed = null;
let current = null; // { name, refresh, leave }
let refreshing = false;
let refreshAgain = false;

function setLive(kind, text) {
  const live = document.getElementById("live");
  live.className = "live " + kind;
  live.textContent = text;
}

function connectFeed() {
  if (feed) feed.close();
  feed = new EventSource("/api/v1/events");
  feed.addEventListener("ready", () => setLive("on", "live"));
  feed.addEventListener("changed", () => refresh());
  feed.addEventListener("open", () => setLive("on", "live"));
  feed.addEventListener("error", () => setLive("off", "reconnecting"));
}

// Refetches the current view: one fetch at a time, and one more if a change came meanwhile.
async function refresh() {
  if (!current) return;
  if (refreshing) { refreshAgain = true; return; }
  refreshing = true;
  const view = current;
  try {
    await view.refresh();
    if (view === current) showError("", true);
  } catch (error) {
    if (error instanceof Unauthorized) askForToken();
    else if (view === current) showError(error.message, true);
  } finally {
    refreshing = false;
    if (refreshAgain) { refreshAgain = false; refresh(); }
  }
}

// ---- farm -----------------------------------------------------------------------------

function farmView(main) {
  const queues = h("div", { class: "panel", id: "queues" });
  const workers = h("div", { class: "panel", id: "worker-counts" });
  const chart = h("div", { class: "panel chart", id: "throughput" });
  main.append(h("h1", { text: "Farm" }), h("div", { class: "row" }, workers, chart), queues);
  return {
    name: "farm",
    async refresh() {
      const [info, throughput] = await Promise.all([
        api("GET", "/api/v1/info"), api("GET", "/api/v1/throughput")]);
      const rows = info.queues.map((q) => h("tr", { "data-queue": q.name },
        h("td", {}, h("a", { href: "#/jobs?queue=" + encodeURIComponent(q.name), text: q.name }),
          q.held ? " (paused)" : ""),
        h("td", { class: "num", text: q.jobs }),
        ...STATES.map((s) => h("td", { class: "num", text: q[s] }))));
      queues.replaceChildren(...[h("h2", { text: "Queues" }), info.queues.length ? h("table", {},
        h("thead", {}, h("tr", {}, h("th", { text: "queue" }), h("th", { class: "num", text: "jobs" }),
          ...STATES.map((s) => h("th", { class: "num", text: s })))),
        h("tbody", {}, rows)) : h("p", { class: "muted", text: "No queues yet: submit a job." }),
        info.unserved.length ? h("p", { class: "error", text: info.unserved.map((u) =>
          u.tasks + " task(s) of " + u.kind + " in " + u.queue + " wait for a worker" +
          (u.tool ? " with " + u.tool : "")).join("\n") }) : null].filter(Boolean));
      const byState = {};
      for (const w of info.workers) byState[w.state] = (byState[w.state] || 0) + 1;
      workers.replaceChildren(h("h2", { text: "Workers" }), h("div", { class: "counts" },
        h("div", {}, h("b", { text: info.workers.length }), "connected"),
        ...["busy", "idle", "paused", "quarantined"].map((s) =>
          h("div", {}, h("b", { text: byState[s] || 0 }), s))),
        h("p", { class: "muted" }, "Page served by " + location.host + ", Buildcat " + version()));
      chart.replaceChildren(h("h2", { text: "Tasks finished per minute, last hour" }),
        barChart(throughput.minutes));
    },
  };
}

function barChart(minutes) {
  const width = 600, height = 120, bottom = 14;
  const top = Math.max(1, ...minutes.map((m) => m.finished));
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none",
    role: "img", "aria-label": "tasks finished per minute" });
  chart.append(svg("line", { x1: 0, x2: width, y1: height - bottom, y2: height - bottom }));
  const step = width / minutes.length;
  minutes.forEach((m, i) => {
    const barHeight = (height - bottom - 12) * m.finished / top;
    const bar = svg("rect", { x: i * step + 1, width: Math.max(1, step - 2),
      y: height - bottom - barHeight, height: barHeight });
    const title = svg("title", {});
    title.textContent = m.at.slice(11, 16) + " UTC: " + m.finished;
    bar.append(title);
    chart.append(bar);
  });
  const label = svg("text", { x: 2, y: 10 });
  label.textContent = "max " + top + "/min";
  const left = svg("text", { x: 2, y: height - 2 });
  left.textContent = "-60 min";
  const right = svg("text", { x: width - 30, y: height - 2 });
  right.textContent = "now";
  chart.append(label, left, right);
  return chart;
}

function version() {
  const meta = document.querySelector('meta[name="buildcat-version"]');
  return meta ? meta.content : "?";
}

// ---- jobs -----------------------------------------------------------------------------

const jobsState = { sort: "number", descending: true, selected: new Set() };

function jobsView(main, params) {
  const filters = { state: params.get("state") || "", queue: params.get("queue") || "",
    user: params.get("user") || "" };
  const stateSelect = h("select", { id: "filter-state", onchange: () => { filters.state = stateSelect.value; refresh(); } },
    h("option", { value: "", text: "any state" }),
    ...JOB_STATES.map((s) => h("option", { value: s, text: s, selected: s === filters.state })));
  const queueSelect = h("select", { id: "filter-queue", onchange: () => { filters.queue = queueSelect.value; refresh(); } },
    h("option", { value: "", text: "any queue" }));
  const userInput = h("input", { id: "filter-user", placeholder: "user or user@host", value: filters.user,
    onchange: () => { filters.user = userInput.value.trim(); refresh(); } });
  const count = h("span", { class: "muted", id: "selected-count" });
  const act = (label, run, attrs) => h("button", Object.assign({ onclick: () => onSelected(label, run) }, attrs || {}), label);
  const actions = h("div", { class: "actions" }, count,
    act("Cancel", (n) => api("POST", `/api/v1/jobs/${n}/cancel`), { id: "action-cancel", class: "danger" }),
    act("Requeue failed", (n) => api("POST", `/api/v1/jobs/${n}/requeue`), { id: "action-requeue" }),
    act("Requeue all", (n) => api("POST", `/api/v1/jobs/${n}/requeue?all=true`), { id: "action-requeue-all" }),
    act("Pause", (n) => api("POST", `/api/v1/jobs/${n}/pause`), { id: "action-pause" }),
    act("Resume", (n) => api("POST", `/api/v1/jobs/${n}/resume`), { id: "action-resume" }),
    h("input", { id: "priority-value", type: "number", placeholder: "priority", class: "priority" }),
    h("button", { id: "action-priority", onclick: () => {
      const value = document.getElementById("priority-value").value;
      if (value === "" || !Number.isInteger(Number(value))) { showError("priority: give a whole number"); return; }
      onSelected("Priority", (n) => api("POST", `/api/v1/jobs/${n}/priority`, { priority: Number(value) }));
    } }, "Set priority"),
    act("Delete", (n) => api("DELETE", `/api/v1/jobs/${n}`), { id: "action-delete", class: "danger" }));
  const table = h("table", { id: "jobs" });
  const more = h("p", { class: "muted" });
  main.append(h("h1", { text: "Jobs" }),
    h("div", { class: "filters" }, stateSelect, queueSelect, userInput), actions, table, more);

  let jobs = [];

  async function onSelected(label, run) {
    const numbers = [...jobsState.selected];
    if (!numbers.length) { showError(label + ": select one or more jobs first"); return; }
    const problems = [];
    for (const number of numbers) {
      try { await run(number); } catch (error) {
        if (error instanceof Unauthorized) { askForToken(); return; }
        problems.push("job " + number + ": " + error.message);
      }
    }
    if (label === "Delete") for (const n of numbers) jobsState.selected.delete(n);
    await refresh();
    showError(problems.join("\n"));
  }

  function sortValue(job, key) {
    if (key === "progress") return job.tasks.total ? job.tasks.finished / job.tasks.total : 0;
    if (key === "age") return -Date.parse(job.created);
    return job[key];
  }

  function render() {
    const key = jobsState.sort;
    const sorted = [...jobs].sort((a, b) => {
      const x = sortValue(a, key), y = sortValue(b, key);
      const order = x < y ? -1 : x > y ? 1 : 0;
      return jobsState.descending ? -order : order;
    });
    const header = (label, sortKey, cls) => h("th", {
      class: ["sortable", cls, key === sortKey ? (jobsState.descending ? "sorted-desc" : "sorted-asc") : ""].filter(Boolean).join(" "),
      onclick: () => {
        if (jobsState.sort === sortKey) jobsState.descending = !jobsState.descending;
        else { jobsState.sort = sortKey; jobsState.descending = false; }
        render();
      } }, label);
    const all = h("input", { type: "checkbox", title: "select all",
      checked: jobs.length > 0 && jobs.every((j) => jobsState.selected.has(j.number)),
      onchange: () => {
        for (const j of jobs) { if (all.checked) jobsState.selected.add(j.number); else jobsState.selected.delete(j.number); }
        render();
      } });
    table.replaceChildren(
      h("thead", {}, h("tr", {}, h("th", {}, all), header("#", "number", "num"), header("name", "name"),
        header("submitter", "submitter"), header("state", "state"), header("tasks", "progress"),
        header("priority", "priority", "num"), header("queue", "queue"), header("age", "age"))),
      h("tbody", {}, sorted.map((job) => {
        const chosen = jobsState.selected.has(job.number);
        return h("tr", { class: chosen ? "selected" : "", "data-number": job.number, "data-state": job.state },
          h("td", {}, h("input", { type: "checkbox", class: "select", checked: chosen, onchange: (e) => {
            if (e.target.checked) jobsState.selected.add(job.number); else jobsState.selected.delete(job.number);
            render();
          } })),
          h("td", { class: "num" }, h("a", { href: "#/job/" + job.number, text: job.number })),
          h("td", { class: "name", title: job.name }, h("a", { href: "#/job/" + job.number, text: job.name })),
          h("td", { text: job.submitter }),
          h("td", { class: "job-state" }, stateBadge(job.state)),
          h("td", {}, progressBar(job.tasks)),
          h("td", { class: "num", text: job.priority }),
          h("td", { text: job.queue }),
          h("td", { title: job.created, text: age(job.created) }));
      })));
    count.textContent = jobsState.selected.size ? jobsState.selected.size + " selected:" : "select jobs to act on them:";
  }

  return {
    name: "jobs",
    async refresh() {
      const query = new URLSearchParams({ limit: "200" });
      for (const [k, v] of Object.entries(filters)) if (v) query.set(k, v);
      const [listing, info] = await Promise.all([
        api("GET", "/api/v1/jobs?" + query), api("GET", "/api/v1/info")]);
      jobs = listing.jobs;
      const known = new Set(jobs.map((j) => j.number));
      for (const n of [...jobsState.selected]) if (!known.has(n)) jobsState.selected.delete(n);
      const queues = info.queues.map((q) => q.name);
      if (filters.queue && !queues.includes(filters.queue)) queues.push(filters.queue);
      queueSelect.replaceChildren(h("option", { value: "", text: "any queue" }),
        ...queues.map((q) => h("option", { value: q, text: q, selected: q === filters.queue })));
      more.textContent = listing.more ? "More jobs than shown: narrow the filters." : "";
      render();
    },
  };
}

// ---- one job --------------------------------------------------------------------------

let previewsServed = null; // whether this server has the previews route (from its OpenAPI)

async function hasPreviews() {
  if (previewsServed === null) {
    const document = await api("GET", "/api/v1/openapi.json");
    previewsServed = Boolean(document.paths && document.paths[PREVIEW_ROUTE]);
  }
  return previewsServed;
}

// `3/10 frames`, and how far the frame being rendered is where the tool says (`frame_percent`).
function taskProgress(p) {
  const counted = `${p.done}/${p.total} frames`;
  return p.frame_percent == null ? counted : `${counted}, the next at ${p.frame_percent}%`;
}

function jobView(main, number) {
  const header = h("div", { class: "panel", id: "job-header" });
  const grid = h("div", { class: "grid", id: "task-grid" });
  const preview = h("div", { class: "panel preview", id: "preview", "data-preview": "none" },
    h("h2", { text: "Last rendered frame" }), h("p", { class: "muted", text: "no frame yet" }));
  const task = h("div", { class: "panel", id: "task" }, h("p", { class: "muted", text: "Click a task to see its attempts and log." }));
  main.append(header, h("div", { class: "row" },
    h("div", { class: "panel" }, h("h2", { text: "Tasks" }), grid), preview), task);

  let chosen = null;      // the selected task's index
  let logFeed = null;     // its log's EventSource
  let previewKey = "";    // what the shown picture is
  const jobFeed = new EventSource(`/api/v1/jobs/${number}/events`);
  for (const name of ["task", "progress", "ended"]) jobFeed.addEventListener(name, () => refresh());
  jobFeed.addEventListener("end", () => jobFeed.close());
  jobFeed.addEventListener("refused", (e) => { jobFeed.close(); showError(JSON.parse(e.data).error); });

  async function showPreview() {
    if (!(await hasPreviews())) return;
    const answer = await api("GET", `/api/v1/jobs/${number}/previews`);
    const list = Array.isArray(answer) ? answer : (answer && answer.previews) || [];
    if (!list.length) return;
    const key = list[0].at + "/" + list[0].task + "/" + list[0].frame;
    if (key === previewKey) return;
    previewKey = key;
    const img = h("img", { id: "preview-image", alt: "frame " + list[0].frame + " of task " + list[0].task,
      src: `/api/v1/jobs/${number}/previews/latest?at=${encodeURIComponent(list[0].at)}` });
    img.addEventListener("load", () => preview.setAttribute("data-preview", "shown"));
    preview.replaceChildren(h("h2", { text: "Last rendered frame" }), img,
      h("p", { class: "muted", text: `task ${list[0].task}, frame ${list[0].frame}, ${list[0].width}×${list[0].height}` }));
  }

  function follow(index) {
    if (logFeed) logFeed.close();
    const pre = h("pre", { class: "log", id: "log" });
    logFeed = new EventSource(`/api/v1/jobs/${number}/tasks/${index}/log/events`);
    logFeed.addEventListener("log", (e) => {
      const page = JSON.parse(e.data);
      const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      if (page.dropped) pre.append(`[... ${page.dropped.lines} lines dropped ...]\n`);
      // Runs of lines of one stream; stderr runs in their own colour.
      const stderr = new Set(page.stderr || []);
      let run = [], runIsErr = false;
      const flush = () => {
        if (!run.length) return;
        const text = run.join("\n") + "\n";
        pre.append(runIsErr ? h("span", { class: "stderr", text }) : text);
        run = [];
      };
      page.lines.forEach((line, i) => {
        if (stderr.has(i) !== runIsErr) { flush(); runIsErr = stderr.has(i); }
        run.push(line);
      });
      flush();
      if (atBottom) pre.scrollTop = pre.scrollHeight;
    });
    logFeed.addEventListener("end", () => logFeed && logFeed.close());
    logFeed.addEventListener("refused", (e) => { logFeed.close(); pre.append("[" + JSON.parse(e.data).error + "]\n"); });
    return pre;
  }

  async function showTask(index, fresh) {
    const t = await api("GET", `/api/v1/jobs/${number}/tasks/${index}`);
    const attempts = h("table", {}, h("thead", {}, h("tr", {}, ...["#", "worker", "started", "took", "outcome", "reason"]
      .map((c) => h("th", { text: c })))),
      h("tbody", {}, t.attempts.map((a) => h("tr", {}, h("td", { text: a.number }), h("td", { text: a.worker || "" }),
        h("td", { text: a.started || "" }), h("td", { text: duration(a.started, a.ended) }),
        h("td", { text: a.outcome || "running" }), h("td", { class: "name", title: [a.reason, a.gpu_fault && "GPU fault: " + a.gpu_fault].filter(Boolean).join("\n"),
          text: (a.reason || "") + (a.gpu_fault ? " (GPU fault)" : "") })))));
    const old = document.getElementById("log");
    const log = fresh || !old ? follow(index) : old;
    task.replaceChildren(h("h2", { text: `Task ${t.task}` + (t.frames ? ` (frames ${t.frames})` : "") }),
      h("p", {}, stateBadge(t.state), " ", t.progress ? taskProgress(t.progress) : "",
        t.reason ? " · " + t.reason : "", t.gpu_fault ? " · GPU fault: " + t.gpu_fault : ""),
      h("h2", { text: "Attempts" }), attempts, h("h2", { text: "Log" }), log);
  }

  return {
    name: "job",
    leave() { jobFeed.close(); if (logFeed) logFeed.close(); },
    async refresh() {
      const job = await api("GET", `/api/v1/jobs/${number}`);
      header.replaceChildren(h("h1", {}, `Job ${job.number}: ${job.name} `, stateBadge(job.state)),
        h("dl", { class: "facts" },
          h("dt", { text: "runs" }), h("dd", { text: job.runs }),
          h("dt", { text: "frames" }), h("dd", { text: framesOf(job.tasks) }),
          h("dt", { text: "queue" }), h("dd", { text: job.queue }),
          h("dt", { text: "submitter" }), h("dd", { text: job.submitter }),
          h("dt", { text: "priority" }), h("dd", { text: job.priority }),
          ...(job.gpus ? [h("dt", { text: "needs" }), h("dd", { class: "gpus", text: job.gpus.text + " per task" })] : []),
          h("dt", { text: "created" }), h("dd", { text: job.created + " (" + age(job.created) + " ago)" })));
      grid.replaceChildren(...job.tasks.map((t) => h("div", {
        class: "cell " + t.state + (t.index === chosen ? " chosen" : ""),
        "data-index": t.index, "data-state": t.state,
        title: `task ${job.number}.${t.index}${t.frames ? " frames " + t.frames : ""}: ${t.state}` +
          `\nworker: ${t.worker || "none yet"}` +
          `\ntime: ${t.started ? duration(t.started, t.ended) : "not started"}` +
          `\nattempts: ${t.attempts}` + (t.reason ? "\n" + t.reason : ""),
        onclick: () => { chosen = t.index; showTask(t.index, true).catch((e) => showError(e.message)); refresh(); },
      }, t.index)));
      await showPreview();
      if (chosen !== null) await showTask(chosen, false);
    },
  };
}

// The frames of a job's tasks in a line: all of them for a few tasks, else the first and
// the last task's.
function framesOf(tasks) {
  const frames = tasks.map((t) => t.frames).filter(Boolean);
  if (!frames.length) return "–";
  if (frames.length <= 6) return frames.join(", ");
  return `${frames[0]}, … ${frames[frames.length - 1]} (${tasks.length} tasks)`;
}

// ---- workers --------------------------------------------------------------------------

// A GPU as `info` names it: `GPU 0 NVIDIA H200 140 GiB`.
function gpuText(gpu) {
  const parts = ["GPU " + gpu.index];
  if (gpu.name) parts.push(gpu.name);
  if (gpu.memory_mib > 0) parts.push(Math.round(gpu.memory_mib / 1024) + " GiB");
  return parts.join(" ");
}

function workersView(main) {
  const table = h("table", { id: "workers" });
  const none = h("p", { class: "muted", text: "No worker is connected.", hidden: true });
  main.append(h("h1", { text: "Workers" }), table, none);
  return {
    name: "workers",
    async refresh() {
      const { workers } = await api("GET", "/api/v1/workers");
      table.replaceChildren(h("thead", {}, h("tr", {}, ...["name", "host", "state", "task", "queues", "tools", "GPUs", "root", "quarantine", ""]
        .map((c) => h("th", { text: c })))),
        h("tbody", {}, workers.map((w) => h("tr", { "data-worker": w.name },
          h("td", { text: w.name }), h("td", { text: w.host }),
          h("td", {}, stateBadge(w.state), w.paused && w.state !== "paused" ? " (paused: ends its task)" : ""),
          h("td", {}, w.task ? h("a", { href: "#/job/" + w.task.split(".")[0], text: w.task }) : ""),
          h("td", { text: w.queues.join(", ") }),
          h("td", { class: "tools", text: (w.tools || []).map((t) => t.version ? t.name + " " + t.version : t.name).join(", ") }),
          h("td", { class: "gpus", text: (w.gpus || []).map(gpuText).join(", ") }),
          h("td", { class: "name", title: w.root, text: w.root }),
          h("td", { class: "name", title: w.quarantine || "", text: w.quarantine || "" }),
          h("td", { class: "actions" }, ...workerActions(w, refresh))))));
      none.hidden = workers.length > 0;
    },
  };
}

// A worker's buttons: Pause (it finishes its task and takes no more) or Resume, and Enable
// while it is quarantined. Each posts one action and refetches the view.
function workerActions(w, refresh) {
  const action = (name, label, title) => h("button", { "data-action": name, title, onclick: async () => {
    try { await api("POST", `/api/v1/workers/${encodeURIComponent(w.name)}/${name}`); await refresh(); }
    catch (error) { showError(error.message); }
  } }, label);
  const buttons = [w.paused
    ? action("resume", "Resume", "Let it take work again")
    : action("pause", "Pause", "Finish the task it runs, take no new one")];
  if (w.quarantine) buttons.push(action("enable", "Enable", "End its quarantine"));
  return buttons;
}

// ---- routing --------------------------------------------------------------------------

function route() {
  if (current && current.leave) current.leave();
  const [path, query] = (location.hash.slice(1) || "/farm").split("?");
  const params = new URLSearchParams(query || "");
  const main = document.getElementById("main");
  main.replaceChildren();
  showError("");
  const parts = path.split("/").filter(Boolean);
  if (parts[0] === "jobs") current = jobsView(main, params);
  else if (parts[0] === "job" && /^\d+$/.test(parts[1] || "")) current = jobView(main, parts[1]);
  else if (parts[0] === "workers") current = workersView(main);
  else current = farmView(main);
  for (const link of document.querySelectorAll("nav a")) {
    link.classList.toggle("current", link.dataset.view === current.name ||
      (current.name === "job" && link.dataset.view === "jobs"));
  }
  refresh();
}

window.addEventListener("hashchange", route);

async function start() {
  document.getElementById("address").textContent = location.host;
  // Asked without provoking a 401: the server says whether this browser is signed in.
  try {
    const login = await api("GET", "/api/v1/login");
    if (!login.signed_in) { askForToken(); return; }
  } catch (error) {
    showError(error.message);
  }
  connectFeed();
  route();
  // Ages and running times move with the clock, not with the farm: redraw once a minute.
  setInterval(refresh, 60000);
}

start();
