// The evalcluster workbench: a small single-page app over the service's JSON routes.
//
// Safety rules this file keeps: every piece of text from the server (model outputs, prompts,
// dataset text, names, comments) reaches the page through textContent or createTextNode only,
// never innerHTML; the API key lives in sessionStorage and travels as a Bearer header (the
// event stream's ?token=), never in a cookie.

const KEY_SLOT = "evalcluster.key";
const LIVE_STATUSES = new Set(["pending", "running"]);
const RESUMABLE = new Set(["interrupted", "killed", "failed", "budget_exhausted"]);
const MAX_STREAMS = 3; // event streams open at once (tenants have a quota of them)
const PROVIDERS_POLL_MS = 3000;
const RUNS_POLL_MS = 5000;
const PAGE_SIZE = 50;

let cleanups = []; // what the current page must stop (sockets, timers) when left

// -- small DOM helpers -------------------------------------------------------------------------

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") node.textContent = String(value);
    else if (name === "onclick" || name === "onsubmit" || name === "onchange" || name === "oninput") {
      node.addEventListener(name.slice(2), value);
    } else if (name.startsWith("on")) {
      throw new Error("no inline handlers");
    } else if (name === "className") node.className = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "text") node.textContent = String(value);
    else node.setAttribute(name, String(value));
  }
  for (const child of children) if (child) node.appendChild(child);
  return node;
}

function main() {
  return document.getElementById("main");
}

function show(...children) {
  const m = main();
  m.replaceChildren();
  append(m, children);
}

function say(message) {
  document.getElementById("status").textContent = message;
}

function fmt(value, digits = 3) {
  if (value === null || value === undefined) return "–";
  if (typeof value === "number") {
    if (Number.isInteger(value)) return value.toLocaleString("en-US");
    return value.toFixed(digits);
  }
  return String(value);
}

function pct(value) {
  return value === null || value === undefined ? "–" : `${(value * 100).toFixed(1)}%`;
}

function money(value) {
  return value === null || value === undefined ? "–" : `$${value.toFixed(4)}`;
}

function interval(stats) {
  if (!stats || stats.mean === null || stats.mean === undefined) return "–";
  const ci = stats.ci_low === null || stats.ci_low === undefined
    ? "" : ` [${pct(stats.ci_low)}, ${pct(stats.ci_high)}]`;
  return `${pct(stats.mean)}${ci}`;
}

function table(headers, rows, caption) {
  const head = el("tr", {}, headers.map((h) =>
    el("th", { scope: "col", className: h.num ? "num" : undefined, text: h.label ?? h })));
  return el("table", {}, caption ? el("caption", { className: "muted", text: caption }) : null,
    el("thead", {}, head), rows instanceof HTMLTableSectionElement ? rows : el("tbody", {}, rows));
}

function td(value, num = false) {
  return el("td", { className: num ? "num" : undefined }, value instanceof Node ? value : fmt(value));
}

function field(label, control) {
  return el("label", {}, label, control);
}

function select(name, options, value) {
  const node = el("select", { name });
  for (const option of options) {
    const [v, text] = Array.isArray(option) ? option : [option, option];
    node.appendChild(el("option", { value: v, text, selected: v === value }));
  }
  return node;
}

// -- the API -------------------------------------------------------------------------------------

function key() {
  return sessionStorage.getItem(KEY_SLOT);
}

class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

async function api(path, options = {}) {
  const headers = { Authorization: `Bearer ${key()}` };
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method: options.method || "GET",
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
    credentials: "omit",
    cache: "no-store",
  });
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (response.status === 401 || response.status === 403) {
    if (path === "/v1/ui/me" || response.status === 401) signOut("That key was not accepted.");
    throw new ApiError(response.status, (body && body.detail) || "not allowed");
  }
  if (!response.ok) throw new ApiError(response.status, (body && body.detail) || response.statusText);
  return body;
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, v);
  }
  const text = q.toString();
  return text ? `?${text}` : "";
}

// -- routing -------------------------------------------------------------------------------------

