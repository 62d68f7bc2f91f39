"""The moderation rule engine, importable without Triton.

``decide(nsfw_probs, detections, ocr_lines, policy)`` combines the three
branches into a decision (allow < review < block: the most severe reason
wins), the reasons behind it and the scores. ``Policy.from_parameters``
reads the model config's ``parameters``; ``TextRule.load`` reads the terms file.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import textnorm

ALLOW, REVIEW, BLOCK = "allow", "review", "block"
_SEVERITY = {ALLOW: 0, REVIEW: 1, BLOCK: 2}


class PolicyError(ValueError):
    """A configuration the rule engine refuses (bad threshold, unknown action...)."""


class InputError(ValueError):
    """A branch output the rule engine cannot read."""


LONG_WORD = 7
_WORD_EDGE_BEFORE = r"(?<![a-z0-9])"
_WORD_EDGE_AFTER = r"(?![a-z0-9])"


def _compact_pattern(pattern: str) -> str:
    """The spacing-insensitive twin of a rule pattern: separators and word
    boundaries removed (rule patterns spell separators as \\s+, \\s* or a
    space, and nothing else)."""
    for separator in (r"\s+", r"\s*", r"\s", r"\b", " "):
        pattern = pattern.replace(separator, "")
    return pattern


def _word_set_pattern(words) -> re.Pattern | None:
    if not words:
        return None
    alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    return re.compile(f"(?:{alternatives})")


@dataclass(frozen=True)
class Match:
    """Where a rule matched: ``form`` is "text" (the canonical text, lines
    joined with spaces) or "compact" (spacing-insensitive); ``start``/``end``
    index the canonical text."""

    rule: "TextRule"
    form: str
    start: int
    end: int


@dataclass(frozen=True)
class TextRule:
    code: str
    action: str
    terms: tuple[str, ...] = ()
    patterns: tuple[re.Pattern, ...] = ()
    min_digits: int = 0
    compact: bool = False
    compact_patterns: tuple[re.Pattern, ...] = ()

    @staticmethod
    def load(path: Path, wordlists: dict | None = None) -> list["TextRule"]:
        """Rules from a terms file. ``wordlists`` maps the name a rule gives in
        ``wordlist`` to the file that holds its words (one per line)."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        rules = []
        for entry in data.get("rules", []):
            code = entry.get("code")
            action = entry.get("action")
            if action not in (REVIEW, BLOCK):
                raise PolicyError(f"terms rule {code!r}: action must be review or block")
            try:
                patterns = tuple(re.compile(p, re.IGNORECASE) for p in entry.get("patterns", []))
                compact_patterns = tuple(
                    re.compile(_compact_pattern(p.pattern), re.IGNORECASE) for p in patterns
                ) if entry.get("compact") else ()
            except re.error as error:
                raise PolicyError(f"terms rule {code!r}: bad pattern: {error}") from None
            terms = [textnorm.canonical(t) for t in entry.get("terms", [])]
            if entry.get("wordlist"):
                # The path is the parameter of that name, by default
                # wordlists/<name>.txt beside the terms file.
                name = entry["wordlist"]
                default = Path(path).parent / "wordlists" / f"{name}.txt"
                terms += read_wordlist((wordlists or {}).get(name, default))
            excluded = {textnorm.canonical(t) for t in entry.get("exclude", [])}
            terms = tuple(sorted({t for t in terms if t and t not in excluded}))
            rules.append(
                TextRule(
                    code=str(code),
                    action=action,
                    terms=terms,
                    patterns=patterns,
                    min_digits=int(entry.get("min_digits", 0)),
                    compact=bool(entry.get("compact", False)),
                    compact_patterns=compact_patterns,
                )
            )
        return rules

    def __post_init__(self):
        # One alternation for all terms (a word list has hundreds), and one of
        # the same words without their spaces for the compact form.
        object.__setattr__(self, "_terms_re", _word_set_pattern(self.terms))
        phrases = {t.replace(" ", ""): (" " in t) for t in self.terms}
        object.__setattr__(self, "_compact_terms", phrases)
        object.__setattr__(self, "_compact_terms_re", _word_set_pattern(phrases))

    def _digits_ok(self, value: str) -> bool:
        return not self.min_digits or sum(c.isdigit() for c in value) >= self.min_digits

    def find_spaced(self, text: str):
        """(start, end) of the first term or pattern match in canonical ``text``."""
        found = []
        if self._terms_re is not None:
            edge = re.compile(_WORD_EDGE_BEFORE + self._terms_re.pattern + _WORD_EDGE_AFTER)
            hit = edge.search(text)
            if hit:
                found.append(hit.span())
            elif "*" in text:
                hit = self._masked_word(text)
                if hit:
                    found.append(hit)
        for pattern in self.patterns:
            for hit in pattern.finditer(text):
                if self._digits_ok(hit.group(0)):
                    found.append(hit.span())
                    break
        return min(found) if found else None

    def _masked_word(self, text: str):
        """A word written with "*" for letters ("f*ck") that fits exactly one
        length-equal term."""
        for token in re.finditer(r"[a-z0-9*]+", text):
            word = token.group(0)
            if "*" not in word or word.count("*") * 2 > len(word):
                continue
            shape = re.compile("^" + re.escape(word).replace(r"\*", "[a-z]") + "$")
            if any(shape.match(t) for t in self.terms if len(t) == len(word)):
                return token.span()
        return None

    def find_compact(self, squeezed: str, starts, ends):
        """(start, end) in ``squeezed`` of a spacing-insensitive match that
        begins where a word begins; short single words must also end where a
        word ends ("as signment" is not "ass"), phrases and patterns need not
        ("Iwillkillyoutomorrow"). Words of ``LONG_WORD`` letters or more match
        anywhere ("whatadickhead"): that long, a word list entry hardly ever
        hides inside an innocent word."""
        if not self.compact:
            return None
        if self._compact_terms_re is not None:
            lookahead = re.compile(f"(?=({self._compact_terms_re.pattern}))")
            for hit in lookahead.finditer(squeezed):
                start, end = hit.start(1), hit.end(1)
                word = hit.group(1)
                if len(word) >= LONG_WORD and not self._compact_terms[word]:
                    return start, end
                if not starts[start]:
                    continue
                if self._compact_terms[word] or ends[end - 1]:
                    return start, end
        for pattern in self.compact_patterns:
            for start in (i for i, s in enumerate(starts) if s):
                hit = pattern.match(squeezed, start)
                if hit and hit.end() > start and self._digits_ok(hit.group(0)):
                    return start, hit.end()
        return None


