// Small inline SVG charts (no library): bars over time and paired bars.
const SVG = "http://www.w3.org/2000/svg";

function svgNode(tag, attributes) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  return node;
}

/// Columns for a series of numbers (null = no data), scaled to the largest; `label` describes it for screen readers.
export function columns(values, { label, width = 180, height = 40, className = "" } = {}) {
  const svg = svgNode("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": label, class: `chart ${className}` });
  const top = Math.max(1, ...values.map((v) => v ?? 0));
  const step = width / Math.max(1, values.length);
  values.forEach((value, i) => {
    if (value === null || value === undefined) return;
    const h = Math.max(value > 0 ? 2 : 0, (value / top) * (height - 2));
    svg.append(svgNode("rect", { x: i * step + 1, y: height - h, width: Math.max(1, step - 2), height: h }));
  });
  svg.append(svgNode("line", { x1: 0, y1: height - 0.5, x2: width, y2: height - 0.5, class: "axis" }));
  const title = svgNode("title", {});
  title.textContent = label;
  svg.prepend(title);
  return svg;
}

/// Pairs of bars (candidate, baseline) per window, with an optional limit line for the ratio chart.
export function pairs(items, { label, width = 220, height = 48, limit = null } = {}) {
  const svg = svgNode("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": label, class: "chart pairs" });
  const top = Math.max(1e-9, limit ?? 0, ...items.flatMap(([a, b]) => [a ?? 0, b ?? 0]));
  const step = width / Math.max(1, items.length);
  items.forEach(([candidate, baseline], i) => {
    [[candidate, "candidate"], [baseline, "baseline"]].forEach(([value, kind], k) => {
      if (value === null || value === undefined) return;
      const h = Math.max(value > 0 ? 2 : 0, (value / top) * (height - 2));
      svg.append(svgNode("rect", { x: i * step + 1 + k * (step / 2 - 1), y: height - h, width: Math.max(1, step / 2 - 2), height: h, class: kind }));
    });
  });
  if (limit !== null) {
    const y = height - (limit / top) * (height - 2);
    svg.append(svgNode("line", { x1: 0, y1: y, x2: width, y2: y, class: "limit" }));
  }
  const title = svgNode("title", {});
  title.textContent = label;
  svg.prepend(title);
  return svg;
}
