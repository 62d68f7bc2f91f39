"""Shared fixtures for the model-repository tests.

Tests that need Triton use ``triton_url`` (from TRITON_MODERATION_URL, a
Triton serving triton-model-repo/). When the variable is unset those tests
FAIL with a clear message instead of being skipped: scripts/test always sets
it, and a silently skipped integration test proves nothing.
Pure-Python tests (rule engine, preprocessing parity against the wheels,
config parsing) need no Triton.
"""

from __future__ import annotations

import importlib
import importlib.util
import io
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
MODEL_REPO = ROOT / "triton-model-repo"
DOWNLOADS = ROOT / ".triton" / "downloads"
# Tests/Fixtures/moderation_images.py renders the text images both the ensemble
# tests and the gateway's end-to-end test send.
sys.path.insert(0, str(ROOT / "Tests" / "Fixtures"))
SAMPLE_NAMES = ("astronaut", "coffee", "chelsea", "rocket", "camera", "immunohistochemistry")


@pytest.fixture(scope="session")
def model_repo() -> Path:
    return MODEL_REPO


@pytest.fixture(scope="session")
def lock(model_repo) -> dict:
    return json.loads((model_repo / "models.lock.json").read_text())


@pytest.fixture(scope="session")
def triton_url() -> str:
    url = os.environ.get("TRITON_MODERATION_URL", "").strip()
    if not url:
        pytest.fail(
            "TRITON_MODERATION_URL is not set: start Triton on triton-model-repo/ "
            "(scripts/triton start --model-repo triton-model-repo ...) and export "
            "TRITON_MODERATION_URL=http://127.0.0.1:PORT, or run scripts/test",
            pytrace=False,
        )
    return url.rstrip("/")


@pytest.fixture(scope="session")
def triton_client(triton_url):
    import tritonclient.http as httpclient

    address = triton_url.split("://", 1)[-1]
    client = httpclient.InferenceServerClient(address, network_timeout=300.0, connection_timeout=30.0)
    if not client.is_server_ready():
        pytest.fail(f"Triton at {triton_url} is not ready", pytrace=False)
    return client


def load_version_module(name: str, model: str, version: str = "1"):
    """Import a plain-Python module that lives in a model's version folder."""
    path = MODEL_REPO / model / version / f"{name}.py"
    # Modules of a version folder import their siblings (as model.py does).
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(f"{model}_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def image_prep():
    return load_version_module("image_prep", "preprocess")


@pytest.fixture(scope="session")
def rules():
    return load_version_module("rules", "decision_logic")


@pytest.fixture(scope="session")
def detections_module():
    return load_version_module("detections", "safety_postprocess")


@pytest.fixture(scope="session")
def wheel_import(lock):
    """Import a module from a pinned wheel cached by scripts/fetch-models (zipimport).

    The wheels' own code is the reference implementation of each model's
    published preprocessing; it is never installed into the venv.
    """

    def load(package: str, module: str):
        spec = lock["wheels"][package]
        wheel = DOWNLOADS / spec["filename"]
        if not wheel.is_file():
            pytest.fail(f"{wheel} is missing: run scripts/fetch-models", pytrace=False)
        if str(wheel) not in sys.path:
            sys.path.insert(0, str(wheel))
        return importlib.import_module(module)

    return load


def encode(image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def sample_images():
    """Public-domain sample photos shipped with scikit-image, as RGB PIL images."""
    import skimage.data
    from PIL import Image

    images = {}
    for name in SAMPLE_NAMES:
        array = getattr(skimage.data, name)()
        images[name] = Image.fromarray(array).convert("RGB")
    return images


def infer_image(client, model: str, data: bytes, outputs=None, version: str = ""):
    """Send one encoded image as IMAGE [1] BYTES; return the InferResult."""
    import tritonclient.http as httpclient

    tensor = httpclient.InferInput("IMAGE", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([data], dtype=np.object_), binary_data=True)
    requested = [httpclient.InferRequestedOutput(n, binary_data=True) for n in outputs] if outputs else None
    return client.infer(model, [tensor], outputs=requested, model_version=version)


def infer_tensors(client, model: str, inputs: dict, outputs, version: str = ""):
    """Run a model on named numpy arrays; return {output name: array}."""
    import tritonclient.http as httpclient
    from tritonclient.utils import np_to_triton_dtype

    tensors = []
    for name, array in inputs.items():
        dtype = "BYTES" if array.dtype == np.object_ else np_to_triton_dtype(array.dtype)
        tensor = httpclient.InferInput(name, list(array.shape), dtype)
        tensor.set_data_from_numpy(array, binary_data=True)
        tensors.append(tensor)
    requested = [httpclient.InferRequestedOutput(n, binary_data=True) for n in outputs]
    result = client.infer(model, tensors, outputs=requested, model_version=version)
    return {n: result.as_numpy(n) for n in outputs}