function parseHash() {
  const hash = location.hash.replace(/^#/, "") || "/runs";
  const [path, search] = hash.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { parts, params: new URLSearchParams(search || "") };
}

function go(path, params = {}) {
  location.hash = `#${path}${query(params)}`;
}

async function route() {
  for (const stop of cleanups) stop();
  cleanups = [];
  closeDrawer();
  if (!key()) return signInPage();
  const { parts, params } = parseHash();
  for (const link of document.querySelectorAll("nav a")) {
    const current = link.getAttribute("href") === `#/${parts[0]}`;
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  try {
    const [page, id] = parts;
    if (page === "run" && id) await runPage(id);
    else if (page === "samples" && id) await samplesPage(id, params);
    else if (page === "review" && id) await reviewPage(id, params);
    else if (page === "compare") await comparePage(params);
    else if (page === "providers") await providersPage();
    else await runsPage();
    main().focus({ preventScroll: true });
  } catch (error) {
    if (error instanceof ApiError && (error.status === 401 || error.status === 403) && !key()) return;
    show(el("h1", { text: "Something went wrong" }), el("p", { className: "error", text: error.message }));
  }
}

// -- sign-in -------------------------------------------------------------------------------------

function signOut(message) {
  sessionStorage.removeItem(KEY_SLOT);
  document.getElementById("who").textContent = "";
  document.getElementById("nav").hidden = true;
  document.getElementById("signout").hidden = true;
  for (const stop of cleanups) stop();
  cleanups = [];
  signInPage(message);
}

function signInPage(message) {
  const input = el("input", { type: "password", name: "key", id: "api-key", autocomplete: "off", required: true });
  const error = el("p", { className: "error", id: "signin-error", text: message || "" });
  const form = el("form", { className: "signin", onsubmit: async (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY_SLOT, input.value.trim());
    try {
      await whoAmI();
      if (!location.hash || location.hash === "#/") go("/runs");
      else route();
    } catch (e) {
      if (key()) sessionStorage.removeItem(KEY_SLOT);
      error.textContent = e instanceof ApiError && e.status === 403 ? "That key was not accepted." : e.message;
    }
  } },
  el("h1", { text: "Sign in" }),
  el("p", { className: "muted", text: "Paste an API key of your tenant. It is kept in this tab only (session storage) and sent with every request." }),
  field("API key", input),
  el("button", { type: "submit", className: "primary", text: "Sign in" }),
  error);
  show(form);
  input.focus();
}

async function whoAmI() {
  const me = await api("/v1/ui/me");
  document.getElementById("who").textContent = `${me.tenant} (${me.role})`;
  document.getElementById("nav").hidden = false;
  document.getElementById("signout").hidden = false;
  return me;
}

// -- runs ----------------------------------------------------------------------------------------

function statusPill(status) {
  return el("span", { className: `pill ${status}`, text: status });
}

function progressBar(done, total) {
  const share = total ? Math.min(1, done / total) : 0;
  const inner = el("span");
  inner.style.width = `${(share * 100).toFixed(1)}%`;
  return el("span", { className: "bar", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": total || 0,
    "aria-valuenow": done || 0, "aria-label": "samples done" }, inner);
}

// A batching run's batches, beside its progress (as the CLI's line under the bar); "" otherwise.
function batchText(b) {
  if (!b || !(b.queued || b.batches_in_progress)) return "";
  return ` · batches: ${fmt(b.queued)} queued, ${fmt(b.batches_in_progress)} at the provider ` +
    `(${fmt(b.requests_in_progress)} requests), ${fmt(b.answered)} answered`;
}

async function runsPage() {
  const [runs, suites] = await Promise.all([api("/v1/runs?limit=200"), api("/v1/suites").catch(() => ({ suites: [] }))]);
  const body = el("tbody");
  const live = new Map(); // run id -> socket
  const rates = new Map(); // run id -> [time, done]

  function row(run) {
    const cells = {
      status: el("td", {}, statusPill(run.status)),
      progress: el("td", {}, progressBar(0, 0), " ", el("span", { className: "done", text: "" })),
      cost: el("td", { className: "num", text: "–" }),
      rate: el("td", { className: "num", text: "–" }),
      errors: el("td", { className: "num", text: "–" }),
    };
    const actions = el("td");
    if (LIVE_STATUSES.has(run.status)) {
      actions.appendChild(el("button", { type: "button", text: "Cancel", onclick: async () => {
        try { await api(`/v1/runs/${encodeURIComponent(run.run_id)}/cancel`, { method: "POST" }); say(`Cancel sent to ${run.run_id}`); }
        catch (e) { say(e.message); }
      } }));
    } else if (RESUMABLE.has(run.status)) {
      actions.appendChild(el("button", { type: "button", text: "Resume", onclick: async () => {
        try { await api(`/v1/runs/${encodeURIComponent(run.run_id)}/resume`, { method: "POST" }); say(`Resumed ${run.run_id}`); refresh(); }
        catch (e) { say(e.message); }
      } }));
    }
    const tr = el("tr", { "data-run": run.run_id, "data-built": run.status },
      el("td", {}, el("a", { href: `#/run/${encodeURIComponent(run.run_id)}`, text: run.run_id })),
      el("td", { text: run.suite }), cells.status, cells.progress, cells.cost, cells.rate, cells.errors,
      el("td", { text: (run.created_at || "").replace("T", " ").slice(0, 19) }), actions);
    tr.cells_ = cells;
    return tr;
  }

  function update(tr, event) {
    const c = tr.cells_;
    if (event.status) c.status.replaceChildren(statusPill(event.status));
    if (event.done !== undefined) {
      c.progress.replaceChildren(progressBar(event.done, event.total), " ",
        el("span", { className: "done", text: `${fmt(event.done)} / ${fmt(event.total)}` }),
        el("span", { className: "muted batches", text: batchText(event.batches) }));
      const now = performance.now();
      const before = rates.get(tr.dataset.run);
      if (before && now > before[0]) {
        const rate = ((event.done - before[1]) * 1000) / (now - before[0]);
        if (rate >= 0) c.rate.textContent = `${rate.toFixed(1)}/s`;
      }
      rates.set(tr.dataset.run, [now, event.done]);
    }
    if (event.cost_usd !== undefined && event.cost_usd !== null) c.cost.textContent = money(event.cost_usd);
    if (event.errors !== undefined && event.errors !== null) c.errors.textContent = fmt(event.errors);
  }

  function follow(run, tr) {
    if (live.has(run.run_id) || live.size >= MAX_STREAMS) return;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const url = `${scheme}://${location.host}/v1/runs/${encodeURIComponent(run.run_id)}/events?token=${encodeURIComponent(key())}`;
    const socket = new WebSocket(url);
    live.set(run.run_id, socket);
    socket.onmessage = (message) => {
      let event;
      try { event = JSON.parse(message.data); } catch { return; }
      if (event.type === "progress" || event.type === "status") update(tr, event);
      else if (event.type === "state" || event.type === "end") update(tr, event.run);
      if (event.type === "end") setTimeout(refresh, 500);
    };
    socket.onclose = () => { live.delete(run.run_id); };
  }

  async function fill(list) {
    body.replaceChildren();
    for (const run of list.runs) {
      const tr = row(run);
      body.appendChild(tr);
      if (LIVE_STATUSES.has(run.status)) follow(run, tr);
      else finalFigures(run, tr);
    }
    if (!list.runs.length) body.appendChild(el("tr", {}, el("td", { colspan: 9, className: "muted", text: "No runs yet." })));
  }

  async function finalFigures(run, tr) {
    try {
      const state = await api(`/v1/runs/${encodeURIComponent(run.run_id)}`);
      update(tr, state);
      tr.cells_.rate.textContent = "–"; // a rate is for runs going now
    } catch { /* a run that disappeared: the next refresh drops it */ }
  }

  async function refresh() {
    try {
      const list = await api("/v1/runs?limit=200");
      // Rows are rebuilt when a run appears or its status changes (its actions change with it).
      const shown = [...body.querySelectorAll("tr[data-run]")].map((tr) => `${tr.dataset.run}:${tr.dataset.built}`);
      const now = list.runs.map((r) => `${r.run_id}:${r.status}`);
      if (shown.join() !== now.join()) {
        for (const socket of live.values()) socket.close();
        live.clear();
        await fill(list);
      }
    } catch (e) { say(e.message); }
  }

  const suiteNames = suites.suites.map((s) => s.name);
  const maxSamples = el("input", { type: "number", name: "max_samples", min: 1, inputmode: "numeric" });
  const suiteSelect = select("suite", suiteNames, suiteNames[0]);
  const startForm = el("form", { className: "inline", onsubmit: async (event) => {
    event.preventDefault();
    const request = { suite: suiteSelect.value };
    if (maxSamples.value) request.max_samples = Number(maxSamples.value);
    try {
      const accepted = await api("/v1/runs", { method: "POST", body: request });
      say(`Started ${accepted.run_id}`);
      for (const socket of live.values()) socket.close();
      live.clear();
      await fill(await api("/v1/runs?limit=200"));
    } catch (e) { say(e.message); }
  } },
  field("Suite", suiteSelect), field("Max samples (optional)", maxSamples),
  el("button", { type: "submit", className: "primary", text: "Start run", disabled: !suiteNames.length }));

  show(el("h1", { text: "Runs" }),
    el("h2", { text: "Start a run" }), suiteNames.length ? startForm : el("p", { className: "muted", text: "No suites yet: create one with POST /v1/suites." }),
    el("h2", { text: "Your runs" }),
    table(["Run", "Suite", "Status", "Progress", { label: "Cost", num: true }, { label: "Rate", num: true },
      { label: "Errors", num: true }, "Created", "Actions"], body));
  await fill(runs);
  const timer = setInterval(refresh, RUNS_POLL_MS);
  cleanups.push(() => { clearInterval(timer); for (const socket of live.values()) socket.close(); live.clear(); });
}

// -- one run -------------------------------------------------------------------------------------

async function summary(runId) {
  return api(`/v1/ui/runs/${encodeURIComponent(runId)}/summary`);
}

function humanCells(stats) {
  const h = stats.human;
  if (!h) return [td("–", true), td("–", true), td("–", true), td("–", true)];
  const ppi = h.ppi || {};
  const ppiText = ppi.estimate === null || ppi.estimate === undefined ? "–"
    : `${pct(ppi.estimate)}${ppi.ci_low === null ? "" : ` [${pct(ppi.ci_low)}, ${pct(ppi.ci_high)}]`}`;
  return [td(h.labelled, true), el("td", { className: "num corrected", text: pct(h.corrected_mean) }),
    el("td", { className: "num kappa", text: h.agreement.kappa === null ? "–" : h.agreement.kappa.toFixed(3) }),
    el("td", { className: "num ppi", text: ppiText })];
}

function scorerTable(s) {
  const rows = [];
  for (const [target, t] of Object.entries(s.targets)) {
    for (const [scorer, stats] of Object.entries(t.scorers)) {
      rows.push(el("tr", { "data-target": target, "data-scorer": scorer }, td(target), td(scorer),
        el("td", { className: "num mean", text: interval(stats) }), td(stats.n, true), ...humanCells(stats)));
    }
  }
  return table(["Target", "Scorer", { label: "Mean [95% interval]", num: true }, { label: "Samples", num: true },
    { label: "Labelled", num: true }, { label: "Human-corrected", num: true }, { label: "Judge-human kappa", num: true },
    { label: "PPI estimate [95%]", num: true }], rows);
}

function targetCard(name, t) {
  const dl = el("dl");
  const items = [["Rows", fmt(t.rows)], ["Samples", fmt(t.samples)], ["Errors", fmt(t.errors)],
    ["Cache hits", fmt(t.cache_hits)], ["Input tokens", fmt(t.input_tokens)], ["Output tokens", fmt(t.output_tokens)],
    ["Cost", money(t.cost_usd)], ["Latency p50", `${fmt(t.latency_ms.p50, 1)} ms`],
    ["Latency p90", `${fmt(t.latency_ms.p90, 1)} ms`], ["Latency p99", `${fmt(t.latency_ms.p99, 1)} ms`]];
  for (const [kind, count] of Object.entries(t.error_kinds)) items.push([`  error: ${kind}`, fmt(count)]);
  for (const [k, v] of items) append(dl, [el("dt", { text: k }), el("dd", { text: v })]);
  return el("section", { className: "card", "aria-label": `target ${name}` }, el("h3", { text: name }), dl);
}

async function runPage(runId) {
  const s = await summary(runId);
  const enc = encodeURIComponent(runId);
  const links = el("p", {},
    el("a", { href: `#/samples/${enc}`, text: "Samples" }), " · ",
    el("a", { href: `#/review/${enc}`, text: "Review" }), " · ",
    el("a", { href: `#/compare${query({ run_a: runId, run_b: runId, target_a: Object.keys(s.targets)[0], target_b: Object.keys(s.targets)[1] || Object.keys(s.targets)[0], scorer: s.scorers[0] })}`, text: "Compare its targets" }));
  if (s.mlflow) {
    append(links, [" · ", s.mlflow.url
      ? el("a", { href: s.mlflow.url, rel: "noopener noreferrer", target: "_blank", text: "This run in MLflow" })
      : el("span", { className: "muted", text: `MLflow run ${s.mlflow.run_id}` })]);
  }
  const plots = el("div", { className: "plots" });
  for (const [target, t] of Object.entries(s.targets)) {
    for (const [scorer, stats] of Object.entries(t.scorers)) {
      for (const [column, groups] of Object.entries(stats.groups || {})) {
        plots.appendChild(groupPlot(`${target} · ${scorer} by ${column}`, groups));
      }
    }
    if (t.latency_histogram) plots.appendChild(histogramPlot(`${target} · latency (ms)`, t.latency_histogram));
    if (t.cost_histogram) plots.appendChild(histogramPlot(`${target} · cost per row ($)`, t.cost_histogram));
  }
  const comparison = el("section", { id: "comparison", "aria-live": "polite" });
  if (s.comparison) comparison.replaceChildren(...comparisonPanel(s.comparison));
  show(el("h1", {}, "Run ", el("span", { text: runId }), " ", statusPill(s.status)),
    el("p", { className: "muted", text: `Suite ${s.suite ?? "–"} · ${s.labels} review label(s)` }), links,
    comparison,
    el("h2", { text: "Scores" }), scorerTable(s),
    el("h2", { text: "Targets" }), el("div", { className: "cards" }, Object.entries(s.targets).map(([n, t]) => targetCard(n, t))),
    el("h2", { text: "Plots" }), plots);
  if (LIVE_STATUSES.has(s.status)) followRun(runId, s.status, comparison);
}

const VERDICTS = {
  b_better: "B is better", a_better: "A is better", equivalent: "Equivalent (within the margin)",
  inconclusive: "Inconclusive: the samples ran out first", undecided: "Undecided so far",
};

function comparisonPanel(c) {
  const facts = el("dl");
  const items = [["A", c.a], ["B", c.b], ["Scorer", c.scorer],
    ["Difference (B − A)", c.difference === null ? "–" : `${pct(c.difference)} [${pct(c.lower)}, ${pct(c.upper)}]`],
    ["Samples used / cap", `${fmt(c.samples_used)} / ${fmt(c.samples_cap)}`],
    ["Decided at", c.samples_at_decision === null || c.samples_at_decision === undefined ? "–" : `${fmt(c.samples_at_decision)} samples`],
    ["Pairs (excluded)", `${fmt(c.pairs)} (${fmt(c.pairs_excluded)})`],
    ["Cost so far", money(c.cost_usd)], ["Money not spent", money(c.usd_not_spent)],
    ["Margin · alpha", `${pct(c.margin)} · ${fmt(c.alpha)}`]];
  for (const [k, v] of items) append(facts, [el("dt", { text: k }), el("dd", { className: k === "Money not spent" ? "not-spent" : undefined, text: v ?? "–" })]);
  const path = (c.path || []).map((look) => ({ n: look.samples, diff: look.difference, ci_low: look.lower, ci_high: look.upper }));
  return [el("h2", { text: "Sequential comparison" }),
    el("p", { className: "verdict seq-verdict", "data-verdict": c.verdict }, el("strong", { text: VERDICTS[c.verdict] || c.verdict }),
      ` · ${c.method ?? ""}`),
    el("div", { className: "card" }, facts),
    path.length ? pathPlot("The confidence sequence look by look: difference (B − A) and its interval", path, c.samples_at_decision)
      : el("p", { className: "muted", text: "No look yet: both targets must commit a shard first." })];
}

// While the run goes: its comparison redrawn on each `comparison` message, and the whole page
// once its status changes (its scores, targets and plots are then read again).
function followRun(runId, shownStatus, panel) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const url = `${scheme}://${location.host}/v1/runs/${encodeURIComponent(runId)}/events?token=${encodeURIComponent(key())}`;
  const socket = new WebSocket(url);
  let fetching = false;
  // The event carries the latest look only; the run's state has the whole path.
  async function redraw() {
    if (fetching) return;
    fetching = true;
    try {
      const state = await api(`/v1/runs/${encodeURIComponent(runId)}`);
      if (state.comparison) panel.replaceChildren(...comparisonPanel(state.comparison));
    } catch (e) { say(e.message); } finally { fetching = false; }
  }
  socket.onmessage = (message) => {
    let event;
    try { event = JSON.parse(message.data); } catch { return; }
    if (event.type === "comparison") redraw();
    const status = event.type === "status" ? event.status : event.type === "end" ? (event.run || {}).status : null;
    if (status && status !== shownStatus && location.hash === `#/run/${encodeURIComponent(runId)}`) route();
  };
  cleanups.push(() => socket.close());
}

