"""Seeded images of English text for the OCR accuracy test.

Every image is rebuilt from its index, so a failing case can be regenerated
and looked at (``python -m ocr_support.synthetic OUTDIR``). Variety: 15
faces (sans, serif, mono, bold, italic) from the Debian packages
fonts-dejavu-core, fonts-liberation2 and fonts-freefont-ttf, sizes 18-40 px,
light plain, gradient or speckled backgrounds, dark text colours, 1-3 lines
of 2-4 words (some capitalised or upper case), rotation within +-3 degrees
and light Gaussian noise.
"""

import os
import random
import sys
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT_DIR = "/usr/share/fonts/truetype"
FONTS = [
    "dejavu/DejaVuSans.ttf",
    "dejavu/DejaVuSans-Bold.ttf",
    "dejavu/DejaVuSerif.ttf",
    "dejavu/DejaVuSansMono.ttf",
    "dejavu/DejaVuSerif-Bold.ttf",
    "liberation2/LiberationSans-Regular.ttf",
    "liberation2/LiberationSans-Bold.ttf",
    "liberation2/LiberationSerif-Regular.ttf",
    "liberation2/LiberationMono-Regular.ttf",
    "freefont/FreeSans.ttf",
    "freefont/FreeSerif.ttf",
    "freefont/FreeSansBold.ttf",
    "freefont/FreeSansOblique.ttf",
    "liberation2/LiberationSerif-Italic.ttf",
    "freefont/FreeMono.ttf",
]

# A fixed vocabulary: common English words of 2-10 letters and a few numbers.
WORDS = """
about above across action after again against agree air almost along already
also always among animal answer appear apple area around arrive article
autumn back basket beach become before begin behind believe below better
between beyond bicycle bird black blue board boat body book border bottle
bread bridge bright bring brother build busy butter cabin camera candle
capital carbon careful carry castle centre chair change cheap chicken child
circle city clean clear clock close cloud coast coffee colour common corner
cotton country course cousin cover cream credit cross crowd culture current
dance danger daily dark daughter decide deep desert design dinner direct
doctor double dream dress drive early earth east easy edge effect eight
energy engine enough evening event every exact example family famous farm
father feather field figure final finger first flower follow forest forget
forward fresh friend front fruit future garden gentle giant glass golden
good green ground group guitar happy harbor health heavy helmet history
holiday honest horse hotel house hunger island jacket journey jungle kettle
kitchen ladder language large later laugh leader letter level light listen
little lizard local lucky market matter meadow metal middle minute mirror
modern moment money month morning mother motion mountain music narrow nature
never night noble north number ocean office orange other paper parent party
pencil people pepper picture planet plastic pocket police power pretty
print public purple quick quiet rabbit radio reason record river rocket
round saddle salad sample season second secret seven shadow silver simple
sister small smile smooth soft south spring square station stone story
street strong studio sugar summer sunny supper table teacher temple tennis
thunder ticket tiger timber today tomato tonight travel tunnel turtle
umbrella under valley velvet village visit voice wagon water weather window
winter wonder wooden world yellow young zebra 12 24 75 100 2025 3 48
""".split()


@dataclass
class Sample:
    """One generated image and the text lines drawn on it, top to bottom."""

    image: Image.Image
    lines: list
    font: str
    size: int
    angle: float


def _background(rng, width, height):
    base = np.array([rng.randint(205, 255) for _ in range(3)], dtype=np.float32)
    kind = rng.choice(["plain", "gradient", "speckle"])
    canvas = np.empty((height, width, 3), dtype=np.float32)
    canvas[:] = base
    if kind == "gradient":
        other = np.array([rng.randint(205, 255) for _ in range(3)], dtype=np.float32)
        t = np.linspace(0.0, 1.0, width, dtype=np.float32)[np.newaxis, :, np.newaxis]
        canvas = canvas * (1 - t) + other * t
    elif kind == "speckle":
        nprng = np.random.default_rng(rng.randint(0, 2**31))
        blobs = nprng.normal(0.0, 6.0, size=(height // 8 + 1, width // 8 + 1, 1))
        blobs = np.kron(blobs, np.ones((8, 8, 1)))[:height, :width]
        canvas = canvas + blobs
    return np.clip(canvas, 0, 255), tuple(int(v) for v in base)


def make_sample(index, seed=20251127):
    """The ``index``-th sample of the seeded series."""
    rng = random.Random(seed * 1000 + index)
    width, height = rng.choice([(640, 400), (720, 480), (800, 480), (600, 450)])
    font_name = FONTS[index % len(FONTS)]
    size = rng.randint(18, 40)
    font_path = os.path.join(FONT_DIR, font_name)
    if not os.path.isfile(font_path):
        raise FileNotFoundError(
            f"{font_path} is missing: install fonts-dejavu-core fonts-liberation2 "
            "fonts-freefont-ttf (scripts/bootstrap does)"
        )
    font = ImageFont.truetype(font_path, size)
    n_lines = rng.randint(1, 3)
    margin = 24

    lines = []
    for _ in range(n_lines):
        words = [rng.choice(WORDS) for _ in range(rng.randint(2, 4))]
        style = rng.random()
        if style < 0.3:
            words[0] = words[0].capitalize()
        elif style < 0.4:
            words = [w.upper() for w in words]
        while len(words) > 1 and font.getlength(" ".join(words)) > width - 2 * margin:
            words.pop()
        lines.append(" ".join(words))

    array, bg = _background(rng, width, height)
    image = Image.fromarray(array.astype(np.uint8))
    draw = ImageDraw.Draw(image)
    ink = tuple(rng.randint(0, 80) for _ in range(3))
    step = int(size * rng.uniform(1.7, 2.2))
    block_h = step * (n_lines - 1) + size
    y = rng.randint(margin, max(margin, height - margin - block_h))
    for line in lines:
        line_w = font.getlength(line)
        x = rng.randint(margin, max(margin, int(width - margin - line_w)))
        draw.text((x, y), line, font=font, fill=ink)
        y += step

    angle = rng.uniform(-3.0, 3.0)
    image = image.rotate(angle, resample=Image.BICUBIC, expand=False, fillcolor=bg)
    sigma = rng.uniform(0.0, 6.0)
    if sigma > 0.5:
        nprng = np.random.default_rng(rng.randint(0, 2**31))
        noisy = np.asarray(image, dtype=np.float32) + nprng.normal(0, sigma, (height, width, 3))
        image = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))
    return Sample(image=image, lines=lines, font=font_name, size=size, angle=angle)


def main(argv):
    out = argv[1] if len(argv) > 1 else "ocr-samples"
    count = int(argv[2]) if len(argv) > 2 else 20
    os.makedirs(out, exist_ok=True)
    for index in range(count):
        sample = make_sample(index)
        sample.image.save(os.path.join(out, f"{index:03d}.png"))
        print(index, sample.font, sample.size, f"{sample.angle:+.1f}", sample.lines)


if __name__ == "__main__":
    main(sys.argv)
