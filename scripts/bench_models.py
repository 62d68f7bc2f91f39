"""Implementation of scripts/bench-models (run it through that wrapper)."""

import argparse
import base64
import csv
import importlib.util
import io
import json
import os
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np


def log(message):
    print(f"[bench-models] {message}", file=sys.stderr, flush=True)


def load_module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def sample_images():
    """A fixed set: four scikit-image photos and two rendered text images."""
    import skimage.data
    from PIL import Image, ImageDraw, ImageFont

    images = []
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        buffer = io.BytesIO()
        Image.fromarray(getattr(skimage.data, name)()).convert("RGB").save(buffer, "JPEG", quality=90)
        images.append((name, buffer.getvalue()))
    font_path = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
    font = ImageFont.truetype(font_path, 40) if os.path.exists(font_path) else ImageFont.load_default()
    for index, lines in enumerate([["visit www.example.com"], ["have a nice day", "call +1 555 123 4567"]]):
        image = Image.new("RGB", (800, 40 + 80 * len(lines)), "white")
        draw = ImageDraw.Draw(image)
        for i, text in enumerate(lines):
            draw.text((20, 20 + 80 * i), text, fill="black", font=font)
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        images.append((f"text{index + 1}", buffer.getvalue()))
    return images


def model_parameters(config_path: Path) -> dict:
    import tritonclient
    from google.protobuf import text_format

    pb2 = load_module(Path(tritonclient.__file__).parent / "grpc" / "model_config_pb2.py", "bench_model_config_pb2")
    config = text_format.Parse(config_path.read_text(), pb2.ModelConfig())
    return {key: {"string_value": value.string_value} for key, value in config.parameters.items()}


class InProcessPipeline:
    """preprocess -> classifier, detector + postprocess, OCR -> rules, with onnxruntime directly.

    OCR uses rapidocr-onnxruntime 1.4.4's own DB post-processing and CTC
    recognizer (from the pinned wheel) on the same two ONNX files.
    """

    def __init__(self, repo: Path, weights: Path, downloads: Path, lock: dict):
        import onnxruntime as ort

        self.image_prep = load_module(repo / "preprocess/1/image_prep.py", "bench_image_prep")
        self.detections = load_module(repo / "safety_postprocess/1/detections.py", "bench_detections")
        self.rules = load_module(repo / "decision_logic/1/rules.py", "bench_rules")
        self.policy = self.rules.Policy.from_parameters(
            model_parameters(repo / "decision_logic/config.pbtxt"), repo / "decision_logic"
        )
        wheel = downloads / lock["wheels"]["rapidocr-onnxruntime"]["filename"]
        sys.path.insert(0, str(wheel))
        from rapidocr_onnxruntime.ch_ppocr_det.utils import DBPostProcess
        from rapidocr_onnxruntime.ch_ppocr_rec import TextRecognizer
        from rapidocr_onnxruntime.main import RapidOCR

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1

        def session(path):
            return ort.InferenceSession(str(weights / path), options, providers=["CPUExecutionProvider"])

        self.classifier = session("content_classifier/1/model.onnx")
        self.detector = session("safety_detector/1/model.onnx")
        self.ocr_det = session("ocr_detector/1/model.onnx")
        self.db = DBPostProcess(thresh=0.3, box_thresh=0.5, max_candidates=1000, unclip_ratio=1.6,
                                use_dilation=True, score_mode="fast")
        self.recognizer = TextRecognizer({
            "model_path": str(weights / "ocr_recognizer/1/model.onnx"), "intra_op_num_threads": 1,
            "inter_op_num_threads": 1, "use_cuda": False, "use_dml": False,
            "rec_batch_num": 6, "rec_img_shape": [3, 48, 320],
        })
        self.ocr_helpers = RapidOCR.__new__(RapidOCR)

    def _ocr(self, prepared):
        pred = self.ocr_det.run(None, {"x": prepared.ocr_input})[0]
        bgr = prepared.ocr_image  # BGR, as RapidOCR crops it
        boxes, _ = self.db(pred, bgr.shape[:2])
        if len(boxes) == 0:
            return []
        boxes = self.ocr_helpers.sorted_boxes(np.array(boxes))
        crops = self.ocr_helpers.get_crop_img_list(bgr, [b.astype(np.float32) for b in boxes])
        results, _ = self.recognizer(crops)
        scale = prepared.ocr_scale[::-1]
        return [
            {"text": text, "confidence": float(conf), "box": (np.array(box) * scale).tolist()}
            for box, (text, conf) in zip(boxes, results)
        ]

    def __call__(self, data: bytes):
        prepared = self.image_prep.prepare(data)
        probs = self.classifier.run(["outputs"], {"input:0": prepared.classifier_input})[0]
        raw = self.detector.run(["output0"], {"images": prepared.detector_input})[0]
        found = self.detections.postprocess(raw, prepared.detector_letterbox, prepared.image_size)
        lines = self._ocr(prepared)
        return self.rules.decide(probs[0], json.dumps(found), json.dumps(lines), self.policy)


