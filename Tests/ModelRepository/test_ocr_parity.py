"""Triton serves the PP-OCR models faithfully: same outputs as ONNX Runtime.

Inputs are real: detector tensors from the reference preprocessing of
rendered text images, recogniser batches of text crops cut by the engine's
own post-processing.
"""

import numpy as np
import onnx
import pytest

from ocr_support import reference, synthetic
from ocr_support.fixtures import (  # noqa: F401  (pytest fixtures)
    DET_INPUT,
    DET_OUTPUT,
    REC_INPUT,
    REC_OUTPUT,
    infer,
    infer_concurrently,
    ocr_client,
    onnx_session,
    ppocr,
)

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def det_session(model_repo):
    return onnx_session(model_repo, "ocr_detector")


@pytest.fixture(scope="module")
def rec_session(model_repo):
    return onnx_session(model_repo, "ocr_recognizer")


def detector_inputs():
    """Three rendered images (different sizes) and one noise tensor."""
    tensors = [reference.ocr_tensors(synthetic.make_sample(i).image)[0] for i in (0, 1, 2)]
    noise = np.random.default_rng(7).uniform(-1, 1, size=(1, 3, 256, 384)).astype(np.float32)
    return tensors + [noise]


@pytest.fixture(scope="module")
def text_crops(det_session):
    """Crops of detected text from two rendered images, in reading order."""
    module = ppocr()
    crops = []
    for index in (3, 4):
        x, image, _ = reference.ocr_tensors(synthetic.make_sample(index).image)
        prob = det_session.run([DET_OUTPUT], {DET_INPUT: x})[0]
        boxes = module.detect_boxes(prob[0, 0], module.DetectionSettings())
        crops += [module.crop_text(image, box) for box in boxes]
    assert len(crops) >= 4, "the sample images should hold several text lines"
    return crops


def test_detector_matches_onnxruntime(ocr_client, det_session):
    for x in detector_inputs():
        expected = det_session.run([DET_OUTPUT], {DET_INPUT: x})[0]
        got = infer(ocr_client, "ocr_detector", {DET_INPUT: x}, [DET_OUTPUT])[DET_OUTPUT]
        assert got.shape == expected.shape == (1, 1) + x.shape[2:]
        diff = float(np.max(np.abs(got - expected)))
        assert diff <= TOLERANCE, f"detector differs by {diff} on input {x.shape}"
        # The map must hold text where there is text: a constant output would
        # also "match" a broken comparison.
        if x.shape[2] > 256:
            assert expected.max() > 0.9


def test_recognizer_matches_onnxruntime(ocr_client, rec_session, text_crops):
    module = ppocr()
    batches = [module.recognition_batch(text_crops), module.recognition_batch(text_crops[:1])]
    for batch in batches:
        expected = rec_session.run([REC_OUTPUT], {REC_INPUT: batch})[0]
        got = infer(ocr_client, "ocr_recognizer", {REC_INPUT: batch}, [REC_OUTPUT])[REC_OUTPUT]
        assert got.shape == expected.shape
        assert got.shape[0] == batch.shape[0] and got.shape[2] == 6625
        diff = float(np.max(np.abs(got - expected)))
        assert diff <= TOLERANCE, f"recogniser differs by {diff} on batch {batch.shape}"


def test_recognizer_dynamic_batching_keeps_requests_apart(
    ocr_client, triton_url, rec_session, text_crops
):
    """Concurrent single-crop requests of equal width (merged by the dynamic
    batcher) each get their own crop's result."""
    batch = ppocr().recognition_batch(text_crops[:8])  # one common padded width
    singles = [batch[i : i + 1] for i in range(batch.shape[0])]

    results = [
        out[REC_OUTPUT]
        for out in infer_concurrently(
            triton_url, "ocr_recognizer", [{REC_INPUT: b} for b in singles], [REC_OUTPUT],
            concurrency=len(singles),
        )
    ]
    texts = set()
    for batch, got in zip(singles, results):
        expected = rec_session.run([REC_OUTPUT], {REC_INPUT: batch})[0]
        diff = float(np.max(np.abs(got - expected)))
        assert diff <= TOLERANCE, f"batched request differs by {diff}"
        texts.add(int(got.argmax(axis=2).sum()))
    assert len(texts) > 1, "different crops must give different outputs"


def test_character_list_is_the_models(model_repo):
    """ocr_engine's characters.txt is the recogniser's own `character` metadata,
    and with blank and space it covers the model's output classes."""
    path = model_repo / "ocr_recognizer" / "1" / "model.onnx"
    if not path.is_file():
        pytest.fail(f"{path} is missing: run scripts/fetch-models", pytrace=False)
    model = onnx.load(str(path), load_external_data=False)
    metadata = {p.key: p.value for p in model.metadata_props}
    expected = metadata["character"].splitlines()  # how rapidocr 1.4.4 reads it
    module = ppocr()
    characters = module.load_characters(
        str(model_repo / "ocr_engine" / "1" / "characters.txt")
    )
    assert characters == expected
    classes = model.graph.output[0].type.tensor_type.shape.dim[-1].dim_value
    assert module.CTCDecoder(characters).num_classes == classes == 6625