// -- plots (inline SVG) --------------------------------------------------------------------------

function plotFrame(title, width, height) {
  const frame = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title });
  frame.appendChild(svg("title", { text: title }));
  return frame;
}

function groupPlot(title, groups) {
  const names = Object.keys(groups);
  const rowH = 26, left = 120, width = 420, height = 30 + rowH * names.length;
  const frame = plotFrame(title, width, height);
  const x = (v) => left + v * (width - left - 20);
  frame.appendChild(svg("line", { x1: x(0), x2: x(0), y1: 10, y2: height - 10, stroke: "#8c959f" }));
  frame.appendChild(svg("line", { x1: x(1), x2: x(1), y1: 10, y2: height - 10, stroke: "#d0d7de" }));
  names.forEach((name, i) => {
    const g = groups[name];
    const y = 24 + i * rowH;
    frame.appendChild(svg("text", { x: 6, y: y + 4, "font-size": 12, fill: "#1b1f24", text: `${name} (n=${g.n})` }));
    if (g.mean === null) return;
    if (g.ci_low !== null) frame.appendChild(svg("line", { x1: x(g.ci_low), x2: x(g.ci_high), y1: y, y2: y, stroke: "#0b5cad", "stroke-width": 2 }));
    frame.appendChild(svg("circle", { cx: x(g.mean), cy: y, r: 4, fill: "#0b5cad" }));
  });
  return el("figure", { className: "plot" }, frame, el("figcaption", { text: title }));
}

