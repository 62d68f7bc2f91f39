"""End to end through the `moderation` ensemble (and its INT8 twin): safe photos
are allowed, rendered text with listed terms is reviewed or blocked for the
right reason, every refusal carries its documented prefix, and Triton stays
healthy afterwards."""

import json
import time

import pytest
from PIL import Image

from conftest import encode, infer_image
from moderation_images import render
from test_preprocess import REFUSALS

OUTPUTS = ["DECISION", "REASONS", "SCORES", "TEXT", "EVIDENCE"]


def moderate(client, data, model="moderation"):
    result = infer_image(client, model, data, OUTPUTS)
    decision = result.as_numpy("DECISION")[0].decode()
    reasons = json.loads(result.as_numpy("REASONS")[0])
    scores = json.loads(result.as_numpy("SCORES")[0])
    text = result.as_numpy("TEXT")[0].decode()
    return decision, reasons, scores, text


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea", "rocket"])
def test_safe_photos_are_allowed(triton_client, sample_images, name):
    decision, reasons, scores, _ = moderate(triton_client, encode(sample_images[name], "JPEG", quality=90))
    assert decision == "allow", reasons
    assert reasons == []
    assert 0.0 <= scores["nsfw"] < 0.5 and scores["sfw"] == pytest.approx(1 - scores["nsfw"], abs=1e-4)


@pytest.mark.parametrize(
    "lines, decision, code",
    [
        (["you are a fucking idiot"], "review", "profanity"),
        (["I will kill you"], "block", "threat"),
        (["visit www.example.com today"], "review", "url"),
        (["call +1 555 123 4567"], "review", "phone_number"),
        (["have a nice day"], "allow", None),
    ],
)
def test_rendered_text_is_moderated(triton_client, lines, decision, code):
    got, reasons, scores, text = moderate(triton_client, encode(render(lines), "PNG"))
    assert got == decision, (reasons, text)
    assert [r["code"] for r in reasons if r["source"] == "ocr"][:1] == ([code] if code else [])
    assert scores["ocr_lines"] >= 1
    assert text.strip(), "the recognised text is returned"


@pytest.mark.parametrize("turn", [None, Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180, Image.Transpose.ROTATE_270])
def test_rotated_text_is_read_upright_and_the_evidence_says_so(triton_client, turn):
    image = render(["I will kill you tomorrow"])
    if turn is not None:
        image = image.transpose(turn)
    result = infer_image(triton_client, "moderation", encode(image, "PNG"), OUTPUTS)
    assert result.as_numpy("DECISION")[0] == b"block", result.as_numpy("TEXT")[0]
    evidence = json.loads(result.as_numpy("EVIDENCE")[0])
    # PIL's ROTATE_90 turns counter-clockwise: the content is then 270 degrees clockwise.
    expected = {None: 0, Image.Transpose.ROTATE_90: 270, Image.Transpose.ROTATE_180: 180, Image.Transpose.ROTATE_270: 90}
    assert evidence["orientation"] == expected[turn]
    (match,) = [m for m in evidence["matches"] if m["code"] == "threat"]
    assert "kill you" in match["span"]
    assert evidence["text_classifier"]["score"] is not None


def test_int8_pipeline_gives_the_same_decisions(triton_client, sample_images):
    for data, expected in [
        (encode(sample_images["astronaut"], "JPEG", quality=90), "allow"),
        (encode(render(["I will kill you"]), "PNG"), "block"),
    ]:
        decision, reasons, scores, _ = moderate(triton_client, data, "moderation_int8")
        assert decision == expected, reasons


def test_repeated_image_is_served_from_the_response_cache(triton_client, sample_images):
    data = encode(sample_images["rocket"], "PNG")
    first = moderate(triton_client, data)
    second = moderate(triton_client, data)
    assert first == second
    # Statistics are updated as a request is released, possibly after its answer: poll (bounded).
    deadline = time.monotonic() + 60
    while True:
        stats = triton_client.get_inference_statistics("moderation")["model_stats"][0]["inference_stats"]
        if int(stats["cache_hit"]["count"]) >= 1 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert int(stats["cache_hit"]["count"]) >= 1


@pytest.mark.parametrize("name, make, prefix", REFUSALS, ids=[r[0] for r in REFUSALS])
@pytest.mark.parametrize("model", ["moderation", "moderation_int8"])
def test_refusals_carry_the_prefix_and_triton_stays_healthy(triton_client, sample_images, model, name, make, prefix):
    from tritonclient.utils import InferenceServerException

    with pytest.raises(InferenceServerException) as caught:
        moderate(triton_client, make(sample_images), model)
    message = caught.value.message()
    # Triton wraps a step's error as "in ensemble '<name>', <message>".
    assert f"in ensemble '{model}', {prefix}" in message, message
    assert triton_client.is_server_live() and triton_client.is_server_ready()
    assert triton_client.is_model_ready(model)


def test_still_serving_after_refusals(triton_client, sample_images):
    decision, _, _, _ = moderate(triton_client, encode(sample_images["chelsea"], "PNG"))
    assert decision == "allow"


def test_python_models_publish_custom_metrics(triton_url, triton_client, sample_images):
    """Decisions, reasons, OCR counts, orientation, text-classifier scores and
    refusals by prefix on Triton's /metrics (scripts/test runs the metrics
    port at the HTTP port + 2; TRITON_MODERATION_METRICS_URL overrides)."""
    import os
    import urllib.request

    moderate(triton_client, encode(render(["you are a fucking idiot"]), "PNG"))
    with pytest.raises(Exception):
        moderate(triton_client, b"not an image")
    host, port = triton_url.rsplit(":", 1)
    url = os.environ.get("TRITON_MODERATION_METRICS_URL") or f"{host}:{int(port) + 2}/metrics"
    text = urllib.request.urlopen(url, timeout=30).read().decode()
    for family in ("moderation_decisions_total", "moderation_reasons_total", "moderation_ocr_crops_total",
                   "moderation_ocr_lines_total", "moderation_ocr_orientation_total",
                   "moderation_refusals_total", "moderation_text_classifier_score"):
        assert family in text, family
    assert 'moderation_refusals_total{prefix="unsupported_format"}' in text
    assert 'code="profanity"' in text


def test_evidence_boxes_lie_on_the_text_in_image_pixels(triton_client):
    # Two lines on a wide page: the threat's fragments lie in the lower half, and
    # every box is inside the image (pixels of the image as sent, not of a resized copy).
    image = render(["have a nice day", "I will kill you"], width=1200)
    result = infer_image(triton_client, "moderation", encode(image, "PNG"), OUTPUTS)
    assert result.as_numpy("DECISION")[0] == b"block"
    evidence = json.loads(result.as_numpy("EVIDENCE")[0])
    lines = evidence["ocr_lines"]
    assert lines and all(f["box"] is not None for f in lines)
    for fragment in lines:
        for x, y in fragment["box"]:
            assert 0 <= x <= image.width and 0 <= y <= image.height
    (match,) = [m for m in evidence["matches"] if m["code"] == "threat"]
    threat_ys = [y for i in match["fragments"] for _, y in lines[i]["box"]]
    assert min(threat_ys) > image.height / 2 - 20, (match, lines)
    assert "kill" in " ".join(lines[i]["text"].lower() for i in match["fragments"])
    assert evidence["thresholds"]["nsfw_block"] >= evidence["thresholds"]["nsfw_review"]
    assert isinstance(evidence["detections"], list)
