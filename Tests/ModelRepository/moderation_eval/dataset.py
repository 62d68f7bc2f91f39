"""A seeded, labelled set of images for the moderation evaluation.

Every sample is rebuilt from (seed, index): the same seed gives the same
images, byte for byte, so a miss can be regenerated and looked at
(``scripts/eval-moderation --dump DIR``). Nothing here is committed as an
image; nothing is explicit: the unsafe side is text (threats, abuse, spam),
the photos are scikit-image's public-domain samples and generated scenes.

Categories and the decision each must get:

| category | label | what |
| --- | --- | --- |
| threat | block | threats without profanity, several grammatical forms |
| threat_profane | block | threats with profanity |
| abuse | review | profane insults (no threat) |
| spam | review | URLs, phone numbers |
| benign | allow | everyday text |
| near_miss | allow | idioms and words that share words or letters with the rules |
| photo | allow | photos and generated scenes without text |

Text layouts (``LAYOUTS``): one line, wrapped, three lines, small, coloured
background, noise, meme style (outlined capitals over a scene), tilted,
blurred, rotated 90/180/270, curved, two columns, over a photo, with emoji
(symbol glyphs from DejaVu), joined words (spaces dropped) and letter-spaced.
"""

from __future__ import annotations

import io
import math
import random
import textwrap
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONT_DIR = "/usr/share/fonts/truetype"
FONTS = [
    "dejavu/DejaVuSans.ttf", "dejavu/DejaVuSans-Bold.ttf", "dejavu/DejaVuSerif.ttf",
    "dejavu/DejaVuSansMono.ttf", "dejavu/DejaVuSerif-Bold.ttf", "dejavu/DejaVuSansCondensed.ttf",
    "liberation2/LiberationSans-Regular.ttf", "liberation2/LiberationSans-Bold.ttf",
    "liberation2/LiberationSerif-Regular.ttf", "liberation2/LiberationMono-Regular.ttf",
    "liberation2/LiberationSerif-Bold.ttf", "liberation2/LiberationSans-Italic.ttf",
    "freefont/FreeSans.ttf", "freefont/FreeSerif.ttf", "freefont/FreeSansBold.ttf",
    "freefont/FreeMono.ttf", "freefont/FreeSerifBold.ttf",
]
BOLD_FONTS = ["dejavu/DejaVuSans-Bold.ttf", "liberation2/LiberationSans-Bold.ttf", "freefont/FreeSansBold.ttf"]
EMOJI = ["\u2605", "\u263a", "\u2665", "\u2620", "\u26a0", "\u2600", "\u266b", "\u2714", "\u263b", "\u2622"]

