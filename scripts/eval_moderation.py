"""Implementation of scripts/eval-moderation (run it through that wrapper).

Builds a temporary model repository that links every model of
triton-model-repo/ and adds the ensemble of ``--baseline-ref`` under
``baseline_`` names (its preprocess, ocr_engine, decision_logic and
moderation; the ONNX models are shared), starts one Triton on it (response
cache off, so every request computes), and runs the seeded labelled set
(Tests/ModelRepository/moderation_eval/dataset.py) through both ensembles:
quality at ``--concurrency``, latency per image at concurrency 1 (the two
pipelines interleaved image by image) and 4 on a subset. Prints the rules /
classifier / combined table, the targets and the latency ratio; writes JSON.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "Tests" / "ModelRepository"))

from moderation_eval import dataset, scoring  # noqa: E402

BASELINE_MODELS = ("preprocess", "ocr_engine", "decision_logic", "moderation")


def log(message):
    print(f"[eval-moderation] {message}", file=sys.stderr, flush=True)


def build_repository(target: Path, baseline_ref: str | None) -> None:
    repo = ROOT / "triton-model-repo"
    for model in sorted(p for p in repo.iterdir() if (p / "config.pbtxt").is_file()):
        (target / model.name).symlink_to(model)
    if not baseline_ref:
        return
    archive = subprocess.run(
        ["git", "archive", baseline_ref, *[f"triton-model-repo/{m}" for m in BASELINE_MODELS]],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        for model in BASELINE_MODELS:
            source = Path(tmp) / "triton-model-repo" / model
            destination = target / f"baseline_{model}"
            shutil.copytree(source, destination)
            for config in [destination / "config.pbtxt", *destination.glob("configs/*.pbtxt")]:
                text = config.read_text()
                text = re.sub(r'^name: "([^"]+)"', lambda m: f'name: "baseline_{m.group(1)}"', text, flags=re.M)
                for renamed in ("preprocess", "ocr_engine", "decision_logic"):
                    text = text.replace(f'model_name: "{renamed}"', f'model_name: "baseline_{renamed}"')
                config.write_text(text)


def start_triton(repo: Path, port: int) -> None:
    subprocess.run(
        [str(ROOT / "scripts" / "triton"), "start", "--name", "eval-moderation", "--model-repo", str(repo),
         "--http-port", str(port), "--grpc-port", str(port + 1), "--metrics-port", str(port + 2),
         "--cache-size", "0", "--timeout", "600"],
        check=True,
    )


def stop_triton() -> None:
    subprocess.run([str(ROOT / "scripts" / "triton"), "stop", "--name", "eval-moderation"], check=False)


def latency_runs(client, models, samples):
    """Per-model latencies at concurrency 1 (models interleaved, order
    alternating image by image) and at concurrency 4."""
    single = {m: [] for m in models}
    for n, sample in enumerate(samples):
        for model in (models if n % 2 == 0 else models[::-1]):
            single[model].append(client.infer(model, sample.data)["seconds"])
    result = {}
    for model in models:
        four = [a["seconds"] for a in scoring.run(client, model, samples, 4)]
        result[model] = {"c1": scoring.latency(single[model]), "c4": scoring.latency(four)}
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=300, help="text images (photos are added: one per 12)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight for the quality pass")
    parser.add_argument("--latency-samples", type=int, default=24, help="images in each latency run")
    parser.add_argument("--baseline-ref", default="main", help="git ref whose pipeline is the baseline ('' for none)")
    parser.add_argument("--no-baseline-quality", action="store_true", help="measure the baseline's latency only")
    parser.add_argument("--http-port", type=int, default=19010, help="port of the Triton this script starts")
    parser.add_argument("--url", default="", help="use a running Triton instead (with baseline_moderation if a baseline is wanted)")
    parser.add_argument("--json", type=Path, default=ROOT / "bench-results" / "moderation-eval.json")
    parser.add_argument("--dump", type=Path, default=None, help="also write every image and its row here")
    args = parser.parse_args()

    log(f"generating {args.samples} text images (seed {args.seed}) and photos")
    samples = dataset.build(args.samples, seed=args.seed)
    if args.dump:
        args.dump.mkdir(parents=True, exist_ok=True)
        for s in samples:
            (args.dump / f"{s.index:04d}-{s.category}-{s.layout}.img").write_bytes(s.data)

    temporary = None
    url = args.url
    try:
        if not url:
            temporary = Path(tempfile.mkdtemp(prefix="eval-moderation-"))
            build_repository(temporary, args.baseline_ref or None)
            start_triton(temporary, args.http_port)
            url = f"http://127.0.0.1:{args.http_port}"
        client = scoring.Client(url)
        models = ["moderation"] + (["baseline_moderation"] if args.baseline_ref else [])

        report = {"seed": args.seed, "samples": len(samples), "baseline_ref": args.baseline_ref or None,
                  "quality": {}, "latency": {}}
        started = time.monotonic()
        answers = scoring.run(client, "moderation", samples, args.concurrency)
        log(f"quality pass: {len(samples)} images in {time.monotonic() - started:.0f} s")
        rows = scoring.evaluate(samples, answers)
        report["quality"]["moderation"] = {c: scoring.metrics(rows, c) for c in scoring.COLUMNS}
        report["targets"] = scoring.target_report(report["quality"]["moderation"]["combined"])
        report["rows"] = rows
        if args.baseline_ref and not args.no_baseline_quality:
            started = time.monotonic()
            base_rows = scoring.evaluate(samples, scoring.run(client, "baseline_moderation", samples, args.concurrency))
            log(f"baseline quality pass: {time.monotonic() - started:.0f} s")
            report["quality"]["baseline_moderation"] = {"combined": scoring.metrics(base_rows, "combined")}

        text_samples = [s for s in samples if s.category != "photo"]
        photos = [s for s in samples if s.category == "photo"]
        subset = (text_samples[: max(1, args.latency_samples - args.latency_samples // 6)]
                  + photos[: args.latency_samples // 6])
        log(f"latency: {len(subset)} images, concurrency 1 (interleaved) and 4, models {models}")
        report["latency"] = latency_runs(client, models, subset)
        if len(models) == 2:
            new, old = (report["latency"][m]["c1"]["p50_ms"] for m in models)
            report["latency"]["p50_ratio_c1"] = round(new / old, 3) if old else None
            report["targets"]["p50_latency_ratio"] = {
                "value": report["latency"]["p50_ratio_c1"], "target": "<= 1.3",
                "met": bool(old) and new / old <= 1.3}
    finally:
        if temporary is not None:
            stop_triton()
            shutil.rmtree(temporary, ignore_errors=True)

    quality = report["quality"]["moderation"]
    print()
    print(f"moderation on {len(samples)} images (seed {args.seed}):")
    print(scoring.table(quality))
    if "baseline_moderation" in report["quality"]:
        base = report["quality"]["baseline_moderation"]["combined"]
        print(f"\nbaseline ({args.baseline_ref}) combined: accuracy {base['accuracy']}, block recall "
              f"{base['block_recall']}, review recall {base['review_recall']}, rotated {base['rotated_accuracy']}, "
              f"false blocks near misses {base['false_block_near_miss']}")
    print("\nper layout (combined):", json.dumps(quality["combined"]["per_layout"]))
    print("per category (combined):", json.dumps(quality["combined"]["per_category"]))
    print("\nlatency per image:")
    for model in models:
        lat = report["latency"][model]
        print(f"  {model}: c=1 p50 {lat['c1']['p50_ms']} ms p95 {lat['c1']['p95_ms']} ms; "
              f"c=4 p50 {lat['c4']['p50_ms']} ms p95 {lat['c4']['p95_ms']} ms")
    if "p50_ratio_c1" in report["latency"]:
        print(f"  p50 ratio (c=1, new / baseline): {report['latency']['p50_ratio_c1']}")
    print("\ntargets:")
    for name, target in report["targets"].items():
        print(f"  {name}: {target['value']} (target {target['target']}) {'met' if target['met'] else 'NOT MET'}")
    misses = [r for r in rows if r["decisions"]["combined"] != r["label"]]
    print(f"\n{len(misses)} misses:")
    for r in misses:
        print(f"  #{r['index']} {r['category']}/{r['layout']}: {r['text']!r} -> {r['decisions']['combined']} "
              f"(read {r['read']!r})")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1))
    log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