function histogramPlot(title, hist) {
  const width = 420, height = 150, pad = 24;
  const frame = plotFrame(title, width, height);
  const max = Math.max(...hist.counts, 1);
  const barW = (width - 2 * pad) / hist.counts.length;
  hist.counts.forEach((count, i) => {
    const h = (count / max) * (height - 2 * pad);
    frame.appendChild(svg("rect", { x: pad + i * barW, y: height - pad - h, width: Math.max(barW - 1, 1), height: h, fill: "#0b5cad" }));
  });
  const lo = hist.edges[0], hi = hist.edges[hist.edges.length - 1];
  const label = (v) => (Math.abs(v) >= 0.01 || v === 0 ? v.toFixed(2) : v.toPrecision(3));
  frame.appendChild(svg("text", { x: pad, y: height - 6, "font-size": 11, fill: "#4d5560", text: label(lo) }));
  frame.appendChild(svg("text", { x: width - pad, y: height - 6, "font-size": 11, fill: "#4d5560", "text-anchor": "end", text: label(hi) }));
  return el("figure", { className: "plot" }, frame, el("figcaption", { text: title }));
}

function pathPlot(title, path, decidedAt = null) {
  const width = 640, height = 220, pad = 36;
  const frame = plotFrame(title, width, height);
  if (!path.length) return el("p", { className: "muted", text: "Too few common samples for a path." });
  const maxN = path[path.length - 1].n;
  // The first few points' intervals are huge and would flatten the rest of the plot.
  path = path.filter((p) => p.n >= Math.min(10, maxN));
  let lo = Math.min(...path.map((p) => p.ci_low), 0), hi = Math.max(...path.map((p) => p.ci_high), 0);
  if (hi - lo < 1e-9) { lo -= 0.1; hi += 0.1; }
  const x = (n) => pad + (n / maxN) * (width - 2 * pad);
  const y = (v) => height - pad - ((v - lo) / (hi - lo)) * (height - 2 * pad);
  const band = path.map((p) => `${x(p.n)},${y(p.ci_high)}`).concat([...path].reverse().map((p) => `${x(p.n)},${y(p.ci_low)}`));
  frame.appendChild(svg("polygon", { points: band.join(" "), fill: "#cfe2f7" }));
  frame.appendChild(svg("polyline", { points: path.map((p) => `${x(p.n)},${y(p.diff)}`).join(" "), fill: "none", stroke: "#0b5cad", "stroke-width": 2 }));
  frame.appendChild(svg("line", { x1: pad, x2: width - pad, y1: y(0), y2: y(0), stroke: "#a40e26", "stroke-dasharray": "4 3" }));
  frame.appendChild(svg("text", { x: 4, y: y(hi) + 10, "font-size": 11, fill: "#4d5560", text: pct(hi) }));
  frame.appendChild(svg("text", { x: 4, y: y(lo), "font-size": 11, fill: "#4d5560", text: pct(lo) }));
  frame.appendChild(svg("text", { x: width - pad, y: y(0) - 4, "font-size": 11, fill: "#a40e26", "text-anchor": "end", text: "no difference" }));
  frame.appendChild(svg("text", { x: width - pad, y: height - 8, "font-size": 11, fill: "#4d5560", "text-anchor": "end", text: `n = ${maxN}` }));
  if (decidedAt !== null && decidedAt !== undefined) {
    frame.appendChild(svg("line", { class: "decided", x1: x(decidedAt), x2: x(decidedAt), y1: pad / 2, y2: height - pad, stroke: "#1a7f37", "stroke-dasharray": "2 2" }));
    frame.appendChild(svg("text", { x: x(decidedAt) + 4, y: pad / 2 + 10, "font-size": 11, fill: "#1a7f37", text: `decided at ${decidedAt}` }));
  }
  return el("figure", { className: "plot" }, frame, el("figcaption", { text: title }));
}

