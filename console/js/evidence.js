// Drawing a moderation answer's evidence over the image: detector boxes with
// labels, OCR fragments as boxes with their text, matched fragments highlighted.
// Coordinates in the answer are pixels of the image as sent; the canvas shows
// the image scaled down for display, so every point is multiplied by `scale`.

export const COLORS = {
  detection: "#c8102e",
  ocr: "#0057b8",
  match: "#f5a700",
  label: "#ffffff",
};

/// Indices of the OCR fragments any text rule matched.
export function matchedFragments(evidence) {
  const set = new Set();
  for (const match of evidence?.matches ?? []) for (const index of match.fragments ?? []) set.add(index);
  return set;
}

function labelAt(context, text, x, y, color) {
  context.font = "bold 13px system-ui, sans-serif";
  const width = context.measureText(text).width + 8;
  const top = Math.max(0, y - 18);
  context.fillStyle = color;
  context.fillRect(x, top, width, 18);
  context.fillStyle = COLORS.label;
  context.fillText(text, x + 4, top + 13);
}

/// Draws `bitmap` scaled by `scale`, then (when `withBoxes`) the evidence.
export function draw(canvas, bitmap, scale, evidence, withBoxes) {
  const context = canvas.getContext("2d");
  context.clearRect(0, 0, canvas.width, canvas.height);
  context.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  if (!withBoxes || !evidence) return;
  const matched = matchedFragments(evidence);
  (evidence.ocr_lines ?? []).forEach((fragment, index) => {
    if (!Array.isArray(fragment.box)) return;
    const points = fragment.box.map(([x, y]) => [x * scale, y * scale]);
    context.beginPath();
    points.forEach(([x, y], i) => (i ? context.lineTo(x, y) : context.moveTo(x, y)));
    context.closePath();
    const isMatch = matched.has(index);
    if (isMatch) {
      context.fillStyle = "rgba(245, 167, 0, 0.35)";
      context.fill();
    }
    context.lineWidth = isMatch ? 4 : 2;
    context.strokeStyle = isMatch ? COLORS.match : COLORS.ocr;
    context.stroke();
    const [x, y] = points[0];
    labelAt(context, fragment.text, x, y, isMatch ? "#8a5a00" : COLORS.ocr);
  });
  for (const detection of evidence.detections ?? []) {
    const [x, y, w, h] = detection.box.map((v) => v * scale);
    context.lineWidth = 3;
    context.strokeStyle = COLORS.detection;
    context.strokeRect(x, y, w, h);
    labelAt(context, `${detection.label} ${detection.score.toFixed(2)}`, x, y, COLORS.detection);
  }
}

/// The fragment's text with the words of the matched spans marked (<mark>);
/// the whole fragment when the span's words are not found in it as written.
export function markedText(text, spans) {
  const words = new Set(spans.flatMap((span) => span.toLowerCase().split(/\s+/)).filter(Boolean));
  const tokens = text.split(/(\s+)/);
  const nodes = [];
  let marked = false;
  for (const token of tokens) {
    const bare = token.toLowerCase().replace(/^[^\p{L}\p{N}]+|[^\p{L}\p{N}]+$/gu, "");
    if (bare && words.has(bare)) {
      const mark = document.createElement("mark");
      mark.textContent = token;
      nodes.push(mark);
      marked = true;
    } else {
      nodes.push(document.createTextNode(token));
    }
  }
  if (!marked) {
    const mark = document.createElement("mark");
    mark.textContent = text;
    return [mark];
  }
  return nodes;
}