def read_wordlist(path: Path) -> list:
    """Words of a word list file (one per line; ``#`` comments), canonicalised.
    Spelling marks inside list entries ("f.u.c.k", "s-h-i-t") go: the text side
    is canonicalised and compacted instead."""
    try:
        raw = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise PolicyError(f"word list {path} cannot be read: {error}") from None
    words = []
    for entry in raw.splitlines():
        entry = entry.split("#", 1)[0].strip()
        if not entry:
            continue
        word = re.sub(r"[.*_]", "", textnorm.canonical(entry.replace("-", "")))
        if len(word.replace(" ", "")) >= 3:
            words.append(word)
    return words


def normalize(text: str) -> str:
    """The canonical form text rules match against (textnorm.canonical)."""
    return textnorm.canonical(text)


@dataclass(frozen=True)
class Policy:
    nsfw_review: float = 0.5
    nsfw_block: float = 0.85
    detector_block: frozenset = frozenset()
    detector_block_min: float = 0.6
    detector_review: frozenset = frozenset()
    detector_review_min: float = 0.45
    ocr_min_confidence: float = 0.5
    text_rules: tuple = field(default_factory=tuple)
    # The learned text classifier: a score at or above a threshold adds a
    # reason; 1.0 < threshold switches that action off.
    text_review: float = 0.8
    text_block: float = 1.01

    def __post_init__(self):
        for name in ("nsfw_review", "nsfw_block", "detector_block_min",
                     "detector_review_min", "ocr_min_confidence"):
            value = getattr(self, name)
            if not (0.0 <= value <= 1.0):
                raise PolicyError(f"{name} must be within [0, 1], got {value}")
        if self.nsfw_review > self.nsfw_block:
            raise PolicyError("nsfw_review_threshold must not exceed nsfw_block_threshold")
        for name in ("text_review", "text_block"):
            value = getattr(self, name)
            if not (0.0 < value <= 1.01):
                raise PolicyError(f"{name} must be within (0, 1] (or 1.01 for off), got {value}")
        if self.text_review > self.text_block:
            raise PolicyError("text_classifier_review_threshold must not exceed text_classifier_block_threshold")
        overlap = self.detector_block & self.detector_review
        if overlap:
            raise PolicyError(f"classes both block and review: {sorted(overlap)}")

    def thresholds(self) -> dict:
        """The numbers a reason is judged against, for the evidence (a text
        classifier threshold above 1.0 means that action is off: null)."""
        return {
            "nsfw_review": self.nsfw_review,
            "nsfw_block": self.nsfw_block,
            "detector_review_min": self.detector_review_min,
            "detector_block_min": self.detector_block_min,
            "detector_review_classes": sorted(self.detector_review),
            "detector_block_classes": sorted(self.detector_block),
            "ocr_min_confidence": self.ocr_min_confidence,
            "text_classifier_review": self.text_review if self.text_review <= 1.0 else None,
            "text_classifier_block": self.text_block if self.text_block <= 1.0 else None,
        }

    @staticmethod
    def from_parameters(parameters: dict, model_dir: Path) -> "Policy":
        def value(key, default):
            entry = parameters.get(key)
            if entry is None:
                return default
            text = entry.get("string_value", "") if isinstance(entry, dict) else str(entry)
            return text if text != "" else default

        def number(key, default):
            try:
                return float(value(key, default))
            except ValueError:
                raise PolicyError(f"parameter {key} must be a number") from None

        def classes(key):
            return frozenset(c.strip() for c in str(value(key, "")).split(",") if c.strip())

        model_dir = Path(model_dir)
        terms_file = model_dir / str(value("terms_file", "terms.json"))
        # Word lists are named by the parameter that holds their path
        # (relative to the model folder, or absolute: a mounted file).
        wordlists = {
            key: model_dir / str(value(key, ""))
            for key in parameters
            if key.endswith("_wordlist") and str(value(key, "")).strip()
        }
        return Policy(
            nsfw_review=number("nsfw_review_threshold", 0.5),
            nsfw_block=number("nsfw_block_threshold", 0.85),
            detector_block=classes("detector_block_classes"),
            detector_block_min=number("detector_block_min_score", 0.6),
            detector_review=classes("detector_review_classes"),
            detector_review_min=number("detector_review_min_score", 0.45),
            ocr_min_confidence=number("ocr_min_confidence", 0.5),
            text_rules=tuple(TextRule.load(terms_file, wordlists)),
            text_review=number("text_classifier_review_threshold", 0.8),
            text_block=number("text_classifier_block_threshold", 1.01),
        )


