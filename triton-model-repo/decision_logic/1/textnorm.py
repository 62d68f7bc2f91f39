"""Text as the rules read it: one canonical form for what people read as the
same words, whatever characters carried them.

``canonical(text)`` folds, in this order:

1. Unicode NFKC (full-width letters, ligatures, compatibility forms);
2. curly quotes and apostrophes to ASCII, then apostrophes dropped inside
   words ("I’ll" and "I'll" both become "ill"; rules spell contractions so);
3. confusable letters from other scripts (Cyrillic "а", Greek "ο", …) to the
   Latin letter they look like (``CONFUSABLES``), then accents dropped;
4. case folding;
5. a lone "l" or "|" that starts the text becomes "i" (OCR's reading of "I");
   leetspeak inside words that also hold letters ("k1ll", "$h1t", "h@te"):
   digits and symbols of ``LEET`` become letters; numbers on their own
   ("555 123 4567", "2024") are left alone;
6. everything that is not a letter, digit, dot, slash, colon, hyphen, plus
   or "@" becomes a space, and runs of spaces one space.

Letters stretched for emphasis ("kiiiill", "fuuuck") are handled by
``reread``: every run of three or more equal letters becomes one letter in
one reading and two in another, so "kiiiill" reads "kill" and "shooooot"
reads "shoot"; a third reading forgives common OCR slips.

``compact(text)`` is the spacing-insensitive form (letters and digits only),
with, for each character, whether a word of the canonical text starts or
ends there: the rules accept a compact match only where it starts at a word
start, so "skill you" never reads as "kill you".
"""

from __future__ import annotations

import re
import unicodedata

# Letters of other scripts that render like a Latin letter (Unicode's
# confusables.txt, the lower-case letters people use to dodge word lists).
CONFUSABLES = {
    # Cyrillic
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o",
    "р": "p", "с": "c", "т": "t", "у": "y", "х": "x", "і": "i", "ї": "i", "ј": "j",
    "ѕ": "s", "ԁ": "d", "ԛ": "q", "ԝ": "w", "ү": "y", "һ": "h", "ӏ": "l", "ь": "b",
    # Greek
    "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o",
    "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "γ": "y", "ω": "w", "μ": "u",
    # Latin look-alikes that NFKC leaves alone
    "ı": "i", "ł": "l", "ø": "o", "đ": "d", "ħ": "h", "ŧ": "t", "ɑ": "a", "ɡ": "g",
    "ꞵ": "b", "ʏ": "y", "ᴀ": "a", "ʙ": "b", "ᴄ": "c", "ᴅ": "d", "ᴇ": "e", "ɢ": "g",
    "ʜ": "h", "ɪ": "i", "ᴊ": "j", "ᴋ": "k", "ʟ": "l", "ᴍ": "m", "ɴ": "n", "ᴏ": "o",
    "ᴘ": "p", "ʀ": "r", "ꜱ": "s", "ᴛ": "t", "ᴜ": "u", "ᴠ": "v", "ᴡ": "w", "ᴢ": "z",
}

QUOTES = {
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'", "\u02bc": "'",
    "`": "'", "\u00b4": "'", "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u2033": '"',
}

# Leetspeak: what a digit or symbol stands for inside a word.
LEET = {
    "0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g",
    "@": "a", "$": "s", "!": "i", "|": "l", "+": "t", "€": "e", "£": "l", "¡": "i",
}

_APOSTROPHE_IN_WORD = re.compile(r"(?<=\w)'(?=\w)")
_TOKEN = re.compile(r"\S+")
_NOT_KEPT = re.compile(r"[^a-z0-9./:+@*\s-]")
_STRETCH = re.compile(r"([a-z])\1{2,}")


def _fold_characters(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    text = "".join(QUOTES.get(c, c) for c in text)
    text = _APOSTROPHE_IN_WORD.sub("", text)
    text = "".join(CONFUSABLES.get(c, CONFUSABLES.get(c.lower(), c)) for c in text)
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def _deleet_token(token: str) -> str:
    letters = sum(c.isalpha() for c in token)
    leet = sum(c in LEET for c in token)
    # A word with a few stand-ins, not a number glued to words ("call5551234").
    if letters == 0 or leet == 0 or leet > letters or re.search(r"\d{3}", token):
        return token
    # Only the word's own characters: a trailing "!" or "." is punctuation.
    core = token.rstrip("!.?,;:")
    tail = token[len(core):]
    if not any(c.isalpha() for c in core):
        return token
    return "".join(LEET.get(c, c) for c in core) + tail


def canonical(text: str) -> str:
    """The canonical form the text rules match against (see the module doc)."""
    folded = _fold_characters(text)
    # A lone "l" or "|" starting the text is the pronoun "I" read as a look-alike glyph.
    folded = re.sub(r"^\s*[l|](?=\s+[a-z])", "i", folded)
    folded = _TOKEN.sub(lambda m: _deleet_token(m.group(0)), folded)
    # Sentence punctuation between words goes; dots inside a token stay
    # (example.com, 555.123.4567), as do the characters URLs need.
    folded = re.sub(r"[.:](?=\s|$)", " ", folded)
    folded = _NOT_KEPT.sub(" ", folded)
    return " ".join(folded.split())


# Readings of a canonical text the rules also try: stretched letters once and
# twice, and OCR slips (a stray letter from a glyph edge or an emoji read as a
# word of its own; "ll" at a word end read as "li" or as one "l"; "I'll" read
# with ones and capital i's; "I" glued to the next word read as "l").
READINGS = (None, "once", "twice", "ocr")
_STRAY_LETTER = re.compile(r"(?<!\S)[b-hj-tv-z](?!\S)")
_FINAL_LI = re.compile(r"(?<=[a-z])li\b")
_SINGLE_L = re.compile(r"\b(ki|wi|i)l\b")
_ILL = re.compile(r"(?<!\S)[il1|]{3}(?!\S)")
_GLUED_I = re.compile(r"(?<!\S)[l|](?=(will|wil|am|m|ll)[a-z])")


def reread(text: str, reading) -> str:
    """``text`` in one of ``READINGS`` (None: unchanged)."""
    if reading == "once":
        return _STRETCH.sub(lambda m: m.group(1), text)
    if reading == "twice":
        return _STRETCH.sub(lambda m: m.group(1) * 2, text)
    if reading == "ocr":
        text = _STRAY_LETTER.sub(" ", text)
        text = _SINGLE_L.sub(lambda m: m.group(1) + "ll", _FINAL_LI.sub("ll", text))
        text = _GLUED_I.sub("i", _ILL.sub("ill", text))
        return " ".join(text.split())
    return text


def compact(text: str):
    """(letters and digits of ``text`` without separators, word starts, word ends).

    ``starts[i]`` / ``ends[i]`` say whether the i-th compact character is the
    first / last letter-or-digit of a word of ``text`` (words split at anything
    that is not a letter or digit)."""
    chars, starts, ends = [], [], []
    previous_kept = False
    for c in text:
        kept = c.isalnum()
        if kept:
            starts.append(not previous_kept)
            chars.append(c)
            ends.append(False)
        elif previous_kept and ends:
            ends[-1] = True
        previous_kept = kept
    if ends:
        ends[-1] = True
    return "".join(chars), starts, ends


def ascii_words(text: str) -> str:
    """Canonical text with anything outside ASCII letters and digits as spaces:
    what the text classifier reads (its ONNX graph tokenises ASCII exactly as
    scikit-learn does)."""
    return " ".join(re.sub(r"[^a-z0-9']", " ", text).split())
