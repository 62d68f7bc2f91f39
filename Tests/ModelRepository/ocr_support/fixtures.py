"""Fixtures and helpers shared by the OCR tests (test_ocr_*.py).

``triton_url`` and ``model_repo`` come from the directory's conftest.py.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[3]
MODEL_REPO = ROOT / "triton-model-repo"
ENGINE_DIR = MODEL_REPO / "ocr_engine" / "1"

DET_INPUT, DET_OUTPUT = "x", "sigmoid_0.tmp_0"
REC_INPUT, REC_OUTPUT = "x", "softmax_11.tmp_0"


@pytest.fixture(scope="session")
def ocr_client(triton_url):
    """HTTP client to the Triton under test; fails unless the OCR models are ready."""
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(
        triton_url.split("://", 1)[-1], network_timeout=300.0, connection_timeout=30.0
    )
    for model in ("ocr_detector", "ocr_recognizer", "ocr_engine"):
        if not client.is_model_ready(model):
            pytest.fail(f"model {model} is not ready on {triton_url}", pytrace=False)
    return client


def ppocr():
    """The engine's own post-processing module (triton-model-repo/ocr_engine/1/ppocr.py)."""
    if str(ENGINE_DIR) not in sys.path:
        sys.path.insert(0, str(ENGINE_DIR))
    import ppocr as module

    return module


def onnx_session(model_repo, model):
    """ONNX Runtime session on a model's version-1 weights, as the shim runs them."""
    import onnxruntime as ort

    path = model_repo / model / "1" / "model.onnx"
    if not path.is_file():
        pytest.fail(f"{path} is missing: run scripts/fetch-models", pytrace=False)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _request(inputs, outputs):
    import tritonclient.http as httpclient
    from tritonclient.utils import np_to_triton_dtype

    tensors = []
    for name, array in inputs.items():
        tensor = httpclient.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
        tensor.set_data_from_numpy(array, binary_data=True)
        tensors.append(tensor)
    requested = [httpclient.InferRequestedOutput(n, binary_data=True) for n in outputs]
    return tensors, requested


def infer(client, model, inputs, outputs):
    """Run ``model`` on {name: array}; return {output name: array}."""
    tensors, requested = _request(inputs, outputs)
    result = client.infer(model, tensors, outputs=requested)
    return {n: result.as_numpy(n) for n in outputs}


def infer_concurrently(triton_url, model, many_inputs, outputs, concurrency):
    """Send all requests with up to ``concurrency`` in flight; results in order.

    Uses the HTTP client's own async API (one client, ``concurrency``
    connections): tritonclient.http clients must not be shared by threads.
    """
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(
        triton_url.split("://", 1)[-1],
        concurrency=concurrency,
        network_timeout=600.0,
        connection_timeout=30.0,
    )
    results, pending = [], []

    def collect():
        result = pending.pop(0).get_result()
        results.append({n: result.as_numpy(n) for n in outputs})

    try:
        # ``many_inputs`` may be a generator: only a window of requests
        # (and their tensors) is alive at a time.
        for inputs in many_inputs:
            tensors, requested = _request(inputs, outputs)
            pending.append(client.async_infer(model, tensors, outputs=requested))
            if len(pending) >= 2 * concurrency:
                collect()
        while pending:
            collect()
        return results
    finally:
        client.close()


def decode_lines(out):
    """OCR_LINES tensor -> list of dicts, checking the output contract."""
    assert out.shape == (1,), f"OCR_LINES shape {out.shape}"
    lines = json.loads(out[0].decode("utf-8"))
    assert isinstance(lines, list)
    for line in lines:
        assert set(line) == {"text", "confidence", "box", "line"}, line
        assert isinstance(line["line"], int) and line["line"] >= 0
        assert isinstance(line["text"], str) and line["text"]
        assert 0.0 <= line["confidence"] <= 1.0
        assert np.asarray(line["box"]).shape == (4, 2)
    return lines


def read_text(client, ocr_input, ocr_image, scale):
    """Call ``ocr_engine``; return its decoded OCR_LINES (a list of dicts)."""
    out = infer(
        client,
        "ocr_engine",
        {"OCR_INPUT": ocr_input, "OCR_IMAGE": ocr_image, "OCR_SCALE": scale},
        ["OCR_LINES"],
    )["OCR_LINES"]
    return decode_lines(out)