// -- samples -------------------------------------------------------------------------------------

function scoreClass(row, scorer) {
  if (row.error_kind) return "err";
  const v = row.scores[scorer];
  if (v === null || v === undefined) return "muted";
  return v >= 1 ? "right" : "wrong";
}

async function samplesPage(runId, params) {
  const f = Object.fromEntries(params.entries());
  const offset = Number(f.offset || 0);
  const started = performance.now();
  const page = await api(`/v1/ui/runs/${encodeURIComponent(runId)}/samples${query({ ...f, offset, limit: PAGE_SIZE })}`);
  const groupOptions = [["", "any group"]];
  for (const [column, names] of Object.entries(page.groups || {})) {
    for (const name of names) groupOptions.push([`${column}:${name}`, `${column} = ${name}`]);
  }
  const controls = {
    target: select("target", [["", "all targets"], ...page.targets], f.target || ""),
    scorer: select("scorer", page.scorers, f.scorer || page.scorers[0]),
    outcome: select("outcome", [["", "any outcome"], ["right", "right"], ["wrong", "wrong"], ["error", "error"], ["unscored", "unscored"]], f.outcome || ""),
    min_score: el("input", { type: "number", step: "any", name: "min_score", value: f.min_score || "" }),
    max_score: el("input", { type: "number", step: "any", name: "max_score", value: f.max_score || "" }),
    error_kind: el("input", { type: "text", name: "error_kind", value: f.error_kind || "", placeholder: "any" }),
    group: select("group", groupOptions, f.group || ""),
    q: el("input", { type: "search", name: "q", value: f.q || "", placeholder: "id, prompt, output…" }),
  };
  const form = el("form", { className: "filters", role: "search", onsubmit: (event) => {
    event.preventDefault();
    const next = {};
    for (const [k, control] of Object.entries(controls)) next[k] = control.value;
    go(`/samples/${runId}`, next);
  } },
  field("Target", controls.target), field("Scorer", controls.scorer), field("Outcome", controls.outcome),
  field("Min score", controls.min_score), field("Max score", controls.max_score),
  field("Error kind", controls.error_kind), field("Group", controls.group), field("Search", controls.q),
  el("button", { type: "submit", className: "primary", text: "Filter" }));

  const scorer = controls.scorer.value;
  const rows = page.rows.map((row) => el("tr", { className: "clickable", tabindex: 0, "data-sample": row.sample_id,
    onclick: () => openSample(runId, row.target, row.sample_id, row.epoch) },
  td(row.target), td(row.sample_id), td(row.epoch, true),
  el("td", { className: scoreClass(row, scorer), text: row.error_kind ? `error: ${row.error_kind}` : fmt(row.scores[scorer]) }),
  el("td", { className: "output", text: row.output ?? row.error ?? "" }),
  td(row.latency_ms === null ? null : Number(row.latency_ms.toFixed(1)), true), td(money(row.cost_usd), true)));
  for (const tr of rows) {
    tr.addEventListener("keydown", (event) => { if (event.key === "Enter") tr.click(); });
  }
  const end = Math.min(offset + PAGE_SIZE, page.total);
  const pager = el("div", { className: "pager" },
    el("button", { type: "button", text: "Previous", disabled: offset === 0, onclick: () => go(`/samples/${runId}`, { ...f, offset: Math.max(0, offset - PAGE_SIZE) }) }),
    el("span", { className: "count", text: page.total ? `${fmt(offset + 1)}–${fmt(end)} of ${fmt(page.total)}` : "No matching rows" }),
    el("button", { type: "button", text: "Next", disabled: end >= page.total, onclick: () => go(`/samples/${runId}`, { ...f, offset: offset + PAGE_SIZE }) }));
  show(el("h1", {}, "Samples of ", el("a", { href: `#/run/${encodeURIComponent(runId)}`, text: runId })), form, pager,
    table(["Target", "Sample", { label: "Epoch", num: true }, `Score (${scorer})`, "Output", { label: "Latency ms", num: true }, { label: "Cost", num: true }], rows));
  say(`${fmt(page.total)} row(s) in ${Math.round(performance.now() - started)} ms`);
}