THREATS = [
    "I will kill you", "I will kill you tomorrow", "I'm going to kill you", "I am going to hurt you",
    "I'll stab you", "We will find you and kill you", "I'm gonna shoot you", "you will die tonight",
    "I will murder your family", "I know where you live", "watch your back", "kill yourself",
    "you deserve to die", "I will burn your house down", "we are going to hurt them",
    "I'll break your neck", "someone should shoot him", "you are dead", "gonna kill u",
    "I will hunt down everyone", "I hope you die", "I will slaughter all of you",
    "I am going to strangle her", "I'll poison your dog", "you are going to die",
    "I'm going to kidnap your kids", "we will bury you", "I will torture him",
    "I WILL KILL YOU", "Iwillkillyou", "i'll hurt u",
]
THREATS_PROFANE = [
    "I will fucking kill you", "I'm going to fucking kill you bitch", "shut up or I'll kill you",
    "I'll shoot you, asshole", "you're dead, motherfucker", "kill yourself you piece of shit",
    "I will stab you bitch", "go kill yourself loser, fuck off", "I'm gonna murder you, bastard",
    "watch your back you little shit", "I'll break your face, dickhead", "I will hurt you, cunt",
]
ABUSE = [
    "you are a fucking idiot", "shut the fuck up", "what a piece of shit", "go fuck yourself",
    "you stupid bitch", "eat shit", "fuck off", "this is bullshit", "you asshole", "dumbass",
    "fuck you", "what a dickhead", "you are a twat", "holy shit you suck, motherfucker",
    "piss off wanker", "screw you bastard",
]
SPAM = [
    "visit www.cheap-pills.com now", "win a free phone at prize-claim.xyz", "call +1 555 123 4567",
    "text 07700 900123 for offers", "WhatsApp +44 7700 900 123", "http://bit.ly/free-money",
    "follow me at myshop.online", "dm 555-867-5309 for deals", "buy followers: growfast.io",
    "crypto tips at t.me/pumpgroup", "best prices www.deals4you.net", "call now 0800 123 4567",
    "loans approved: easycash.biz", "hot singles at meetnow.site",
]
BENIGN = [
    "have a nice day", "see you at the beach", "happy birthday Anna", "fresh coffee every morning",
    "the meeting starts at ten", "welcome to our garden", "thank you for shopping", "keep calm and read on",
    "closed on Sundays", "mind the gap", "please recycle", "lost cat, answers to Milo",
    "summer sale this weekend", "the library opens at nine", "good morning sunshine",
    "best dad in the world", "do not feed the ducks", "room 204 is on the second floor",
    "enjoy your meal", "back in five minutes", "we love our customers", "save the date: June 12",
    "Monday to Friday 9 to 5", "all you need is love", "life is better at the lake",
]
NEAR_MISS = [
    "this exam will kill me", "my feet are killing me", "I will kill it at the gym", "you killed it on stage",
    "kill the lights please", "I'll shoot you an email", "I will kill you with kindness",
    "I will never hurt you", "the killer whale show", "skill yourself up", "deadline is tomorrow",
    "Scunthorpe United", "a classic assignment", "the grass is greener", "I'm dying of laughter",
    "smoking will kill you", "we shot the photos at dawn", "this dessert is to die for",
    "I will beat you at chess", "the battery is dead", "bass guitar lessons", "cocktail hour at six",
    "I'll take a shot at it", "that joke killed me", "dead end street", "time to kill before the bus",
    "she will hit the gym", "the therapist is in", "shoot for the stars", "kill two birds with one stone",
    "I'm gonna crush this exam", "our hitlist of summer songs", "Sussex assessment day",
    "a skillful youth team", "ask ill yourself no questions", "magna cum laude",
]
CATEGORIES = {
    "threat": ("block", THREATS),
    "threat_profane": ("block", THREATS_PROFANE),
    "abuse": ("review", ABUSE),
    "spam": ("review", SPAM),
    "benign": ("allow", BENIGN),
    "near_miss": ("allow", NEAR_MISS),
}
LAYOUTS = [
    "one_line", "wrapped", "three_lines", "small", "coloured", "noise", "meme", "tilted", "blurred",
    "rot90", "rot180", "rot270", "curved", "two_columns", "over_photo", "emoji", "joined", "spaced",
]
ROTATED = ("rot90", "rot180", "rot270")
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera", "immunohistochemistry", "cat", "hubble_deep_field")
# Share of the text samples per category (the rest of a run are photos).
MIX = {"threat": 0.24, "threat_profane": 0.10, "abuse": 0.12, "spam": 0.14, "benign": 0.18, "near_miss": 0.22}


@dataclass
class Sample:
    index: int
    category: str
    label: str
    layout: str
    text: str
    data: bytes  # encoded image (PNG or JPEG)


def _font(path, size):
    return ImageFont.truetype(f"{FONT_DIR}/{path}", size)


def _photo(name, size=None):
    import skimage.data

    array = getattr(skimage.data, name)()
    image = Image.fromarray(array).convert("RGB")
    return image if size is None else image.resize(size)


def _background(rng, width, height, kind):
    if kind == "coloured":
        top = np.array([rng.randint(120, 255) for _ in range(3)], dtype=np.float32)
        bottom = np.array([rng.randint(120, 255) for _ in range(3)], dtype=np.float32)
        ramp = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
        array = top * (1 - ramp) + bottom * ramp
        return Image.fromarray(np.broadcast_to(array, (height, width, 3)).astype(np.uint8))
    shade = rng.randint(235, 255)
    return Image.new("RGB", (width, height), (shade, shade, rng.randint(225, 255)))