@dataclass
class Decision:
    decision: str
    reasons: list
    scores: dict
    text: str
    evidence: dict = field(default_factory=dict)


def _finite_unit(value, what):
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{what} is not a number: {value!r}") from None
    if not math.isfinite(number) or number < 0.0 or number > 1.0:
        raise InputError(f"{what} must be within [0, 1], got {value!r}")
    return number


def parse_detections(payload) -> list:
    items = json.loads(payload) if isinstance(payload, (str, bytes)) else payload
    if not isinstance(items, list):
        raise InputError("DETECTIONS must be a JSON list")
    parsed = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("label"), str):
            raise InputError(f"bad detection: {item!r}")
        parsed.append({**item, "score": _finite_unit(item.get("score"), "detection score")})
    return parsed


def parse_ocr_lines(payload) -> list:
    items = json.loads(payload) if isinstance(payload, (str, bytes)) else payload
    if not isinstance(items, list):
        raise InputError("OCR_LINES must be a JSON list")
    parsed = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("text"), str):
            raise InputError(f"bad OCR line: {item!r}")
        entry = {**item, "confidence": _finite_unit(item.get("confidence"), "OCR confidence")}
        if "line" in entry and (not isinstance(entry["line"], int) or entry["line"] < 0):
            raise InputError(f"bad OCR line index: {item!r}")
        parsed.append(entry)
    return parsed