// -- the drawer ----------------------------------------------------------------------------------

let drawerReturn = null;

function closeDrawer() {
  const drawer = document.getElementById("drawer");
  if (drawer) drawer.remove();
  if (drawerReturn) { drawerReturn.focus?.(); drawerReturn = null; }
}

function openDrawer(title, ...children) {
  closeDrawer();
  drawerReturn = document.activeElement;
  const close = el("button", { type: "button", className: "close", text: "Close", onclick: closeDrawer });
  const drawer = el("aside", { id: "drawer", className: "drawer", role: "dialog", "aria-modal": "true", "aria-labelledby": "drawer-title" },
    close, el("h2", { id: "drawer-title", text: title }), ...children);
  drawer.addEventListener("keydown", (event) => { if (event.key === "Escape") closeDrawer(); });
  document.body.appendChild(drawer);
  close.focus();
  return drawer;
}

function textBlock(label, value) {
  return [el("h3", { text: label }), el("pre", { className: "text", tabindex: 0, "aria-label": label, text: value === null || value === undefined ? "–" : value })];
}

function rowSection(detail) {
  const facts = el("dl");
  const items = [["Target", detail.target], ["Sample", detail.sample_id], ["Epoch", detail.epoch],
    ["Provider", detail.provider], ["Served by", detail.served_by], ["Model", detail.model], ["Attempts", detail.attempts],
    ["Latency", `${fmt(detail.latency_ms, 1)} ms`], ["Cost", money(detail.cost_usd + (detail.judge_cost_usd || 0))],
    ["Tokens in / out", `${fmt(detail.input_tokens)} / ${fmt(detail.output_tokens)}`], ["Cache hit", detail.cache_hit ? "yes" : "no"],
    ["Finish reason", detail.finish_reason], ["Error", detail.error_kind ? `${detail.error_kind}: ${detail.error}` : "none"]];
  for (const [name, score] of Object.entries(detail.scores)) items.push([`Score ${name}`, fmt(score)]);
  for (const [k, v] of items) append(facts, [el("dt", { text: k }), el("dd", { text: v ?? "–" })]);
  const judge = detail.judge === null || detail.judge === undefined ? null
    : typeof detail.judge === "string" ? detail.judge : JSON.stringify(detail.judge, null, 2);
  return [el("div", { className: "card" }, facts), ...textBlock("Prompt", detail.prompt), ...textBlock("Output", detail.output),
    ...textBlock("Reference", detail.reference), ...textBlock("Judge rationale", judge)];
}

function labelForm(runId, detail, onDone) {
  const comment = el("input", { type: "text", name: "comment", maxlength: 4000 });
  const scorerSel = select("scorer", Object.keys(detail.scores));
  const send = async (verdict) => {
    try {
      await api(`/v1/ui/runs/${encodeURIComponent(runId)}/labels`, { method: "POST", body: {
        target: detail.target, sample_id: detail.sample_id, epoch: detail.epoch, scorer: scorerSel.value, verdict, comment: comment.value } });
      say(`Labelled ${detail.sample_id} ${verdict ? "right" : "wrong"}`);
      if (onDone) onDone();
    } catch (e) { say(e.message); }
  };
  return el("form", { className: "inline", onsubmit: (e) => e.preventDefault() },
    field("Scorer", scorerSel), field("Comment", comment),
    el("button", { type: "button", className: "good", text: "Human: right", onclick: () => send(1) }),
    el("button", { type: "button", className: "bad", text: "Human: wrong", onclick: () => send(0) }));
}

async function fetchRow(runId, target, sampleId, epoch) {
  return api(`/v1/ui/runs/${encodeURIComponent(runId)}/sample${query({ target, sample_id: sampleId, epoch })}`);
}

async function openSample(runId, target, sampleId, epoch) {
  try {
    const detail = await fetchRow(runId, target, sampleId, epoch);
    const labels = detail.labels.map((lab) => el("li", { text: `${lab.created_at.slice(0, 19)} · ${lab.tenant}/${lab.key_id} · ${lab.scorer}: ${lab.verdict >= 0.5 ? "right" : "wrong"}${lab.comment ? ` — ${lab.comment}` : ""}` }));
    openDrawer(`Sample ${sampleId}`, ...rowSection(detail), el("h3", { text: "Review" }),
      labels.length ? el("ul", {}, labels) : el("p", { className: "muted", text: "No labels yet." }),
      labelForm(runId, detail, () => openSample(runId, target, sampleId, epoch)));
  } catch (e) { say(e.message); }
}

