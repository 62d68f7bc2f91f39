"""Table tests of the decision rules (decision_logic/1/rules.py), without Triton,
plus one call through Triton to prove the served model reads the same policy."""

import json

import numpy as np
import pytest

from conftest import MODEL_REPO, infer_tensors


@pytest.fixture(scope="module")
def policy(rules):
    """The policy exactly as the committed config.pbtxt and terms.json define it."""

    params = {}
    text = (MODEL_REPO / "decision_logic" / "config.pbtxt").read_text()
    import re

    for key, value in re.findall(r'key:\s*"([^"]+)",\s*value:\s*\{\s*string_value:\s*"([^"]*)"', text):
        params[key] = {"string_value": value}
    assert "nsfw_block_threshold" in params, "could not read decision_logic parameters"
    return rules.Policy.from_parameters(params, MODEL_REPO / "decision_logic")


def line(text, confidence=0.99):
    return {"text": text, "confidence": confidence, "box": [[0, 0], [1, 0], [1, 1], [0, 1]]}


def det(label, score):
    return {"label": label, "score": score, "box": [1, 2, 3, 4]}


def run(rules, policy, nsfw=0.01, detections=(), lines=()):
    return rules.decide([1.0 - nsfw, nsfw], json.dumps(list(detections)), json.dumps(list(lines)), policy)


def test_committed_policy_values(policy):
    assert policy.nsfw_review == 0.5 and policy.nsfw_block == 0.85
    assert "FEMALE_GENITALIA_EXPOSED" in policy.detector_block
    assert "FEMALE_BREAST_COVERED" in policy.detector_review
    assert {r.code for r in policy.text_rules} == {"profanity", "threat", "url", "phone_number"}
    profanity = next(r for r in policy.text_rules if r.code == "profanity")
    # the word list fetched from better-profanity, minus the documented exclusions
    assert len(profanity.terms) > 500 and "kill" not in profanity.terms and "fuck" in profanity.terms


@pytest.mark.parametrize(
    "nsfw, decision",
    [
        (0.0, "allow"),
        (0.4999, "allow"),
        (0.5, "review"),  # boundary: threshold is inclusive
        (0.8499, "review"),
        (0.85, "block"),  # boundary
        (1.0, "block"),
    ],
)
def test_nsfw_thresholds(rules, policy, nsfw, decision):
    result = run(rules, policy, nsfw=nsfw)
    assert result.decision == decision
    if decision != "allow":
        (reason,) = result.reasons
        assert (reason["source"], reason["code"]) == ("classifier", "nsfw")
        assert reason["score"] == pytest.approx(nsfw)
    assert result.scores["nsfw"] == pytest.approx(nsfw)


@pytest.mark.parametrize(
    "label, score, decision",
    [
        ("FEMALE_GENITALIA_EXPOSED", 0.6, "block"),  # block boundary (inclusive)
        ("FEMALE_GENITALIA_EXPOSED", 0.5999, "review"),  # block class below block min, above review min
        ("FEMALE_GENITALIA_EXPOSED", 0.45, "review"),
        ("FEMALE_GENITALIA_EXPOSED", 0.4499, "allow"),
        ("MALE_GENITALIA_EXPOSED", 0.9, "block"),
        ("ANUS_EXPOSED", 0.7, "block"),
        ("FEMALE_BREAST_EXPOSED", 0.61, "block"),
        ("BUTTOCKS_EXPOSED", 0.6, "block"),
        ("FEMALE_BREAST_COVERED", 0.45, "review"),  # review boundary (inclusive)
        ("FEMALE_BREAST_COVERED", 0.4499, "allow"),
        ("BUTTOCKS_COVERED", 0.99, "review"),  # review classes never block
        ("FACE_FEMALE", 0.99, "allow"),  # unlisted classes never count
        ("MALE_BREAST_EXPOSED", 0.99, "allow"),
        ("FEET_EXPOSED", 0.99, "allow"),
    ],
)
def test_detector_rules(rules, policy, label, score, decision):
    result = run(rules, policy, detections=[det(label, score)])
    assert result.decision == decision
    if decision == "allow":
        assert result.reasons == []
    else:
        (reason,) = result.reasons
        assert reason["source"] == "detector" and reason["code"] == label.lower()
        assert reason["score"] == pytest.approx(score)
    assert result.scores["detections"][label] == pytest.approx(score)