class TextForms:
    """The OCR text in the forms the rules read (see textnorm): the canonical
    text of all fragments in reading order joined with spaces, each stretched
    variant of it, and each variant's compact form; every character knows the
    fragment it came from, so a match knows its lines and confidence."""

    def __init__(self, ocr_lines: list):
        self.fragments = ocr_lines
        pieces = [textnorm.canonical(line["text"]) for line in ocr_lines]
        self.variants = []
        for reading in textnorm.READINGS:
            texts = [textnorm.reread(p, reading) for p in pieces]
            if reading and texts == self.variants[0][1]:
                continue
            owners, joined = [], []
            for index, text in enumerate(texts):
                if not text:
                    continue
                if joined:
                    joined.append(" ")
                    owners.append(-1)
                joined.append(text)
                owners.extend([index] * len(text))
            text = "".join(joined)
            squeezed, starts, ends = textnorm.compact(text)
            positions = [i for i, c in enumerate(text) if c.isalnum()]
            self.variants.append((text, texts, owners, squeezed, starts, ends, positions))

    @property
    def text(self) -> str:
        return self.variants[0][0] if self.variants else ""

    def find(self, rule: TextRule):
        """The first match of ``rule``: the spaced text first (each variant),
        then the compact form. Returns (span text, form, fragment indices) or None."""
        for text, _, owners, squeezed, starts, ends, positions in self.variants:
            found = rule.find_spaced(text)
            if found:
                return text[found[0]:found[1]], "text", self._owners(owners, *found)
        for text, _, owners, squeezed, starts, ends, positions in self.variants:
            found = rule.find_compact(squeezed, starts, ends)
            if found:
                begin, finish = positions[found[0]], positions[found[1] - 1] + 1
                return text[begin:finish], "compact", self._owners(owners, begin, finish)
        return None

    @staticmethod
    def _owners(owners, start, end):
        return sorted({o for o in owners[start:end] if o >= 0})


def classifier_text(ocr_lines) -> str:
    """What decision_logic sends to the text classifier: the canonical OCR
    text, ASCII words only (textnorm.ascii_words)."""
    return textnorm.ascii_words(TextForms(parse_ocr_lines(ocr_lines)).text)


def parse_ocr_info(payload) -> dict:
    if payload is None or payload in (b"", ""):
        return {}
    info = json.loads(payload) if isinstance(payload, (str, bytes)) else payload
    if not isinstance(info, dict):
        raise InputError("OCR_INFO must be a JSON object")
    return info


# At most this many detector boxes go into the evidence (the best ones): a
# crowded picture must not make the answer large.
MAX_EVIDENCE_DETECTIONS = 50


def _drawable_detections(detections) -> list:
    """Detector boxes for drawing: {label, score, box: [x, y, w, h]} in image pixels, best first."""
    best = sorted(detections, key=lambda item: -item["score"])[:MAX_EVIDENCE_DETECTIONS]
    return [{"label": item["label"], "score": round(item["score"], 6), "box": item["box"]}
            for item in best if _is_box(item.get("box"), 4)]


def _drawable_lines(ocr_lines) -> list:
    """OCR fragments for drawing, in the order ``matches[].fragments`` indexes:
    {text, confidence, line, box: four [x, y] corners in image pixels}."""
    drawable = []
    for index, item in enumerate(ocr_lines):
        box = item.get("box")
        corners = box if isinstance(box, list) and len(box) == 4 and all(_is_box(p, 2) for p in box) else None
        drawable.append({"text": item["text"], "confidence": round(item["confidence"], 6),
                         "line": int(item.get("line", index)), "box": corners})
    return drawable


def _is_box(value, size) -> bool:
    return (isinstance(value, list) and len(value) == size
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value))


