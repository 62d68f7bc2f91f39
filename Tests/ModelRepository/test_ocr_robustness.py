"""``ocr_engine`` answers odd images with valid JSON and bad tensors with a
clear error, and keeps serving afterwards."""

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont
from tritonclient.utils import InferenceServerException

from ocr_support import reference, synthetic
from ocr_support.fixtures import (  # noqa: F401  (pytest fixtures)
    infer,
    ocr_client,
    read_text,
)


def _read_image(client, image):
    return read_text(client, *reference.ocr_tensors(image))


def test_image_without_text_gives_no_lines(ocr_client):
    image = Image.new("RGB", (640, 480), (236, 240, 232))
    assert _read_image(ocr_client, image) == []


def test_huge_blank_image_gives_no_lines(ocr_client):
    # 6000 x 4500 is cut to at most 2000 on the long side by the reference
    # preprocessing, as rapidocr does.
    image = Image.new("RGB", (6000, 4500), (255, 255, 255))
    ocr_input, _, _ = reference.ocr_tensors(image)
    assert max(ocr_input.shape[2:]) <= 2016
    assert _read_image(ocr_client, image) == []


def test_tiny_image_gives_valid_answer(ocr_client):
    image = Image.new("RGB", (6, 4), (250, 250, 250))
    image.putpixel((2, 2), (0, 0, 0))
    lines = _read_image(ocr_client, image)
    assert isinstance(lines, list)
    for line in lines:
        assert np.asarray(line["box"]).max() <= 6


def test_flat_banner_is_bounded_and_still_read(ocr_client):
    """An 800 x 100 banner becomes a 736 x 5888 detector input (4.3 Mpx) under
    the contract's preprocessing, above the engine's 4 Mpx bound: the engine
    shrinks it and still reads it, with boxes in the banner's pixels."""
    image = Image.new("RGB", (800, 100), (255, 255, 240))
    font = ImageFont.truetype(f"{synthetic.FONT_DIR}/dejavu/DejaVuSans.ttf", 44)
    ImageDraw.Draw(image).text((30, 22), "summer market opens", font=font, fill=(10, 10, 10))
    ocr_input, _, _ = reference.ocr_tensors(image)
    assert ocr_input.shape[2] * ocr_input.shape[3] > 2048 * 2048
    lines = _read_image(ocr_client, image)
    assert " ".join(line["text"] for line in lines) == "summer market opens"
    corners = np.concatenate([np.asarray(line["box"]) for line in lines])
    assert corners[:, 0].min() >= 0 and corners[:, 0].max() <= 800
    assert corners[:, 1].min() >= 0 and corners[:, 1].max() <= 100
    # Where the text is: from x=30, y=22 to about x=520, y=70.
    assert corners[:, 0].min() < 40 and 480 < corners[:, 0].max() < 600
    assert corners[:, 1].min() < 35 and corners[:, 1].max() > 60


def test_ragged_sizes_are_padded_not_fatal(ocr_client):
    """Sides that are not multiples of 32 (not produced by the contract's
    preprocessing, but possible from other callers) still work."""
    sample = synthetic.make_sample(5)
    bgr = reference.to_bgr(sample.image)[:301, :455]
    scale = np.array([1.0, 1.0], dtype=np.float32)
    lines = read_text(ocr_client, reference.normalise(bgr), np.ascontiguousarray(bgr), scale)
    assert lines, "text in the cropped sample should still be found"


@pytest.mark.parametrize(
    "case",
    ["size_mismatch", "negative_scale", "two_channels"],
)
def test_malformed_tensors_are_refused_clearly(ocr_client, case):
    ocr_input, ocr_image, scale = reference.ocr_tensors(synthetic.make_sample(6).image)
    if case == "size_mismatch":
        ocr_image = np.ascontiguousarray(ocr_image[:-32])
    elif case == "negative_scale":
        scale = np.array([-1.0, 1.0], dtype=np.float32)
    else:
        ocr_image = np.ascontiguousarray(ocr_image[:, :, :2])
    inputs = {"OCR_INPUT": ocr_input, "OCR_IMAGE": ocr_image, "OCR_SCALE": scale}
    with pytest.raises(InferenceServerException) as raised:
        infer(ocr_client, "ocr_engine", inputs, ["OCR_LINES"])
    message = str(raised.value)
    # Triton itself rejects a shape the config forbids; the engine rejects
    # the rest with its own prefix.
    assert "invalid_ocr_input:" in message or "unexpected shape" in message, message
    assert ocr_client.is_server_live()
    assert ocr_client.is_model_ready("ocr_engine")
    # And it still reads text afterwards.
    sample = synthetic.make_sample(0)
    rows = [line["text"] for line in _read_image(ocr_client, sample.image)]
    assert " ".join(rows) == " ".join(sample.lines)
