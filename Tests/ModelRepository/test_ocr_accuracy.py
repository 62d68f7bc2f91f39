"""OCR accuracy of ``ocr_engine`` on 100 seeded images of rendered English text.

Each image goes through the contract's reference preprocessing (rapidocr
1.4.4 det preprocessing, ocr_support/reference.py) and then through Triton's
``ocr_engine`` (detector, DB post-processing, batched recogniser, CTC).
Character accuracy = 1 - total edit distance / total characters, over every
image's lines joined top to bottom; it must be at least 95 %. Exact-line
accuracy (a line read with every character right) is printed and written,
with the per-image failures, to bench-results/ocr-accuracy.json and to the
test's tmp dir.
"""

import json
import time

import numpy as np

from ocr_support import reference, scoring, synthetic
from ocr_support.fixtures import (  # noqa: F401  (pytest fixtures)
    ROOT,
    decode_lines,
    infer_concurrently,
    ocr_client,
)

IMAGES = 100
MIN_CHARACTER_ACCURACY = 0.95


def _engine_inputs(sample):
    ocr_input, ocr_image, scale = reference.ocr_tensors(sample.image)
    return {"OCR_INPUT": ocr_input, "OCR_IMAGE": ocr_image, "OCR_SCALE": scale}


def test_character_accuracy_on_rendered_text(ocr_client, triton_url, tmp_path):
    samples = [synthetic.make_sample(i) for i in range(IMAGES)]
    started = time.monotonic()
    # Two requests in flight: the engine has two instances, so one image's
    # recognition overlaps the next one's detection.
    outputs = infer_concurrently(
        triton_url, "ocr_engine", (_engine_inputs(s) for s in samples), ["OCR_LINES"],
        concurrency=2,
    )
    elapsed = time.monotonic() - started
    results = [(s, decode_lines(o["OCR_LINES"])) for s, o in zip(samples, outputs)]

    total_distance = total_chars = exact_lines = total_lines = 0
    failures = []
    for index, (sample, lines) in enumerate(results):
        width, height = sample.image.size
        for line in lines:
            box = np.asarray(line["box"])
            assert box[:, 0].min() >= 0 and box[:, 0].max() <= width, (index, line)
            assert box[:, 1].min() >= 0 and box[:, 1].max() <= height, (index, line)
        # Reading order: no line starts above the previous one's middle.
        for before, after in zip(lines, lines[1:]):
            assert np.asarray(after["box"])[:, 1].max() >= np.mean(
                np.asarray(before["box"])[:, 1]
            ), (index, before, after)

        rows = scoring.text_rows(lines)
        distance, chars, exact = scoring.score(sample.lines, rows)
        total_distance += distance
        total_chars += chars
        exact_lines += exact
        total_lines += len(sample.lines)
        if distance:
            failures.append(
                {"index": index, "font": sample.font, "size": sample.size,
                 "angle": round(sample.angle, 2), "expected": sample.lines, "read": rows}
            )

    report = {
        "images": IMAGES,
        "lines": total_lines,
        "characters": total_chars,
        "character_accuracy": round(1 - total_distance / total_chars, 5),
        "exact_line_accuracy": round(exact_lines / total_lines, 5),
        "seconds": round(elapsed, 1),
        "failures": failures,
    }
    text = json.dumps(report, indent=2)
    (tmp_path / "ocr-accuracy.json").write_text(text)
    results_dir = ROOT / "bench-results"
    results_dir.mkdir(exist_ok=True)
    (results_dir / "ocr-accuracy.json").write_text(text)
    print(
        f"\nOCR on {IMAGES} images / {total_lines} lines / {total_chars} characters: "
        f"character accuracy {report['character_accuracy']:.2%}, "
        f"exact lines {report['exact_line_accuracy']:.2%}, {elapsed:.0f} s"
    )
    assert report["character_accuracy"] >= MIN_CHARACTER_ACCURACY, text