async function openFlip(c, sampleId) {
  try {
    const [a, b] = await Promise.all([fetchRow(c.a.run_id, c.a.target, sampleId, 0), fetchRow(c.b.run_id, c.b.target, sampleId, 0)]);
    openDrawer(`Sample ${sampleId}: A against B`,
      el("h3", { text: `A: ${c.a.run_id} / ${c.a.target}` }), ...rowSection(a),
      el("h3", { text: `B: ${c.b.run_id} / ${c.b.target}` }), ...rowSection(b));
  } catch (e) { say(e.message); }
}

// -- compare -------------------------------------------------------------------------------------

async function comparePage(params) {
  const runs = (await api("/v1/runs?limit=200")).runs;
  const f = Object.fromEntries(params.entries());
  const runIds = runs.map((r) => r.run_id);
  const controls = {
    run_a: select("run_a", runIds, f.run_a || runIds[0]),
    target_a: select("target_a", []),
    run_b: select("run_b", runIds, f.run_b || runIds[0]),
    target_b: select("target_b", []),
    scorer: select("scorer", []),
  };
  // Targets and scorers come from the chosen runs' summaries (cached by the service).
  const choices = new Map();
  async function choicesOf(runId) {
    if (!runId) return { targets: [], scorers: [] };
    if (!choices.has(runId)) {
      choices.set(runId, summary(runId).then((s) => ({ targets: Object.keys(s.targets), scorers: s.scorers }))
        .catch(() => ({ targets: [], scorers: [] })));
    }
    return choices.get(runId);
  }
  function setOptions(node, options, wanted) {
    const value = options.includes(wanted) ? wanted : options[0];
    node.replaceChildren(...options.map((o) => el("option", { value: o, text: o, selected: o === value })));
  }
  async function fillChoices(keep) {
    const [a, b] = await Promise.all([choicesOf(controls.run_a.value), choicesOf(controls.run_b.value)]);
    const sameRun = controls.run_a.value === controls.run_b.value;
    setOptions(controls.target_a, a.targets, keep.target_a || a.targets[0]);
    setOptions(controls.target_b, b.targets, keep.target_b || (sameRun ? b.targets.find((t) => t !== controls.target_a.value) : b.targets[0]));
    setOptions(controls.scorer, a.scorers.filter((x) => b.scorers.includes(x)), keep.scorer);
  }
  controls.run_a.addEventListener("change", () => fillChoices({ target_b: controls.target_b.value, scorer: controls.scorer.value }));
  controls.run_b.addEventListener("change", () => fillChoices({ target_a: controls.target_a.value, scorer: controls.scorer.value }));
  await fillChoices(f);
  const form = el("form", { className: "filters", onsubmit: (event) => {
    event.preventDefault();
    const next = {};
    for (const [k, control] of Object.entries(controls)) next[k] = control.value;
    go("/compare", next);
  } },
  field("Run A", controls.run_a), field("Target A", controls.target_a), field("Run B", controls.run_b),
  field("Target B", controls.target_b), field("Scorer", controls.scorer),
  el("button", { type: "submit", className: "primary", text: "Compare" }));
  const parts = [el("h1", { text: "Compare" }), form];
  if (f.run_a && f.run_b && f.target_a && f.target_b && f.scorer) {
    const c = await api(`/v1/ui/compare${query(f)}`);
    const d = c.comparison;
    const verdictText = { b_better: "B is better", a_better: "A is better", undecided: "No difference shown" }[c.verdict];
    parts.push(el("h2", { text: "Difference (B − A)" }),
      el("p", { className: "verdict" }, el("strong", { text: verdictText }),
        ` · diff ${pct(d.diff)} [${pct(d.ci_low)}, ${pct(d.ci_high)}] · p = ${fmt(d.p_value, 4)} · ${d.method} · n = ${fmt(d.n)} · A better on ${d.a_better}, B better on ${d.b_better}`),
      c.clustered ? el("p", { className: "muted", text: `Clustered (${fmt(c.clustered.clusters)} clusters): diff ${pct(c.clustered.diff)} [${pct(c.clustered.ci_low)}, ${pct(c.clustered.ci_high)}], correlation ${fmt(c.clustered.correlation)}` }) : null,
      pathPlot("Difference and its 95% interval as samples accrued", c.path));
    for (const [column, groups] of Object.entries(c.groups)) {
      parts.push(el("h3", { text: `By ${column}` }), table(["Group", { label: "n", num: true }, { label: "Diff [95%]", num: true }, { label: "p", num: true }],
        Object.entries(groups).map(([name, g]) => el("tr", {}, td(name), td(g.n, true),
          td(`${pct(g.diff)} [${pct(g.ci_low)}, ${pct(g.ci_high)}]`, true), td(fmt(g.p_value, 4), true)))));
    }
    const flips = c.flips.map((flip) => el("tr", { className: "clickable flip", tabindex: 0, "data-sample": flip.sample_id,
      onclick: () => openFlip(c, flip.sample_id) },
    td(flip.sample_id), td(fmt(flip.score_a), true), td(fmt(flip.score_b), true),
    el("td", { className: flip.direction === "b_better" ? "right" : "wrong", text: flip.direction === "b_better" ? "B right, A wrong" : "A right, B wrong" })));
    for (const tr of flips) tr.addEventListener("keydown", (event) => { if (event.key === "Enter") tr.click(); });
    parts.push(el("h2", { text: `Flipped items (${c.flipped})` }),
      table(["Sample", { label: "Score A", num: true }, { label: "Score B", num: true }, "Flip"], flips));
  }
  show(...parts);
}

// -- review --------------------------------------------------------------------------------------

