"""Running the labelled set through a moderation ensemble and scoring it.

Three decision columns come from one answer (the REASONS of the ensemble say
what each reason asks for and where it came from):

- ``rules``: image branches + text rules (+ the OCR cap), no classifier;
- ``classifier``: image branches + the text classifier (+ the OCR cap), no text rules;
- ``combined``: the ensemble's DECISION (what a user gets).

Metrics per column: accuracy (decision equals the label), block recall
(block-labelled samples blocked), review recall (review-labelled samples
that got at least review), false-block rates on benign text, near misses and
photos, accuracy per layout and over the rotated layouts.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

SEVERITY = {"allow": 0, "review": 1, "block": 2}
COLUMNS = ("rules", "classifier", "combined")
ROTATED = ("rot90", "rot180", "rot270")


def _most_severe(actions):
    decision = "allow"
    for action in actions:
        if SEVERITY[action] > SEVERITY[decision]:
            decision = action
    return decision


def columns_of(decision, reasons):
    """{'rules', 'classifier', 'combined'} decisions from one ensemble answer."""
    shared = [r["action"] for r in reasons if r["source"] in ("classifier", "detector") or r["code"] == "ocr_capped"]
    rules = [r["action"] for r in reasons if r["source"] == "ocr" and r["code"] != "ocr_capped"]
    learned = [r["action"] for r in reasons if r["source"] == "text_classifier"]
    return {
        "rules": _most_severe(shared + rules),
        "classifier": _most_severe(shared + learned),
        "combined": decision,
    }


class Client:
    """One HTTP client per thread (tritonclient's is not shared across threads)."""

    def __init__(self, url):
        self.url = url.split("://", 1)[-1]
        self.local = threading.local()

    def infer(self, model, data):
        import tritonclient.http as httpclient

        client = getattr(self.local, "client", None)
        if client is None:
            client = httpclient.InferenceServerClient(self.url, network_timeout=600.0, connection_timeout=60.0)
            self.local.client = client
        tensor = httpclient.InferInput("IMAGE", [1], "BYTES")
        tensor.set_data_from_numpy(np.array([data], dtype=np.object_), binary_data=True)
        started = time.perf_counter()
        result = client.infer(model, [tensor])
        seconds = time.perf_counter() - started
        outputs = {o["name"] for o in result.get_response()["outputs"]}
        answer = {
            "decision": result.as_numpy("DECISION")[0].decode(),
            "reasons": json.loads(result.as_numpy("REASONS")[0]),
            "text": result.as_numpy("TEXT")[0].decode(),
            "evidence": json.loads(result.as_numpy("EVIDENCE")[0]) if "EVIDENCE" in outputs else None,
            "seconds": seconds,
        }
        return answer


def run(client, model, samples, concurrency):
    """Answers for ``samples`` (same order), ``concurrency`` requests in flight."""
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return list(pool.map(lambda s: client.infer(model, s.data), samples))


def evaluate(samples, answers):
    """Per-sample rows (label, layout, the three columns, latency, evidence)."""
    rows = []
    for sample, answer in zip(samples, answers):
        rows.append({
            "index": sample.index, "category": sample.category, "label": sample.label, "layout": sample.layout,
            "text": sample.text, "read": answer["text"], "seconds": round(answer["seconds"], 4),
            "decisions": columns_of(answer["decision"], answer["reasons"]),
            "reasons": [(r["source"], r["code"], r["action"]) for r in answer["reasons"]],
            "evidence": answer["evidence"],
        })
    return rows


def _rate(hits, total):
    return round(hits / total, 4) if total else None


def metrics(rows, column):
    def decided(row):
        return row["decisions"][column]

    by = lambda pred: [r for r in rows if pred(r)]  # noqa: E731
    blocks = by(lambda r: r["label"] == "block")
    reviews = by(lambda r: r["label"] == "review")
    benign = by(lambda r: r["category"] == "benign")
    near = by(lambda r: r["category"] == "near_miss")
    photos = by(lambda r: r["category"] == "photo")
    rotated = by(lambda r: r["layout"] in ROTATED)
    result = {
        "samples": len(rows),
        "accuracy": _rate(sum(decided(r) == r["label"] for r in rows), len(rows)),
        "block_recall": _rate(sum(decided(r) == "block" for r in blocks), len(blocks)),
        "review_recall": _rate(sum(SEVERITY[decided(r)] >= 1 for r in reviews), len(reviews)),
        "false_block_benign": _rate(sum(decided(r) == "block" for r in benign), len(benign)),
        "false_block_near_miss": _rate(sum(decided(r) == "block" for r in near), len(near)),
        "false_block_photos": _rate(sum(decided(r) == "block" for r in photos), len(photos)),
        "false_flag_near_miss": _rate(sum(decided(r) != "allow" for r in near), len(near)),
        "rotated_accuracy": _rate(sum(decided(r) == r["label"] for r in rotated), len(rotated)),
        "per_layout": {},
        "per_category": {},
    }
    for layout in sorted({r["layout"] for r in rows}):
        group = by(lambda r: r["layout"] == layout)
        result["per_layout"][layout] = _rate(sum(decided(r) == r["label"] for r in group), len(group))
    for category in sorted({r["category"] for r in rows}):
        group = by(lambda r: r["category"] == category)
        result["per_category"][category] = _rate(sum(decided(r) == r["label"] for r in group), len(group))
    return result


def latency(seconds):
    ordered = sorted(seconds)
    if not ordered:
        return {"n": 0, "p50_ms": None, "p95_ms": None}
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return {"n": len(ordered), "p50_ms": round(statistics.median(ordered) * 1000, 1), "p95_ms": round(p95 * 1000, 1)}


TARGETS = {
    "block_recall": (">=", 0.97),
    "review_recall": (">=", 0.95),
    "false_block_benign": ("<=", 0.01),
    "false_block_near_miss": ("<=", 0.05),
    "false_block_photos": ("<=", 0.01),
    "rotated_accuracy": (">=", 0.9),
    "accuracy": (">=", 0.95),
}


def target_report(values, targets=TARGETS):
    """{name: {value, target, met}} for ``targets`` ({name: (op, bound)})."""
    report = {}
    for name, (op, bound) in targets.items():
        value = values.get(name)
        met = value is not None and (value >= bound if op == ">=" else value <= bound)
        report[name] = {"value": value, "target": f"{op} {bound}", "met": met}
    return report


def table(all_metrics):
    """The rules / classifier / combined table as text."""
    names = ["accuracy", "block_recall", "review_recall", "false_block_benign", "false_block_near_miss",
             "false_block_photos", "false_flag_near_miss", "rotated_accuracy"]
    lines = [f"| metric | {' | '.join(COLUMNS)} |", "| --- |" + " ---: |" * len(COLUMNS)]
    for name in names:
        cells = [all_metrics[c][name] for c in COLUMNS]
        lines.append(f"| {name} | " + " | ".join("-" if v is None else f"{v:.3f}" for v in cells) + " |")
    return "\n".join(lines)
