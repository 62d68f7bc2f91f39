// The operate view (admin permission): routes and weights in force, canary
// evidence, mirror state, live traffic per variant, refusals and the audit
// chain head, refreshed every few seconds from the admin API.
import { ApiError, call, explain } from "./api.js";
import { columns, pairs } from "./charts.js";
import { clear, el, facts, score } from "./dom.js";

const REFRESH_MS = 3000;
const $ = (id) => document.getElementById(id);
let timer = null;
let running = false;

export function startOperate() {
  if (timer !== null) return;
  refresh();
  timer = setInterval(refresh, REFRESH_MS);
}

export function stopOperate() {
  if (timer !== null) clearInterval(timer);
  timer = null;
}

$("reload-traffic").addEventListener("click", async () => {
  const message = $("operate-message");
  try {
    const report = await call("POST", "/admin/traffic/reload");
    message.textContent = `Reload: ${report.outcome}${report.revision ? `, revision ${report.revision.slice(0, 12)}` : ""}.`;
  } catch (error) {
    const problems = error instanceof ApiError && Array.isArray(error.payload?.problems) ? error.payload.problems : null;
    message.textContent = problems
      ? `Reload refused; the last good file keeps serving: ${problems.map(describeProblem).join("; ")}`
      : `Reload failed: ${explain(error)}`;
  }
  refresh();
});

function describeProblem(problem) {
  if (typeof problem === "string") return problem;
  return [problem.line ? `line ${problem.line}` : null, problem.key, problem.message].filter(Boolean).join(": ");
}

async function optional(path) {
  try {
    return await call("GET", path);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) return null;
    throw error;
  }
}

async function refresh() {
  if (running) return;
  running = true;
  try {
    const [traffic, activity, audit] = await Promise.all([optional("/admin/traffic"), call("GET", "/admin/activity"), optional("/admin/audit")]);
    renderTraffic(traffic);
    renderActivity(activity);
    renderAudit(audit);
    $("operate-updated").textContent = `Updated ${new Date().toLocaleTimeString()} (every ${REFRESH_MS / 1000} s)`;
  } catch (error) {
    $("operate-updated").textContent = `Could not refresh: ${explain(error)}`;
  } finally {
    running = false;
  }
}

function renderTraffic(traffic) {
  const routes = clear($("routes"));
  const canary = clear($("canary"));
  if (!traffic) {
    $("revision").textContent = "—";
    routes.append(el("p", { text: "Traffic routing is not configured (traffic.file): every route serves its fixed model." }));
    canary.append(el("p", { text: "No canary." }));
    return;
  }
  $("revision").textContent = traffic.revision.slice(0, 12);
  $("revision").title = traffic.revision;
  $("installed").textContent = new Date(traffic.installedAt).toLocaleString();
  const last = traffic.lastReload;
  $("last-reload").textContent = last ? `${last.outcome} (${last.trigger}, ${new Date(last.at).toLocaleTimeString()})` : "none since start";
  if (traffic.lastReloadError && traffic.lastReloadError === last) {
    routes.append(el("p", { class: "error", text: `The last file was refused: ${traffic.lastReloadError.problems.map(describeProblem).join("; ")}` }));
  }
  for (const route of traffic.routes) {
    const table = el("table", { class: "variants", "data-route": route.name },
      el("caption", { text: `Route ${route.name} · sticky by ${route.stickiness}` }),
      el("thead", {}, el("tr", {}, ["Variant", "Model", "File weight", "In force", "Callers"].map((h) => el("th", { scope: "col", text: h })))),
      el("tbody", {}, route.variants.map((v) => el("tr", { "data-variant": v.name },
        el("th", { scope: "row", text: v.name }),
        el("td", { text: `${v.model}${v.version ? ` v${v.version}` : ""}` }),
        el("td", { class: "weight", text: String(v.configuredWeight) }),
        el("td", { class: "in-force", text: String(v.weightInForce) }),
        el("td", { class: "share", text: `${(v.bucketShare * 100).toFixed(1)}%` })))));
    routes.append(table);
    if (route.mirror) {
      const m = route.mirror;
      routes.append(facts([["Mirror", `${(m.fraction * 100).toFixed(1)}% to ${m.variant}: ${m.sent} sent, ${m.errors} errors`]]));
    } else {
      routes.append(facts([["Mirror", "off"]]));
    }
    canary.append(renderCanary(route));
  }
}