def test_detector_uses_best_score_per_label(rules, policy):
    result = run(rules, policy, detections=[det("ANUS_EXPOSED", 0.3), det("ANUS_EXPOSED", 0.8)])
    assert result.decision == "block"
    assert len(result.reasons) == 1 and result.reasons[0]["score"] == pytest.approx(0.8)


@pytest.mark.parametrize(
    "text, decision, code",
    [
        ("hello world", "allow", None),
        ("you are a SHITHEAD", "review", "profanity"),  # case-insensitive
        ("ｓｈｉｔｈｅａｄ", "review", "profanity"),  # NFKC folds full-width letters
        ("a classic assignment in Scunthorpe", "allow", None),  # whole words only
        ("I will kill you", "block", "threat"),
        ("I’ll k1ll y0u", "block", "threat"),  # curly apostrophe, leetspeak
        ("Ι wіll kіll уоu", "block", "threat"),  # Greek and Cyrillic look-alikes
        ("I wiiiill kiiiill you", "block", "threat"),  # stretched letters
        ("Iwillkillyoutomorrow", "block", "threat"),  # joined words: compact form
        ("I will k i l l you", "block", "threat"),  # letter-spaced
        ("this exam will kill me", "allow", None),
        ("I'll shoot you an email", "allow", None),
        ("I will kill you with kindness", "allow", None),
        ("I will never hurt you", "allow", None),
        ("smoking will kill you", "allow", None),
        ("skill yourself up", "allow", None),  # compact "killyourself" starts inside a word
        ("as signment", "allow", None),  # compact "ass" must end where a word ends
        ("magna cum laude", "allow", None),  # excluded from the word list
        ("im gonna hurt them", "block", "threat"),
        ("kill yourself", "block", "threat"),
        ("the killer whale", "allow", None),
        ("see https://example.org/x", "review", "url"),
        ("go to www.example.com", "review", "url"),
        ("shop at cheap-pills.xyz", "review", "url"),
        ("version 2.5 released", "allow", None),
        ("call +1 555 123 4567", "review", "phone_number"),
        ("tel (030) 1234-5678", "review", "phone_number"),
        ("order 1234-5678", "allow", None),  # 8 digits: below min_digits 9
        ("in 2024 we had 12 cats", "allow", None),
    ],
)
def test_text_rules(rules, policy, text, decision, code):
    result = run(rules, policy, lines=[line(text)])
    assert result.decision == decision, result.reasons
    if code is None:
        assert result.reasons == []
    else:
        assert [r["code"] for r in result.reasons] == [code]
        assert result.reasons[0]["source"] == "ocr"
    assert result.text == text


def test_ocr_confidence_boundary(rules, policy):
    bound = policy.ocr_min_confidence
    assert run(rules, policy, lines=[line("I will kill you", bound)]).decision == "block"  # inclusive
    low = run(rules, policy, lines=[line("I will kill you", bound - 0.0001)])
    assert low.decision == "review"  # unsure text asks a human instead of blocking
    assert "review, not block" in low.reasons[0]["detail"]
    assert low.text == "I will kill you"


def test_lines_are_joined_in_reading_order_and_the_span_is_evidence(rules, policy):
    fragments = [dict(line("I will kill"), line=0), dict(line("you tomorrow", 0.9), line=0), dict(line("bye"), line=1)]
    result = run(rules, policy, lines=fragments)
    assert result.decision == "block"
    (match,) = result.evidence["matches"]
    assert match == {"code": "threat", "action": "block", "span": "i will kill you", "form": "text",
                     "lines": [0], "fragments": [0, 1], "confidence": 0.9}
    assert result.text == "I will kill you tomorrow\nbye" and result.scores["ocr_lines"] == 2