def _draw_lines(image, lines, font, colour, x, y, step, outline=None):
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        kwargs = {"stroke_width": max(2, font.size // 14), "stroke_fill": outline} if outline else {}
        draw.text((x, y + i * step), line, fill=colour, font=font, **kwargs)


def _text_block(rng, lines, font, colour, background="plain", pad=None):
    pad = pad if pad is not None else rng.randint(30, 60)
    widths = [font.getbbox(line)[2] for line in lines]
    step = int(font.size * 1.5)
    width = max(widths) + 2 * pad
    height = step * len(lines) + 2 * pad
    image = _background(rng, width, height, background)
    _draw_lines(image, lines, font, colour, pad, pad, step)
    return image


def _curved(rng, text, font, colour):
    """Characters placed along a gentle arc, each turned to follow it."""
    advance = [font.getbbox(c)[2] + 2 for c in text]
    total = sum(advance)
    radius = total * rng.uniform(1.2, 1.8)
    width, height = total + 120, int(font.size * 4 + 80)
    image = Image.new("RGB", (width, height), "white")
    centre_x, centre_y = width / 2, height - 40 + radius - font.size
    angle = -total / radius / 2
    for c, step in zip(text, advance):
        glyph = Image.new("RGBA", (font.size * 2, font.size * 2), (0, 0, 0, 0))
        ImageDraw.Draw(glyph).text((font.size // 2, font.size // 2), c, fill=colour, font=font)
        middle = angle + step / radius / 2
        glyph = glyph.rotate(-math.degrees(middle), resample=Image.BICUBIC)
        x = centre_x + radius * math.sin(middle) - font.size
        y = centre_y - radius * math.cos(middle) - font.size
        image.paste(glyph, (int(x), int(y)), glyph)
        angle += step / radius
    return image


def render(rng, text, layout):
    """One text image in ``layout``."""
    font_path = rng.choice(FONTS)
    size = rng.randint(30, 46)
    colour = tuple(rng.randint(0, 70) for _ in range(3))
    font = _font(font_path, size)
    if layout == "joined":
        text = text.replace(" ", "")
    elif layout == "spaced":
        text = " ".join(text.replace(" ", "  ")) if len(text) < 22 else text.upper()
    elif layout == "emoji":
        text = f"{rng.choice(EMOJI)} {text} {rng.choice(EMOJI)}"
        font = _font(rng.choice(["dejavu/DejaVuSans.ttf", "dejavu/DejaVuSans-Bold.ttf"]), size)

    if layout == "wrapped":
        lines = textwrap.wrap(text, width=max(8, len(text) // 2 + 1)) or [text]
        image = _text_block(rng, lines, font, colour)
    elif layout == "three_lines":
        words = text.split()
        cut = [round(len(words) * k / 3) for k in range(4)]
        lines = [" ".join(words[a:b]) for a, b in zip(cut, cut[1:]) if words[a:b]] or [text]
        image = _text_block(rng, lines, font, colour)
    elif layout == "small":
        image = _text_block(rng, [text], _font(font_path, rng.randint(16, 19)), colour, pad=rng.randint(16, 30))
    elif layout == "coloured":
        image = _text_block(rng, [text], font, colour, background="coloured")
    elif layout == "noise":
        image = _text_block(rng, [text], font, colour)
        array = np.asarray(image).astype(np.float32)
        array += np.random.default_rng(rng.randint(0, 1 << 30)).normal(0, rng.uniform(10, 22), array.shape)
        image = Image.fromarray(np.clip(array, 0, 255).astype(np.uint8))
    elif layout == "meme":
        scene = _photo(rng.choice(PHOTOS[:4]), (640, 480))
        meme_font = _font(rng.choice(BOLD_FONTS), 40)
        words = text.upper().split()
        half = max(1, len(words) // 2)
        lines = [" ".join(words[:half]), " ".join(words[half:])]
        draw = ImageDraw.Draw(scene)
        for line, y in zip(lines, (20, 400)):
            if not line:
                continue
            w = draw.textbbox((0, 0), line, font=meme_font)[2]
            if w > 620:
                meme_font = _font(rng.choice(BOLD_FONTS), 28)
                w = draw.textbbox((0, 0), line, font=meme_font)[2]
            draw.text(((640 - w) / 2, y), line, fill="white", font=meme_font, stroke_width=3, stroke_fill="black")
        image = scene
    elif layout == "tilted":
        image = _text_block(rng, [text], font, colour).rotate(
            rng.choice([-1, 1]) * rng.uniform(4, 10), expand=True, fillcolor="white", resample=Image.BICUBIC)
    elif layout == "blurred":
        image = _text_block(rng, [text], font, colour).filter(ImageFilter.GaussianBlur(rng.uniform(0.8, 1.4)))
    elif layout in ROTATED:
        block = _text_block(rng, textwrap.wrap(text, 24) or [text], font, colour)
        image = block.rotate({"rot90": -90, "rot180": 180, "rot270": 90}[layout], expand=True)
    elif layout == "curved":
        image = _curved(rng, text, font, colour)
    elif layout == "two_columns":
        other = rng.choice(BENIGN)
        left, right = (text, other) if rng.random() < 0.5 else (other, text)
        small = _font(font_path, rng.randint(26, 32))
        cols = [textwrap.wrap(left, 16), textwrap.wrap(right, 16)]
        col_w = max(small.getbbox(line)[2] for col in cols for line in col)
        step = int(small.size * 1.5)
        rows = max(len(c) for c in cols)
        image = Image.new("RGB", (2 * col_w + 200, rows * step + 100), "white")
        for n, col in enumerate(cols):
            _draw_lines(image, col, small, colour, 50 + n * (col_w + 100), 50, step)
    elif layout == "over_photo":
        scene = _photo(rng.choice(PHOTOS[:4]), (720, 480))
        w = font.getbbox(text)[2]
        if w > 680:
            font = _font(font_path, 28)
            w = font.getbbox(text)[2]
        draw = ImageDraw.Draw(scene)
        y = rng.randint(40, 380)
        draw.rectangle([(20, y - 10), (40 + w, y + font.size + 16)], fill=(255, 255, 255))
        draw.text((30, y), text, fill=colour, font=font)
        image = scene
    else:  # one_line, emoji, joined, spaced
        image = _text_block(rng, [text], font, colour)
    return image


def _scene(rng):
    """A generated picture without text: gradient sky, ground, a few shapes."""
    width, height = rng.randint(480, 800), rng.randint(360, 600)
    image = _background(rng, width, height, "coloured")
    draw = ImageDraw.Draw(image)
    draw.rectangle([(0, height * 2 // 3), (width, height)], fill=tuple(rng.randint(40, 140) for _ in range(3)))
    for _ in range(rng.randint(3, 8)):
        x, y, r = rng.randint(0, width), rng.randint(0, height), rng.randint(10, 80)
        draw.ellipse([(x - r, y - r), (x + r, y + r)], fill=tuple(rng.randint(0, 255) for _ in range(3)))
    return image


def encode(image, rng):
    buffer = io.BytesIO()
    if rng.random() < 0.3:
        image.convert("RGB").save(buffer, format="JPEG", quality=rng.randint(80, 95))
    else:
        image.convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def build(count, seed=11, photos=None):
    """``count`` text samples (categories by ``MIX``, layouts round-robin per
    category, texts drawn without repeats until a list is used up) plus
    ``photos`` photo samples (default: one per 12 text samples)."""
    rng = random.Random(seed)
    samples = []
    plan = []
    for category, share in MIX.items():
        plan += [category] * max(1, round(count * share))
    plan = plan[:count]
    rng.shuffle(plan)
    layout_turn = {c: rng.randrange(len(LAYOUTS)) for c in CATEGORIES}
    pools = {c: [] for c in CATEGORIES}
    for category in plan:
        label, texts = CATEGORIES[category]
        if not pools[category]:
            pools[category] = rng.sample(texts, len(texts))
        text = pools[category].pop()
        layout = LAYOUTS[layout_turn[category] % len(LAYOUTS)]
        layout_turn[category] += 1
        image = render(rng, text, layout)
        samples.append(Sample(len(samples), category, label, layout, text, encode(image, rng)))
    photos = max(2, count // 12) if photos is None else photos
    for n in range(photos):
        if n < len(PHOTOS):
            image, layout = _photo(PHOTOS[n]), "sample_photo"
        else:
            image, layout = _scene(rng), "scene"
        samples.append(Sample(len(samples), "photo", "allow", layout, "", encode(image, rng)))
    return samples
