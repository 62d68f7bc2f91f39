// Small DOM builders: every text from the API goes in as a text node, never as HTML.

export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function clear(node) {
  while (node.firstChild) node.firstChild.remove();
  return node;
}

/// "0.8512" for scores, "—" when absent.
export function score(value) {
  return typeof value === "number" ? value.toFixed(4) : "—";
}

/// A labelled fact list: [[term, value], ...] → <dl>.
export function facts(pairs, className = "facts") {
  return el("dl", { class: className }, pairs.flatMap(([term, value]) => [el("dt", { text: term }), el("dd", {}, value)]));
}

/// A horizontal bar for a value in 0…1 with optional threshold ticks, readable as a meter.
export function bar(label, value, ticks = []) {
  const known = typeof value === "number";
  const described = ticks.filter((t) => typeof t.at === "number").map((t) => `${t.name} at ${t.at}`).join(", ");
  const meter = el("div", {
    class: "bar", role: "meter", "aria-valuemin": 0, "aria-valuemax": 1, "aria-valuenow": known ? value : undefined,
    "aria-label": `${label}: ${known ? value.toFixed(4) : "no value"}${described ? `; ${described}` : ""}`,
  });
  const fill = el("span", { class: `fill${ticks.some((t) => known && typeof t.at === "number" && value >= t.at) ? " over" : ""}` });
  fill.style.width = `${Math.max(0, Math.min(1, known ? value : 0)) * 100}%`;
  meter.append(fill);
  for (const tick of ticks) {
    if (typeof tick.at !== "number") continue;
    const mark = el("span", { class: `tick tick-${tick.name}`, title: `${tick.name} ${tick.at}` });
    mark.style.left = `${Math.min(1, tick.at) * 100}%`;
    meter.append(mark);
  }
  return el("div", { class: "bar-row" }, el("span", { class: "bar-label", text: label }), meter,
    el("span", { class: "bar-value", text: known ? value.toFixed(4) : "—" }));
}