def test_evidence_carries_boxes_in_image_pixels_and_the_thresholds(rules, policy):
    fragments = [dict(line("hello there"), line=0), dict(line("I will kill you"), line=1)]
    fragments[1]["box"] = [[10, 200], [400, 200], [400, 250], [10, 250]]
    detections = [det("FACE_FEMALE", 0.3), dict(det("FEMALE_GENITALIA_EXPOSED", 0.9), box=[40, 50, 60, 70])]
    result = run(rules, policy, detections=detections, lines=fragments)
    evidence = result.evidence
    # Best detection first, boxes as the detector gave them (x, y, width, height).
    assert evidence["detections"] == [
        {"label": "FEMALE_GENITALIA_EXPOSED", "score": 0.9, "box": [40, 50, 60, 70]},
        {"label": "FACE_FEMALE", "score": 0.3, "box": [1, 2, 3, 4]},
    ]
    assert [f["text"] for f in evidence["ocr_lines"]] == ["hello there", "I will kill you"]
    assert evidence["ocr_lines"][1] == {"text": "I will kill you", "confidence": 0.99, "line": 1,
                                        "box": [[10, 200], [400, 200], [400, 250], [10, 250]]}
    (match,) = evidence["matches"]
    # The fragment the span was read from, as an index into ocr_lines: what a viewer highlights.
    assert match["fragments"] == [1] and evidence["ocr_lines"][match["fragments"][0]]["text"] == "I will kill you"
    thresholds = evidence["thresholds"]
    assert thresholds["nsfw_review"] == policy.nsfw_review and thresholds["nsfw_block"] == policy.nsfw_block
    assert thresholds["detector_block_min"] == policy.detector_block_min
    assert "FEMALE_GENITALIA_EXPOSED" in thresholds["detector_block_classes"]
    assert thresholds["text_classifier_review"] == policy.text_review
    assert thresholds["text_classifier_block"] is None  # 1.01 in the config: blocking by the classifier is off
    json.dumps(evidence, allow_nan=False)  # what the gateway passes on must be plain JSON


def test_evidence_keeps_the_best_detections_and_drops_malformed_boxes(rules, policy):
    many = [det("FACE_MALE", round(0.2 + i / 1000, 4)) for i in range(rules.MAX_EVIDENCE_DETECTIONS + 20)]
    evidence = run(rules, policy, detections=many).evidence
    assert len(evidence["detections"]) == rules.MAX_EVIDENCE_DETECTIONS
    assert evidence["detections"][0]["score"] == max(d["score"] for d in many)
    bad = run(rules, policy, detections=[dict(det("FACE_MALE", 0.5), box=[1, 2])],
              lines=[dict(line("hi"), box="nope")]).evidence
    assert bad["detections"] == [] and bad["ocr_lines"][0]["box"] is None


def test_text_classifier_score_and_ocr_cap(rules, policy):
    result = rules.decide([0.99, 0.01], "[]", json.dumps([line("whatever")]), policy,
                          ocr_info=json.dumps({"orientation": 90, "boxes": 300, "crops": 64, "capped": True}),
                          text_score=policy.text_review)
    assert result.decision == "review"
    assert {(r["source"], r["code"]) for r in result.reasons} == {("text_classifier", "offensive_text"), ("ocr", "ocr_capped")}
    assert result.evidence["orientation"] == 90 and result.evidence["ocr"]["capped"] is True
    assert result.evidence["text_classifier"]["score"] == policy.text_review
    below = rules.decide([0.99, 0.01], "[]", json.dumps([line("whatever")]), policy, text_score=policy.text_review - 0.01)
    assert below.decision == "allow" and below.scores["text_classifier"] == pytest.approx(policy.text_review - 0.01)


