#!/usr/bin/env python3
"""Rendered text images with the decision the moderation pipeline must reach.

    .venv/bin/python Tests/Fixtures/moderation_images.py OUT_DIR

writes one PNG per case and OUT_DIR/labels.json ([{file, decision, code}], where
`code` is the first OCR reason expected, or null). The gateway's end-to-end test
sends each through `/v1/moderate` and checks the decision; the ensemble tests in
Tests/ModelRepository render with the same `render`. Generated at test time: no
image is kept in the repository.
"""

from __future__ import annotations

import json
import pathlib
import sys

from PIL import Image, ImageDraw, ImageFont

FONTS = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation2/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
]

# (file stem, lines, decision, first OCR reason code, transpose or None)
CASES = [
    ("profanity", ["you are a fucking idiot"], "review", "profanity", None),
    ("threat", ["I will kill you"], "block", "threat", None),
    ("threat-rotated-180", ["I will kill you tomorrow"], "block", "threat", Image.Transpose.ROTATE_180),
    ("url", ["visit www.example.com today"], "review", "url", None),
    ("phone", ["call +1 555 123 4567"], "review", "phone_number", None),
    ("benign", ["have a nice day"], "allow", None, None),
]


def font(size=44):
    for path in FONTS:
        try:
            return ImageFont.truetype(path, size)
        except OSError:
            continue
    raise RuntimeError("no DejaVu/Liberation font found (fonts-dejavu-core, fonts-liberation2)")


def render(lines, width=900, margin=60, line_step=80):
    # Text with a margin around it, as in a real picture or screenshot. With
    # the glyphs 20 px from the edges, PP-OCRv4's detector (rapidocr's own
    # pipeline too) splits "I will kill you" into fragments.
    image = Image.new("RGB", (width, 2 * margin + line_step * len(lines)), "white")
    draw = ImageDraw.Draw(image)
    for i, text in enumerate(lines):
        draw.text((24, margin + line_step * i), text, fill="black", font=font())
    return image


def write(out: pathlib.Path) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    labels = []
    for stem, lines, decision, code, turn in CASES:
        image = render(lines)
        if turn is not None:
            image = image.transpose(turn)
        image.save(out / f"{stem}.png")
        labels.append({"file": f"{stem}.png", "decision": decision, "code": code})
    (out / "labels.json").write_text(json.dumps(labels, indent=1) + "\n")
    return labels


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1].startswith("-"):
        print(__doc__.strip(), file=sys.stderr)
        sys.exit(2)
    for label in write(pathlib.Path(sys.argv[1])):
        print(f"{label['file']}: {label['decision']}")
