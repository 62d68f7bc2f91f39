// The moderate view: images in (pick, drop, paste), one card per answer with
// the evidence drawn over the image, and a batch table filtered by decision.
import { call, explain } from "./api.js";
import { bar, clear, el, facts, score } from "./dom.js";
import { draw, markedText, matchedFragments } from "./evidence.js";

const DISPLAY_WIDTH = 640;
const ACCEPTED = new Set(["image/jpeg", "image/png", "image/webp", "image/gif", "image/bmp"]);
const $ = (id) => document.getElementById(id);
let counter = 0;
let queue = Promise.resolve();

export function setUpModerate() {
  $("files").addEventListener("change", (event) => {
    submit([...event.target.files]);
    event.target.value = "";
  });
  const drop = $("drop");
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    submit([...(event.dataTransfer?.files ?? [])]);
  });
  document.addEventListener("paste", (event) => {
    if ($("view-moderate").hidden) return;
    const files = [...(event.clipboardData?.items ?? [])].filter((i) => i.kind === "file").map((i) => i.getAsFile());
    if (files.length) submit(files.map((f, i) => (f.name && f.name !== "image.png" ? f : new File([f], `pasted-${++counter}-${i}.png`, { type: f.type }))));
  });
  $("filter").addEventListener("change", applyFilter);
}

/// Images are sent as they are (never scaled before upload), one after another.
export function submit(files) {
  for (const file of files.filter(Boolean)) {
    const entry = newEntry(file);
    // One failure must not stop the images queued after it.
    queue = queue.then(() => moderate(file, entry)).catch((error) => {
      entry.card.classList.remove("pending");
      showFailure(entry.card, entry.row, `The console failed to show this answer: ${error}`);
    });
  }
}

function newEntry(file) {
  const id = `result-${++counter}`;
  const card = el("article", { class: "result pending", id, "data-decision": "pending", "aria-busy": "true" },
    el("header", {}, el("h3", { text: file.name || "image" }), el("span", { class: "decision", text: "moderating…" })));
  $("results").prepend(card);
  const row = el("tr", { "data-decision": "pending" },
    el("td", {}, el("a", { href: `#${id}`, text: file.name || "image" })), el("td", { text: "…" }), el("td"), el("td"), el("td"));
  $("batch-rows").prepend(row);
  $("batch").hidden = false;
  return { card, row };
}

async function moderate(file, { card, row }) {
  const bitmapPromise = createImageBitmap(file).catch(() => null);
  let answer;
  let failure = null;
  if (!ACCEPTED.has(file.type)) {
    failure = `${file.name}: not an image type the gateway accepts (${file.type || "unknown type"}).`;
  } else {
    try {
      answer = await call("POST", "/v1/moderate", { body: file, contentType: file.type });
    } catch (error) {
      failure = explain(error);
    }
  }
  const bitmap = await bitmapPromise;
  card.classList.remove("pending");
  card.removeAttribute("aria-busy");
  if (failure) {
    showFailure(card, row, failure);
  } else {
    showAnswer(card, row, file, answer, bitmap);
  }
  applyFilter();
}

function setDecision(card, row, decision, text) {
  card.dataset.decision = decision;
  row.dataset.decision = decision;
  const badge = card.querySelector(".decision");
  badge.textContent = text;
  badge.className = `decision decision-${decision}`;
  row.children[1].textContent = text;
  row.children[1].className = `decision-${decision}`;
}

function showFailure(card, row, message) {
  setDecision(card, row, "error", "refused");
  card.append(el("p", { class: "error", role: "alert", text: message }));
  row.children[2].textContent = message;
}

function showAnswer(card, row, file, answer, bitmap) {
  const evidence = answer.evidence ?? null;
  setDecision(card, row, answer.decision, answer.decision);
  row.children[2].textContent = answer.reasons.map((r) => r.code).join(", ") || "—";
  row.children[3].textContent = answer.model?.variant ?? "—";
  row.children[4].textContent = answer.timing_ms?.total?.toFixed(0) ?? "—";

  const body = el("div", { class: "result-body" });
  if (bitmap) body.append(figure(file, bitmap, evidence));
  else body.append(el("p", { class: "note", text: "This browser cannot display the image; the answer is below." }));
  body.append(details(answer, evidence));
  card.append(body);
}