def bench_in_process(pipeline, images, workers: int, seconds: float):
    """Closed loop: `workers` threads each run the pipeline back to back over the images."""
    latencies, lock = [], threading.Lock()
    deadline = time.perf_counter() + seconds

    def worker(offset):
        i = offset
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            pipeline(images[i % len(images)][1])
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
            i += 1

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(workers)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    ms = np.array(latencies) * 1000
    return {
        "workers": workers, "requests": len(latencies), "throughput_per_s": len(latencies) / wall,
        "p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
    }


def perf_analyzer(binary, url, model, concurrency, extra, requests_per_window):
    with tempfile.NamedTemporaryFile(suffix=".csv", delete=False) as handle:
        report = handle.name
    command = [
        binary, "-m", model, "-u", url, "-i", "http", "--concurrency-range", f"{concurrency}:{concurrency}",
        "--measurement-mode", "count_windows", "--measurement-request-count", str(requests_per_window),
        "--max-trials", "3", "--stability-percentage", "1000", "-f", report, *extra,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        raise RuntimeError(f"perf_analyzer failed for {model} c={concurrency}:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    with open(report) as handle:
        row = next(csv.DictReader(handle))
    os.unlink(report)
    return {
        "concurrency": concurrency, "throughput_per_s": float(row["Inferences/Second"]),
        "p50_ms": float(row["p50 latency"]) / 1000, "p95_ms": float(row["p95 latency"]) / 1000,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--perf-analyzer", required=True)
    parser.add_argument("--model-repo", type=Path, default=None)
    parser.add_argument("--http-port", type=int, default=8290)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="shorter measurements (noisier)")
    args = parser.parse_args()

    root = args.root
    repo = (args.model_repo or root / "triton-model-repo").resolve()
    lock = json.loads((root / "triton-model-repo" / "models.lock.json").read_text())
    downloads = root / ".triton" / "downloads"
    images = sample_images()
    seconds = 15 if args.quick else 40
    windows = (6, 24) if args.quick else (12, 48)

    log("in-process pipeline (onnxruntime, 1 intra-op thread per session)")
    # Weights come from the repository under test, or from this checkout's
    # (a repository being assembled may hold configs only).
    weights = repo if (repo / "ocr_detector/1/model.onnx").is_file() else root / "triton-model-repo"
    pipeline = InProcessPipeline(repo, weights, downloads, lock)
    for _, data in images:
        pipeline(data)  # warm up every session
    cores = os.cpu_count() or 2
    in_process = {
        "sequential": bench_in_process(pipeline, images, 1, seconds),
        "parallel": bench_in_process(pipeline, images, cores, seconds),
    }

    # A second repository with content_classifier under another name, batching off.
    scratch = Path(tempfile.mkdtemp(prefix="bench-models-"))
    nobatch = scratch / "content_classifier_nobatch"
    (nobatch / "1").mkdir(parents=True)
    os.symlink(repo / "content_classifier/1/model.onnx", nobatch / "1/model.onnx")
    config = (repo / "content_classifier/config.pbtxt").read_text()
    config = config.replace('name: "content_classifier"', 'name: "content_classifier_nobatch"')
    start, end = config.index("dynamic_batching {"), config.index("}", config.index("dynamic_batching {")) + 1
    config = config[:start] + "# dynamic batching off for the comparison" + config[end:]
    config = config.replace("version_policy: { specific: { versions: [ 1, 2 ] } }", "")
    (nobatch / "config.pbtxt").write_text(config)

    data_file = scratch / "images.json"
    data_file.write_text(json.dumps({"data": [
        {"IMAGE": {"b64": base64.b64encode(struct.pack("<I", len(raw)) + raw).decode()}} for _, raw in images
    ]}))

    name = "bench-models"
    port = args.http_port
    triton = [str(root / "scripts/triton")]
    subprocess.run(triton + ["stop", "--name", name], capture_output=True)
    log(f"starting Triton on :{port} (response cache off)")
    subprocess.run(
        triton + ["start", "--name", name, "--model-repo", str(repo), "--http-port", str(port),
                  "--grpc-port", str(port + 1), "--metrics-port", str(port + 2), "--cache-size", "0",
                  "--", f"--model-repository={scratch}"],
        check=True,
    )
    url = f"127.0.0.1:{port}"
    try:
        ensemble = {}
        for c, count in ((1, windows[0]), (8, windows[1])):
            log(f"moderation ensemble, concurrency {c}")
            ensemble[f"c{c}"] = perf_analyzer(args.perf_analyzer, url, "moderation", c,
                                              ["--input-data", str(data_file)], count)
        classifier = {}
        shape = ["--shape", "input:0:224,224,3"]
        log("content_classifier, concurrency 1")
        classifier["batching_c1"] = perf_analyzer(args.perf_analyzer, url, "content_classifier", 1,
                                                  shape + ["-x", "1"], windows[1])
        log("content_classifier batching on vs off, concurrency 8")
        classifier["batching_c8"] = perf_analyzer(args.perf_analyzer, url, "content_classifier", 8,
                                                  shape + ["-x", "1"], windows[1] * 2)
        classifier["no_batching_c8"] = perf_analyzer(args.perf_analyzer, url, "content_classifier_nobatch", 8,
                                                     shape, windows[1] * 2)
    finally:
        subprocess.run(triton + ["stop", "--name", name], capture_output=True)

    bound = max(in_process["sequential"]["throughput_per_s"], in_process["parallel"]["throughput_per_s"])
    ratios = {
        "ensemble_c8_over_in_process": ensemble["c8"]["throughput_per_s"] / bound,
        "ensemble_c1_over_in_process_sequential":
            ensemble["c1"]["throughput_per_s"] / in_process["sequential"]["throughput_per_s"],
        "classifier_batching_on_over_off_c8":
            classifier["batching_c8"]["throughput_per_s"] / classifier["no_batching_c8"]["throughput_per_s"],
    }
    targets = {
        "ensemble_c8_at_least_0.8x_in_process": ratios["ensemble_c8_over_in_process"] >= 0.8,
        "content_classifier_p95_c1_under_100ms": classifier["batching_c1"]["p95_ms"] < 100,
    }
    result = {
        "machine": {"cpus": cores, "load_average_at_end": os.getloadavg()},
        "images": [name for name, _ in images],
        "in_process": in_process, "ensemble": ensemble, "content_classifier": classifier,
        "ratios": ratios, "targets_met": targets,
    }

    rows = [
        ("in-process pipeline, 1 worker", in_process["sequential"]),
        (f"in-process pipeline, {cores} workers", in_process["parallel"]),
        ("moderation ensemble, c=1", ensemble["c1"]),
        ("moderation ensemble, c=8", ensemble["c8"]),
        ("content_classifier batching, c=1", classifier["batching_c1"]),
        ("content_classifier batching, c=8", classifier["batching_c8"]),
        ("content_classifier no batching, c=8", classifier["no_batching_c8"]),
    ]
    print(f"{'what':40s} {'req/s':>9s} {'p50 ms':>9s} {'p95 ms':>9s}")
    for label, row in rows:
        print(f"{label:40s} {row['throughput_per_s']:9.2f} {row['p50_ms']:9.1f} {row['p95_ms']:9.1f}")
    for key, value in ratios.items():
        print(f"{key:40s} {value:9.2f}")
    for key, value in targets.items():
        print(f"target {key}: {'met' if value else 'NOT met'}")
    print(f"load average at end: {os.getloadavg()[0]:.1f} on {cores} CPUs (other work on the machine skews numbers)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