function renderCanary(route) {
  const c = route.canary;
  if (!c) return el("p", { text: `Route ${route.name}: no canary.` });
  const windows = c.recentWindows ?? [];
  const box = el("div", { class: "canary", "data-route": route.name });
  box.append(facts([
    ["Route", route.name],
    ["Phase", el("strong", { class: `phase-${c.phase}`, text: c.phase.replace("_", " ") })],
    ["Candidate", `${c.candidate}: weight ${c.candidateWeightInForce} in force (file ${c.candidateFileWeight})`],
    ["Baseline", c.baseline],
    ["Windows", `${c.passedWindows} passed, ${c.failedWindows} of ${c.failureLimit} allowed failures; ${c.windowSeconds} s each`],
    ["Current window", `${c.currentWindow.requests} candidate / ${c.currentBaseline.requests} baseline requests`],
    ["Decided", c.decidedAt ? `${c.decidedBy ?? ""} ${new Date(c.decidedAt).toLocaleString()}` : "—"],
  ]));
  if (!windows.length) {
    box.append(el("p", { class: "note", text: "No window judged yet." }));
    return box;
  }
  const ms = (s) => (typeof s === "number" ? s * 1000 : null);
  box.append(el("div", { class: "charts" },
    el("figure", {}, pairs(windows.map((w) => [w.candidate.requests, w.baseline.requests]), { label: "Requests per window, candidate and baseline" }),
      el("figcaption", { text: "requests" })),
    el("figure", {}, pairs(windows.map((w) => [w.candidate.serverErrors, w.baseline.serverErrors]), { label: "Server errors per window" }),
      el("figcaption", { text: "errors" })),
    el("figure", {}, pairs(windows.map((w) => [ms(w.candidate.p95Seconds), ms(w.baseline.p95Seconds)]), { label: "p95 latency per window (ms)" }),
      el("figcaption", { text: "p95 (ms)" }))));
  box.append(el("table", { class: "windows" },
    el("caption", { text: "Last windows (candidate / baseline)" }),
    el("thead", {}, el("tr", {}, ["End", "Verdict", "Requests", "Errors", "p95 ms", "p95 ratio"].map((h) => el("th", { scope: "col", text: h })))),
    el("tbody", {}, windows.slice().reverse().map((w) => el("tr", {},
      el("td", { text: new Date(w.windowEnd).toLocaleTimeString() }),
      el("td", { text: w.verdict, title: (w.reasons ?? []).join("; ") }),
      el("td", { text: `${w.candidate.requests} / ${w.baseline.requests}` }),
      el("td", { text: `${w.candidate.serverErrors} / ${w.baseline.serverErrors}` }),
      el("td", { text: `${fmt(ms(w.candidate.p95Seconds))} / ${fmt(ms(w.baseline.p95Seconds))}` }),
      el("td", { text: typeof w.p95Ratio === "number" ? w.p95Ratio.toFixed(2) : "—" }))))));
  return box;
}

function fmt(value) {
  return typeof value === "number" ? value.toFixed(1) : "—";
}

function renderActivity(activity) {
  const live = clear($("live"));
  if (!activity.variants.length) {
    live.append(el("p", { text: `No requests in the last ${activity.windowSeconds} s.` }));
  }
  for (const v of activity.variants) {
    live.append(el("div", { class: "live-variant", "data-variant": v.variant },
      el("h4", { text: `${v.route} / ${v.variant}` }),
      facts([
        ["Rate", `${v.ratePerSecond.toFixed(2)} req/s (${v.requests} in ${activity.windowSeconds} s)`],
        ["Latency", `p50 ${fmt(v.p50Ms)} ms, p95 ${fmt(v.p95Ms)} ms`],
        ["Server errors", String(v.serverErrors)],
      ]),
      el("figure", {}, columns(v.series.map((p) => p.requests), { label: `${v.variant}: requests per ${activity.slotSeconds} s` }),
        el("figcaption", { text: `requests per ${activity.slotSeconds} s` })),
      el("figure", {}, columns(v.series.map((p) => p.p95Ms), { label: `${v.variant}: p95 latency per ${activity.slotSeconds} s`, className: "latency" }),
        el("figcaption", { text: "p95 latency" }))));
  }
  const refusals = clear($("refusals"));
  refusals.append(activity.refusals.length
    ? el("table", {}, el("caption", { text: `Last ${activity.windowSeconds} s` }),
      el("thead", {}, el("tr", {}, el("th", { scope: "col", text: "Reason" }), el("th", { scope: "col", text: "Count" }))),
      el("tbody", {}, activity.refusals.map((r) => el("tr", {}, el("td", { text: r.reason }), el("td", { text: String(r.count) })))))
    : el("p", { text: `None in the last ${activity.windowSeconds} s.` }));
}

function renderAudit(audit) {
  const box = clear($("audit"));
  if (!audit) {
    box.append(el("p", { text: "The audit log is not enabled (audit.enabled)." }));
    return;
  }
  const anchor = audit.lastAnchor;
  box.append(facts([
    ["Head", `sequence ${audit.lastSeq}`],
    ["Head hash", el("code", { class: "hash", text: audit.lastHash || "—" })],
    ["Anchor", anchor ? `${anchor.instance}:${anchor.seq} (${anchor.reason ?? ""}${anchor.at ? `, ${anchor.at}` : ""})` : "none yet"],
    ["Anchor hash", el("code", { class: "hash", text: anchor?.hash ?? "—" })],
    ["Records / fsyncs", `${audit.records} / ${audit.fsyncs} (${score(audit.recordsPerFsync)} per fsync)`],
    ["Writer", audit.failure ? el("strong", { class: "error", text: audit.failure }) : "healthy"],
  ]));
}
