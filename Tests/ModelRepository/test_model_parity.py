"""Triton serves each ONNX model faithfully: its outputs equal ONNX Runtime's on
the same input tensors (max abs difference <= 1e-4 for FP32), one request at a
time and in concurrent (dynamically batched) requests; the INT8 A/B candidate
agrees with FP32 on the sample set; safety_postprocess equals NudeNet's own
post-processing."""

import json
import time

import numpy as np
import onnxruntime as ort
import pytest

from conftest import MODEL_REPO, encode, infer_tensors

TOLERANCE = 1e-4


def session(model, version="1"):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(
        str(MODEL_REPO / model / version / "model.onnx"), options, providers=["CPUExecutionProvider"]
    )


@pytest.fixture(scope="module")
def prepared_samples(image_prep, sample_images):
    return {name: image_prep.prepare(encode(image, "PNG")) for name, image in sample_images.items()}


@pytest.mark.parametrize("version", ["1", "2"])
def test_content_classifier_matches_onnxruntime(triton_client, prepared_samples, version):
    reference = session("content_classifier", version)
    worst = 0.0
    for name, prepared in prepared_samples.items():
        x = prepared.classifier_input
        want = reference.run(["outputs"], {"input:0": x})[0]
        got = infer_tensors(triton_client, "content_classifier", {"input:0": x}, ["outputs"], version)["outputs"]
        assert got.shape == (1, 2)
        worst = max(worst, float(np.abs(got - want).max()))
    assert worst <= TOLERANCE, f"content_classifier v{version}: max abs diff {worst}"


def test_safety_detector_matches_onnxruntime(triton_client, prepared_samples):
    reference = session("safety_detector")
    for name, prepared in prepared_samples.items():
        x = prepared.detector_input
        want = reference.run(["output0"], {"images": x})[0]
        got = infer_tensors(triton_client, "safety_detector", {"images": x}, ["output0"])["output0"]
        assert got.shape == (1, 22, 2100)
        assert float(np.abs(got - want).max()) <= TOLERANCE, name


def test_batched_requests_match_onnxruntime(triton_url, prepared_samples):
    """Concurrent requests are merged by the dynamic batcher; each answer must still be its own."""
    import tritonclient.http as httpclient

    reference = session("content_classifier")
    inputs = [p.classifier_input for p in prepared_samples.values()] * 2
    want = [reference.run(["outputs"], {"input:0": x})[0] for x in inputs]
    client = httpclient.InferenceServerClient(triton_url.split("://", 1)[-1], concurrency=8, network_timeout=300.0)
    before = client.get_inference_statistics("content_classifier", "1")["model_stats"][0]
    pending = []
    for x in inputs:
        tensor = httpclient.InferInput("input:0", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x, binary_data=True)
        pending.append(client.async_infer("content_classifier", [tensor], model_version="1"))
    got = [request.get_result().as_numpy("outputs") for request in pending]
    # Triton counts a request as it releases it, which can be after its answer arrived:
    # wait (bounded) for the count to take in every request before comparing.
    deadline = time.monotonic() + 60
    while True:
        after = client.get_inference_statistics("content_classifier", "1")["model_stats"][0]
        counted = int(after["inference_count"]) - int(before["inference_count"])
        if counted >= len(inputs) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    client.close()
    for g, w in zip(got, want):
        assert float(np.abs(g - w).max()) <= TOLERANCE
    inferences = int(after["inference_count"]) - int(before["inference_count"])
    executions = int(after["execution_count"]) - int(before["execution_count"])
    assert inferences == len(inputs)
    print(f"\n{inferences} concurrent requests ran in {executions} executions")
    assert executions < inferences, "the dynamic batcher should merge some concurrent requests"


def test_int8_agrees_with_fp32_on_samples(prepared_samples):
    """A/B candidate report: INT8 (v2) vs FP32 (v1) nsfw probability on the sample set."""
    fp32, int8 = session("content_classifier", "1"), session("content_classifier", "2")
    rows = []
    for name, prepared in prepared_samples.items():
        a = fp32.run(["outputs"], {"input:0": prepared.classifier_input})[0][0, 1]
        b = int8.run(["outputs"], {"input:0": prepared.classifier_input})[0][0, 1]
        rows.append((name, float(a), float(b)))
    print("\nINT8 vs FP32 nsfw probability:")
    for name, a, b in rows:
        print(f"  {name:22s} fp32={a:.5f} int8={b:.5f} |diff|={abs(a - b):.5f}")
    diffs = [abs(a - b) for _, a, b in rows]
    print(f"  max |diff| = {max(diffs):.5f}, mean = {np.mean(diffs):.5f}")
    assert all((a >= 0.5) == (b >= 0.5) for _, a, b in rows), "INT8 flips a sfw/nsfw call"
    assert max(diffs) < 0.05


def test_safety_postprocess_matches_nudenet(triton_client, wheel_import, detections_module, prepared_samples):
    nudenet = wheel_import("nudenet", "nudenet.nudenet")
    reference = session("safety_detector")
    rng = np.random.default_rng(7)
    cases = []
    for name, prepared in prepared_samples.items():
        raw = reference.run(["output0"], {"images": prepared.detector_input})[0]
        cases.append((name, raw, prepared))
    # A synthetic crowded output: many overlapping candidates of several classes
    # (the samples are safe photos, so the real outputs hold few boxes).
    crowded = np.zeros((1, 22, 2100), dtype=np.float32)
    crowded[0, 0:2] = rng.uniform(20, 300, size=(2, 2100))
    crowded[0, 2:4] = rng.uniform(5, 120, size=(2, 2100))
    crowded[0, 4:] = rng.uniform(0, 0.6, size=(18, 2100)) ** 2 * 2.5
    crowded = np.clip(crowded, 0, None)
    cases.append(("crowded", crowded, prepared_samples["coffee"]))
    for name, raw, prepared in cases:
        height, width = (int(v) for v in prepared.image_size)
        side = max(height, width)
        want = nudenet._postprocess([raw], side - width, side - height, 0, 0, width, height, 320, 320)
        want = [{"label": d["class"], "score": d["score"], "box": d["box"]} for d in want]
        mine = detections_module.postprocess(raw, prepared.detector_letterbox, prepared.image_size)
        assert [(d["label"], d["box"]) for d in mine] == [(d["label"], d["box"]) for d in want], name
        assert [d["score"] for d in mine] == pytest.approx([d["score"] for d in want], abs=1e-6)
        served = infer_tensors(
            triton_client,
            "safety_postprocess",
            {
                "DETECTOR_OUTPUT": raw.astype(np.float32),
                "DETECTOR_LETTERBOX": prepared.detector_letterbox,
                "IMAGE_SIZE": prepared.image_size,
            },
            ["DETECTIONS"],
        )
        assert json.loads(served["DETECTIONS"][0]) == json.loads(json.dumps(mine)), name
    assert len(json.loads(json.dumps(detections_module.postprocess(crowded, cases[-1][2].detector_letterbox, cases[-1][2].image_size)))) > 3