function figure(file, bitmap, evidence) {
  const scale = Math.min(1, DISPLAY_WIDTH / bitmap.width);
  const canvas = el("canvas", {
    width: Math.max(1, Math.round(bitmap.width * scale)), height: Math.max(1, Math.round(bitmap.height * scale)),
    role: "img", "aria-label": `${file.name}: ${(evidence?.detections ?? []).length} detector boxes and ${(evidence?.ocr_lines ?? []).length} text boxes drawn`,
    "data-scale": scale,
  });
  const toggle = el("input", { type: "checkbox", checked: true, class: "show-boxes" });
  toggle.addEventListener("change", () => draw(canvas, bitmap, scale, evidence, toggle.checked));
  draw(canvas, bitmap, scale, evidence, true);
  const size = `${bitmap.width}×${bitmap.height} px${scale < 1 ? `, shown at ${Math.round(scale * 100)}%` : ""}`;
  return el("figure", {}, canvas, el("figcaption", {}, el("label", {}, toggle, " Show boxes"), ` · ${size}`),
    el("p", { class: "legend" }, el("span", { class: "key key-detection" }), " detector ",
      el("span", { class: "key key-ocr" }), " text ", el("span", { class: "key key-match" }), " matched text"));
}

function details(answer, evidence) {
  const thresholds = evidence?.thresholds ?? {};
  const parts = [];
  parts.push(el("h4", { text: "Reasons" }));
  parts.push(answer.reasons.length
    ? el("ul", { class: "reasons" }, answer.reasons.map((r) =>
      el("li", {}, el("strong", { class: `decision-${r.action}`, text: r.action }), ` ${r.source}/${r.code}: ${r.detail}`)))
    : el("p", { text: "No rule fired." }));

  parts.push(el("h4", { text: "Scores against thresholds" }));
  const bars = [bar("nsfw (classifier)", answer.scores?.nsfw, [
    { name: "review", at: thresholds.nsfw_review }, { name: "block", at: thresholds.nsfw_block }])];
  const textScore = evidence?.text_classifier?.score ?? answer.scores?.text_classifier ?? null;
  bars.push(bar("offensive text (text classifier)", textScore, [
    { name: "review", at: thresholds.text_classifier_review ?? evidence?.text_classifier?.review_threshold },
    { name: "block", at: thresholds.text_classifier_block ?? evidence?.text_classifier?.block_threshold }]));
  for (const [label, value] of Object.entries(answer.scores?.detections ?? {})) {
    const blocks = (thresholds.detector_block_classes ?? []).includes(label);
    const reviews = blocks || (thresholds.detector_review_classes ?? []).includes(label);
    bars.push(bar(`${label} (detector)`, value, [
      { name: "review", at: reviews ? thresholds.detector_review_min : undefined },
      { name: "block", at: blocks ? thresholds.detector_block_min : undefined }]));
  }
  parts.push(el("div", { class: "bars" }, bars));

  const fragments = evidence?.ocr_lines ?? [];
  const matched = matchedFragments(evidence);
  parts.push(el("h4", { text: "Text found" }));
  if (fragments.length) {
    const spans = (evidence.matches ?? []).map((m) => m.span);
    parts.push(el("ol", { class: "ocr" }, fragments.map((fragment, index) => el("li", {
      "data-fragment": index, class: matched.has(index) ? "matched" : undefined,
      "data-box": Array.isArray(fragment.box) ? fragment.box.flat().join(",") : undefined,
    }, matched.has(index) ? markedText(fragment.text, spans) : fragment.text, el("span", { class: "confidence", text: ` (${score(fragment.confidence)})` })))));
  } else {
    parts.push(el("p", { text: answer.text ? answer.text : "No text." }));
  }
  if ((evidence?.detections ?? []).length) {
    parts.push(el("h4", { text: "Detector boxes" }));
    parts.push(el("ul", { class: "detections" }, evidence.detections.map((d) =>
      el("li", { "data-box": d.box.join(",") }, `${d.label} ${score(d.score)} at ${d.box.join(", ")} (x, y, w, h)`))));
  }

  parts.push(el("h4", { text: "Served by" }));
  const model = answer.model ?? {};
  parts.push(facts([
    ["Variant", `${model.route ?? "—"} / ${model.variant ?? "—"}`],
    ["Model", `${model.name ?? "—"} version ${model.version ?? "policy"}`],
    ["Traffic revision", model.revision || "—"],
    ["Request id", el("code", { text: answer.request_id })],
    ["Time", `${answer.timing_ms?.total ?? "—"} ms total, ${answer.timing_ms?.upstream ?? "—"} ms in Triton`],
  ], "facts meta"));
  return el("div", { class: "details" }, parts);
}

function applyFilter() {
  const wanted = $("filter").value;
  for (const node of document.querySelectorAll("#results .result, #batch-rows tr")) {
    node.hidden = wanted !== "all" && node.dataset.decision !== wanted;
  }
}

export function clearResults() {
  clear($("results"));
  clear($("batch-rows"));
  $("batch").hidden = true;
}