def test_wordlist_path_is_configurable(rules, tmp_path):
    words = tmp_path / "words.txt"
    words.write_text("# our own list\nzorblax\n")
    params = {"profanity_wordlist": {"string_value": str(words)}}
    policy = rules.Policy.from_parameters(params, MODEL_REPO / "decision_logic")
    assert run(rules, policy, lines=[line("you zorblax")]).decision == "review"
    missing = {"profanity_wordlist": {"string_value": str(tmp_path / "absent.txt")}}
    with pytest.raises(rules.PolicyError, match="cannot be read"):
        rules.Policy.from_parameters(missing, MODEL_REPO / "decision_logic")


def test_most_severe_reason_wins_and_all_reasons_are_listed(rules, policy):
    result = run(
        rules,
        policy,
        nsfw=0.6,
        detections=[det("FEMALE_BREAST_COVERED", 0.5)],
        lines=[line("www.example.com"), line("i will kill you")],
    )
    assert result.decision == "block"
    assert sorted((r["source"], r["code"]) for r in result.reasons) == [
        ("classifier", "nsfw"),
        ("detector", "female_breast_covered"),
        ("ocr", "threat"),
        ("ocr", "url"),
    ]
    assert result.text == "www.example.com\ni will kill you"
    assert result.scores["ocr_lines"] == 2


@pytest.mark.parametrize(
    "probs, detections, lines",
    [
        ([0.5], "[]", "[]"),  # wrong length
        ([float("nan"), 0.5], "[]", "[]"),
        ([0.5, 1.5], "[]", "[]"),
        ([0.9, 0.1], "{not json", "[]"),
        ([0.9, 0.1], '{"label": "x"}', "[]"),  # not a list
        ([0.9, 0.1], '[{"label": "FACE_MALE", "score": "high"}]', "[]"),
        ([0.9, 0.1], "[]", '[{"confidence": 0.9}]'),  # no text
    ],
)
def test_malformed_branch_outputs_are_errors(rules, policy, probs, detections, lines):
    with pytest.raises(ValueError):
        rules.decide(probs, detections, lines, policy)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"nsfw_review_threshold": {"string_value": "0.9"}, "nsfw_block_threshold": {"string_value": "0.8"}}, "exceed"),
        ({"nsfw_block_threshold": {"string_value": "1.5"}}, "within"),
        ({"nsfw_block_threshold": {"string_value": "high"}}, "number"),
        ({"detector_block_classes": {"string_value": "A"}, "detector_review_classes": {"string_value": "A"}}, "both"),
        ({"text_classifier_review_threshold": {"string_value": "0.9"},
          "text_classifier_block_threshold": {"string_value": "0.8"}}, "exceed"),
    ],
)
def test_bad_policy_is_refused(rules, params, message):
    with pytest.raises(rules.PolicyError, match=message):
        rules.Policy.from_parameters(params, MODEL_REPO / "decision_logic")


def test_served_decision_logic_applies_the_same_rules(triton_client):
    out = infer_tensors(
        triton_client,
        "decision_logic",  # OCR_INFO is optional
        {
            "NSFW_PROBS": np.array([[0.4, 0.6]], dtype=np.float32),
            "DETECTIONS": np.array([json.dumps([det("FACE_FEMALE", 0.9)]).encode()], dtype=np.object_),
            "OCR_LINES": np.array([json.dumps([line("call +1 555 123 4567")]).encode()], dtype=np.object_),
        },
        ["DECISION", "REASONS", "SCORES", "TEXT", "EVIDENCE"],
    )
    assert out["DECISION"][0] == b"review"
    evidence = json.loads(out["EVIDENCE"][0])
    assert evidence["matches"][0]["span"] == "+1 555 123 4567"
    # the served model called text_classifier (BLS) on the text
    assert 0.0 <= evidence["text_classifier"]["score"] < 0.5
    reasons = json.loads(out["REASONS"][0])
    assert {(r["source"], r["code"]) for r in reasons} == {("classifier", "nsfw"), ("ocr", "phone_number")}
    for reason in reasons:
        assert set(reason) >= {"source", "code", "detail", "score"}
    scores = json.loads(out["SCORES"][0])
    assert scores["nsfw"] == pytest.approx(0.6, abs=1e-6)
    assert out["TEXT"][0] == b"call +1 555 123 4567"