async function reviewPage(runId, params) {
  const s = await summary(runId);
  const targets = Object.keys(s.targets);
  const f = Object.fromEntries(params.entries());
  const target = f.target || targets[0];
  const scorer = f.scorer || s.scorers[0];
  const mode = f.mode || "least_confident";
  const controls = {
    target: select("target", targets, target),
    scorer: select("scorer", s.scorers, scorer),
    mode: select("mode", [["least_confident", "least confident"], ["disagreement", "scorers disagree"], ["random", "random sample"]], mode),
  };
  const form = el("form", { className: "filters", onsubmit: (event) => {
    event.preventDefault();
    go(`/review/${runId}`, { target: controls.target.value, scorer: controls.scorer.value, mode: controls.mode.value });
  } }, field("Target", controls.target), field("Scorer", controls.scorer), field("Queue", controls.mode),
  el("button", { type: "submit", className: "primary", text: "Show queue" }));
  const stats = el("div", { id: "review-stats" });
  const list = el("div", { id: "review-queue" });

  async function refreshStats() {
    const fresh = await summary(runId);
    const t = fresh.targets[target];
    const entry = t && t.scorers[scorer];
    const h = entry && entry.human;
    stats.replaceChildren(table(["Scorer mean", "Labelled", "Human-corrected", "Judge-human kappa", "Agreement", "PPI estimate [95%]"], [
      el("tr", {}, el("td", { className: "mean", text: interval(entry) }), el("td", { className: "labelled", text: h ? fmt(h.labelled) : "0" }),
        el("td", { className: "corrected", text: h ? pct(h.corrected_mean) : "–" }),
        el("td", { className: "kappa", text: h && h.agreement.kappa !== null ? h.agreement.kappa.toFixed(3) : "–" }),
        el("td", { className: "agreement", text: h ? pct(h.agreement.observed) : "–" }),
        el("td", { className: "ppi", text: h && h.ppi.estimate !== null ? `${pct(h.ppi.estimate)}${h.ppi.ci_low === null ? "" : ` [${pct(h.ppi.ci_low)}, ${pct(h.ppi.ci_high)}]`}` : "–" }))]));
  }

  async function refreshQueue() {
    const q = await api(`/v1/ui/runs/${encodeURIComponent(runId)}/review${query({ target, scorer, mode, limit: 10 })}`);
    list.replaceChildren(el("p", { className: "muted", text: `${fmt(q.total)} item(s) to review` }));
    for (const row of q.rows) {
      const comment = el("input", { type: "text", name: "comment", maxlength: 4000, "aria-label": `comment on ${row.sample_id}` });
      const send = async (verdict) => {
        try {
          await api(`/v1/ui/runs/${encodeURIComponent(runId)}/labels`, { method: "POST", body: {
            target, sample_id: row.sample_id, epoch: row.epoch, scorer, verdict, comment: comment.value } });
          say(`Labelled ${row.sample_id}`);
          await Promise.all([refreshStats(), refreshQueue()]);
        } catch (e) { say(e.message); }
      };
      list.appendChild(el("article", { className: "review-item", "data-sample": row.sample_id },
        el("h3", {}, el("span", { text: row.sample_id }), " ",
          el("span", { className: scoreClass(row, scorer), text: `judge: ${fmt(row.scores[scorer])}` })),
        el("p", { className: "muted", text: `Reference: ${row.reference ?? "–"}` }),
        el("pre", { className: "text", "aria-label": `output of ${row.sample_id}`, text: row.output ?? row.error ?? "" }),
        el("div", { className: "actions" },
          el("button", { type: "button", className: "good", text: "Right", "aria-label": `${row.sample_id} is right`, onclick: () => send(1) }),
          el("button", { type: "button", className: "bad", text: "Wrong", "aria-label": `${row.sample_id} is wrong`, onclick: () => send(0) }),
          field("Comment", comment),
          el("button", { type: "button", text: "Open", onclick: () => openSample(runId, target, row.sample_id, row.epoch) }))));
    }
  }

  show(el("h1", {}, "Review ", el("a", { href: `#/run/${encodeURIComponent(runId)}`, text: runId })), form,
    el("h2", { text: "What the labels say" }), stats, el("h2", { text: "Queue" }), list);
  await Promise.all([refreshStats(), refreshQueue()]);
}

// -- providers -----------------------------------------------------------------------------------

async function providersPage() {
  const body = el("tbody");
  const stamp = el("p", { className: "muted" });
  async function refresh() {
    try {
      const list = await api("/v1/providers");
      body.replaceChildren(...list.providers.map((p) => {
        const headroom = Object.entries(p.limiter || {}).map(([k, v]) => `${k}: ${typeof v === "number" ? fmt(v, 1) : JSON.stringify(v)}`).join(", ");
        return el("tr", {}, td(p.provider), td(p.kind), el("td", {}, statusPill(p.breaker || "unknown")),
          td(p.in_flight, true), td(p.requests, true), el("td", { className: "num", text: p.error_rate === null ? "–" : pct(p.error_rate) }),
          el("td", { text: headroom || "–" }));
      }));
      if (!list.providers.length) body.appendChild(el("tr", {}, el("td", { colspan: 7, className: "muted", text: "No provider endpoint is live (they live while runs use them)." })));
      stamp.textContent = `Updated ${new Date().toLocaleTimeString()}`;
    } catch (e) { say(e.message); }
  }
  show(el("h1", { text: "Providers" }), stamp,
    table(["Provider", "Kind", "Breaker", { label: "In flight", num: true }, { label: "Requests", num: true }, { label: "Error rate", num: true }, "Limiter headroom"], body));
  await refresh();
  const timer = setInterval(refresh, PROVIDERS_POLL_MS);
  cleanups.push(() => clearInterval(timer));
}

// -- start ---------------------------------------------------------------------------------------

document.getElementById("signout").addEventListener("click", () => signOut());
window.addEventListener("hashchange", route);
(async () => {
  if (key()) {
    try { await whoAmI(); } catch { return; }
  }
  route();
})();
