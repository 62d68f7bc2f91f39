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
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

ALLOW, REVIEW, BLOCK = "allow", "review", "block"
_SEVERITY = {ALLOW: 0, REVIEW: 1, BLOCK: 2}


class PolicyError(ValueError):
    """A configuration the rule engine refuses (bad threshold, unknown action...)."""


class InputError(ValueError):
    """A branch output the rule engine cannot read."""


@dataclass(frozen=True)
class TextRule:
    code: str
    action: str
    terms: tuple[str, ...] = ()
    patterns: tuple[re.Pattern, ...] = ()
    min_digits: int = 0

    @staticmethod
    def load(path: Path) -> list["TextRule"]:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        rules = []
        for entry in data.get("rules", []):
            action = entry.get("action")
            if action not in (REVIEW, BLOCK):
                raise PolicyError(f"terms rule {entry.get('code')!r}: action must be review or block")
            try:
                patterns = tuple(re.compile(p, re.IGNORECASE) for p in entry.get("patterns", []))
            except re.error as error:
                raise PolicyError(f"terms rule {entry.get('code')!r}: bad pattern: {error}") from None
            rules.append(
                TextRule(
                    code=str(entry["code"]),
                    action=action,
                    terms=tuple(normalize(t) for t in entry.get("terms", [])),
                    patterns=patterns,
                    min_digits=int(entry.get("min_digits", 0)),
                )
            )
        return rules

    def match(self, text: str) -> str | None:
        """The first matching term or pattern match in ``text`` (normalised), or None."""
        for term in self.terms:
            if re.search(r"(?<!\w)" + re.escape(term) + r"(?!\w)", text):
                return term
        for pattern in self.patterns:
            for found in pattern.finditer(text):
                value = found.group(0)
                if self.min_digits and sum(c.isdigit() for c in value) < self.min_digits:
                    continue
                return value
        return None


def normalize(text: str) -> str:
    """NFKC, case-folded, whitespace collapsed: what term rules match against."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


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

    def __post_init__(self):
        for name in ("nsfw_review", "nsfw_block", "detector_block_min",
                     "detector_review_min", "ocr_min_confidence"):
            value = getattr(self, name)
            if not (0.0 <= value <= 1.0):
                raise PolicyError(f"{name} must be within [0, 1], got {value}")
        if self.nsfw_review > self.nsfw_block:
            raise PolicyError("nsfw_review_threshold must not exceed nsfw_block_threshold")
        overlap = self.detector_block & self.detector_review
        if overlap:
            raise PolicyError(f"classes both block and review: {sorted(overlap)}")

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

        terms_file = Path(model_dir) / str(value("terms_file", "terms.json"))
        return Policy(
            nsfw_review=number("nsfw_review_threshold", 0.5),
            nsfw_block=number("nsfw_block_threshold", 0.85),
            detector_block=classes("detector_block_classes"),
            detector_block_min=number("detector_block_min_score", 0.6),
            detector_review=classes("detector_review_classes"),
            detector_review_min=number("detector_review_min_score", 0.45),
            ocr_min_confidence=number("ocr_min_confidence", 0.5),
            text_rules=tuple(TextRule.load(terms_file)),
        )


@dataclass
class Decision:
    decision: str
    reasons: list
    scores: dict
    text: str


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
        parsed.append({**item, "confidence": _finite_unit(item.get("confidence"), "OCR confidence")})
    return parsed


def decide(nsfw_probs, detections, ocr_lines, policy: Policy) -> Decision:
    """Apply every rule; the decision is the most severe action among the reasons."""
    probs = [float(v) for v in list(nsfw_probs)]
    if len(probs) != 2:
        raise InputError(f"NSFW_PROBS must hold [sfw, nsfw], got {len(probs)} values")
    sfw = _finite_unit(probs[0], "sfw probability")
    nsfw = _finite_unit(probs[1], "nsfw probability")
    detections = parse_detections(detections)
    ocr_lines = parse_ocr_lines(ocr_lines)

    reasons = []

    def add(action, source, code, detail, score):
        reasons.append(
            {"action": action, "source": source, "code": code, "detail": detail,
             "score": round(float(score), 6)}
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

    readable = [line for line in ocr_lines if line["confidence"] >= policy.ocr_min_confidence]
    for rule in policy.text_rules:
        for line in readable:
            found = rule.match(normalize(line["text"]))
            if found is not None:
                add(rule.action, "ocr", rule.code, f"text matches {rule.code} rule: {found!r}", line["confidence"])
                break

    decision = ALLOW
    for reason in reasons:
        if _SEVERITY[reason["action"]] > _SEVERITY[decision]:
            decision = reason["action"]
    confidences = [line["confidence"] for line in ocr_lines]
    scores = {
        "sfw": round(sfw, 6),
        "nsfw": round(nsfw, 6),
        "detections": {label: round(score, 6) for label, score in sorted(best_by_label.items())},
        "ocr_lines": len(ocr_lines),
        "ocr_min_confidence": round(min(confidences), 6) if confidences else None,
    }
    text = "\n".join(line["text"] for line in ocr_lines)
    return Decision(decision, reasons, scores, text)
