"""A small, seeded version of scripts/eval-moderation that guards the suite
against quality regressions: 48 generated text images (threats, abuse, spam,
benign text, near misses; every layout family, rotations included) and 3
photos through the `moderation` ensemble (about a minute on 2 cores). Bounds
sit below the full evaluation's targets (a small set is noisier) but a broken
rule, a lost orientation step or a classifier that blocks near misses fails
them.
The full evaluation, with the numbers the README shows, is
``scripts/eval-moderation``."""

import json

from moderation_eval import dataset, scoring

TEXT_IMAGES = 48
PHOTOS = 3
SEED = 7
# This seed, at the commit that set these bounds: block recall 0.824 (14 of
# 17), review recall 1.0 (13 of 13), rotated 1.0, accuracy 0.941 (48 of 51),
# no false block. The
# set is deterministic (same images, CPU inference), so the bounds sit about
# one sample below what it gets; the full evaluation has the real targets.
BOUNDS = {
    "block_recall": (">=", 0.76),
    "review_recall": (">=", 0.9),
    "false_block_benign": ("<=", 0.0),
    "false_block_near_miss": ("<=", 0.0),
    "false_block_photos": ("<=", 0.0),
    "rotated_accuracy": (">=", 0.9),
    "accuracy": (">=", 0.92),
}


def test_moderation_quality_on_a_seeded_set(triton_url, tmp_path):
    samples = dataset.build(TEXT_IMAGES, seed=SEED, photos=PHOTOS)
    answers = scoring.run(scoring.Client(triton_url), "moderation", samples, concurrency=2)
    rows = scoring.evaluate(samples, answers)
    measured = scoring.metrics(rows, "combined")
    (tmp_path / "moderation-quality.json").write_text(json.dumps({"metrics": measured, "rows": rows}, indent=1))
    misses = [(r["category"], r["layout"], r["text"], r["decisions"]["combined"], r["read"])
              for r in rows if r["decisions"]["combined"] != r["label"]]
    report = scoring.target_report(measured, BOUNDS)
    failed = [f"{name} = {r['value']} (bound {r['target']})" for name, r in report.items()
              if r["value"] is not None and not r["met"]]
    assert not failed, f"{failed}; misses: {misses}"