def decide(nsfw_probs, detections, ocr_lines, policy: Policy, ocr_info=None, text_score=None) -> Decision:
    """Apply every rule; the decision is the most severe action among the reasons.

    ``ocr_info`` is ocr_engine's OCR_INFO (orientation, crops, cap);
    ``text_score`` the text classifier's offensive probability for
    ``classifier_text(ocr_lines)`` (None when there was no text to score).
    """
    probs = [float(v) for v in list(nsfw_probs)]
    if len(probs) != 2:
        raise InputError(f"NSFW_PROBS must hold [sfw, nsfw], got {len(probs)} values")
    sfw = _finite_unit(probs[0], "sfw probability")
    nsfw = _finite_unit(probs[1], "nsfw probability")
    detections = parse_detections(detections)
    ocr_lines = parse_ocr_lines(ocr_lines)
    info = parse_ocr_info(ocr_info)
    if text_score is not None:
        text_score = _finite_unit(text_score, "text classifier score")

    reasons = []

    def add(action, source, code, detail, score, **extra):
        reasons.append(
            {"action": action, "source": source, "code": code, "detail": detail,
             "score": round(float(score), 6), **extra}
        )

    if nsfw >= policy.nsfw_block:
        add(BLOCK, "classifier", "nsfw", f"nsfw probability {nsfw:.4f} >= block threshold {policy.nsfw_block}", nsfw)
    elif nsfw >= policy.nsfw_review:
        add(REVIEW, "classifier", "nsfw", f"nsfw probability {nsfw:.4f} >= review threshold {policy.nsfw_review}", nsfw)

    best_by_label = {}
    for item in detections:
        label = item["label"]
        best_by_label[label] = max(best_by_label.get(label, 0.0), item["score"])
    for label in sorted(best_by_label):
        score = best_by_label[label]
        if label in policy.detector_block and score >= policy.detector_block_min:
            add(BLOCK, "detector", label.lower(), f"{label} detected with score {score:.4f} >= {policy.detector_block_min}", score)
        elif label in policy.detector_review and score >= policy.detector_review_min:
            add(REVIEW, "detector", label.lower(), f"{label} detected with score {score:.4f} >= {policy.detector_review_min}", score)
        elif label in policy.detector_block and score >= policy.detector_review_min:
            # a blocking class seen with less confidence still deserves a human look
            add(REVIEW, "detector", label.lower(), f"{label} detected with score {score:.4f} (below block minimum {policy.detector_block_min})", score)

    # Text rules over the whole text read as people read it (lines joined in
    # reading order), then spacing-insensitively. A block rule matched in text
    # the recogniser was unsure of (a fragment below ocr_min_confidence) asks
    # for review instead: OCR noise should not block on its own.
    forms = TextForms(ocr_lines)
    matches = []
    for rule in policy.text_rules:
        found = forms.find(rule)
        if found is None:
            continue
        span, form, owners = found
        confidence = min(ocr_lines[i]["confidence"] for i in owners) if owners else 0.0
        action = rule.action
        detail = f"text matches {rule.code} rule: {span!r}"
        if action == BLOCK and confidence < policy.ocr_min_confidence:
            action = REVIEW
            detail += f" (OCR confidence {confidence:.4f} < {policy.ocr_min_confidence}: review, not block)"
        lines = sorted({int(ocr_lines[i].get("line", i)) for i in owners})
        add(action, "ocr", rule.code, detail, confidence, span=span, form=form, lines=lines)
        matches.append({"code": rule.code, "action": action, "span": span, "form": form,
                        "lines": lines, "fragments": owners, "confidence": round(confidence, 6)})

    if text_score is not None:
        if text_score >= policy.text_block:
            add(BLOCK, "text_classifier", "offensive_text",
                f"text classifier score {text_score:.4f} >= block threshold {policy.text_block}", text_score)
        elif text_score >= policy.text_review:
            add(REVIEW, "text_classifier", "offensive_text",
                f"text classifier score {text_score:.4f} >= review threshold {policy.text_review}", text_score)

    if info.get("capped"):
        # Text hidden among many boxes went unread: a human looks at it.
        add(REVIEW, "ocr", "ocr_capped",
            f"{info.get('boxes')} text boxes, only the {info.get('crops')} largest were read", 1.0)

    decision = ALLOW
    for reason in reasons:
        if _SEVERITY[reason["action"]] > _SEVERITY[decision]:
            decision = reason["action"]
    confidences = [line["confidence"] for line in ocr_lines]
    reading_lines = {}
    for index, line in enumerate(ocr_lines):
        reading_lines.setdefault(int(line.get("line", index)), []).append(line["text"])
    scores = {
        "sfw": round(sfw, 6),
        "nsfw": round(nsfw, 6),
        "detections": {label: round(score, 6) for label, score in sorted(best_by_label.items())},
        "ocr_lines": len(reading_lines),
        "ocr_min_confidence": round(min(confidences), 6) if confidences else None,
        "text_classifier": round(text_score, 6) if text_score is not None else None,
    }
    evidence = {
        "matches": matches,
        "thresholds": policy.thresholds(),
        "detections": _drawable_detections(detections),
        "ocr_lines": _drawable_lines(ocr_lines),
        "orientation": int(info.get("orientation", 0) or 0),
        "text_classifier": {
            "score": scores["text_classifier"],
            "review_threshold": policy.text_review,
            "block_threshold": policy.text_block if policy.text_block <= 1.0 else None,
        },
        "ocr": {
            "fragments": len(ocr_lines),
            "lines": len(reading_lines),
            "boxes": info.get("boxes"),
            "crops": info.get("crops"),
            "capped": bool(info.get("capped", False)),
            "crops_turned": info.get("flipped_crops"),
            "orientation_score": info.get("orientation_score"),
        },
    }
    text = "\n".join(" ".join(parts) for _, parts in sorted(reading_lines.items()))
    return Decision(decision, reasons, scores, text, evidence)
