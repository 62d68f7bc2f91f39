"""Every config.pbtxt and configs/gpu.pbtxt parses as a Triton ModelConfig
(model_config.proto, as shipped in the tritonclient wheel) and holds what the
design asks of it; the ensemble wiring refers to real tensors."""

import importlib.util
from pathlib import Path

import pytest

from conftest import MODEL_REPO

OWN_MODELS = [
    "preprocess", "content_classifier", "safety_detector", "safety_postprocess",
    "ocr_engine", "decision_logic", "moderation", "moderation_int8",
]
BATCHED_ONNX_MODELS = [
    "content_classifier", "safety_detector", "ocr_detector", "ocr_recognizer",
    "ocr_orientation", "ocr_direction", "text_classifier",
]


@pytest.fixture(scope="module")
def model_config_pb2():
    import tritonclient

    path = Path(tritonclient.__file__).parent / "grpc" / "model_config_pb2.py"
    spec = importlib.util.spec_from_file_location("triton_model_config_pb2", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse(pb2, path):
    from google.protobuf import text_format

    return text_format.Parse(path.read_text(), pb2.ModelConfig())


def all_config_files():
    return sorted(MODEL_REPO.glob("*/config.pbtxt")) + sorted(MODEL_REPO.glob("*/configs/*.pbtxt"))


@pytest.mark.parametrize("path", all_config_files(), ids=lambda p: str(p.relative_to(MODEL_REPO)))
def test_config_parses_as_model_config(model_config_pb2, path):
    config = parse(model_config_pb2, path)
    assert config.name == path.parent.name if path.name == "config.pbtxt" else path.parent.parent.name


@pytest.mark.parametrize("model", ["content_classifier", "safety_detector"])
def test_onnx_models_cpu_and_gpu_settings(model_config_pb2, model):
    pb2 = model_config_pb2
    cpu = parse(pb2, MODEL_REPO / model / "config.pbtxt")
    gpu = parse(pb2, MODEL_REPO / model / "configs" / "gpu.pbtxt")
    assert cpu.backend == gpu.backend == "onnxruntime"
    assert cpu.dynamic_batching.preferred_batch_size and cpu.max_batch_size >= 4
    assert [g.kind for g in cpu.instance_group] == [pb2.ModelInstanceGroup.KIND_AUTO]
    assert all(g.count == 1 for g in cpu.instance_group)
    assert cpu.model_warmup
    params = {k: v.string_value for k, v in cpu.parameters.items()}
    assert int(params["intra_op_thread_count"]) <= 2
    assert all(g.kind == pb2.ModelInstanceGroup.KIND_GPU for g in gpu.instance_group)
    assert gpu.max_batch_size > cpu.max_batch_size
    accelerators = [a.name for a in gpu.optimization.execution_accelerators.gpu_execution_accelerator]
    assert "tensorrt" in accelerators
    assert [(i.name, list(i.dims)) for i in gpu.input] == [(i.name, list(i.dims)) for i in cpu.input]


@pytest.mark.parametrize("model", BATCHED_ONNX_MODELS)
@pytest.mark.parametrize("variant", ["config.pbtxt", "configs/gpu.pbtxt"])
def test_batched_models_have_bounded_queues(model_config_pb2, model, variant):
    """Overload is refused early (a bounded queue with a timeout) instead of
    queueing without limit; the python models' bound is the gateway's
    upstream concurrency cap."""
    pb2 = model_config_pb2
    config = parse(pb2, MODEL_REPO / model / variant)
    policy = config.dynamic_batching.default_queue_policy
    assert policy.max_queue_size > 0 and policy.default_timeout_microseconds > 0
    assert policy.timeout_action == pb2.ModelQueuePolicy.REJECT


def test_text_classifier_gpu_variant_serves_the_same_tensors(model_config_pb2):
    """(The OCR models' variants are checked in test_ocr_configs.py.)"""
    pb2 = model_config_pb2
    model = "text_classifier"
    cpu = parse(pb2, MODEL_REPO / model / "config.pbtxt")
    gpu = parse(pb2, MODEL_REPO / model / "configs" / "gpu.pbtxt")
    assert cpu.backend == gpu.backend == "onnxruntime"
    assert [g.kind for g in cpu.instance_group] == [pb2.ModelInstanceGroup.KIND_AUTO]
    assert all(g.kind == pb2.ModelInstanceGroup.KIND_GPU for g in gpu.instance_group)
    assert gpu.max_batch_size > cpu.max_batch_size
    assert [(i.name, list(i.dims)) for i in gpu.input] == [(i.name, list(i.dims)) for i in cpu.input]
    assert [(o.name, list(o.dims)) for o in gpu.output] == [(o.name, list(o.dims)) for o in cpu.output]


def test_classifier_keeps_both_versions_loaded(model_config_pb2):
    config = parse(model_config_pb2, MODEL_REPO / "content_classifier" / "config.pbtxt")
    assert list(config.version_policy.specific.versions) == [1, 2]


@pytest.mark.parametrize("ensemble, classifier_version", [("moderation", 1), ("moderation_int8", 2)])
def test_ensemble_wiring(model_config_pb2, ensemble, classifier_version):
    pb2 = model_config_pb2
    config = parse(pb2, MODEL_REPO / ensemble / "config.pbtxt")
    assert config.platform == "ensemble" and config.response_cache.enable
    assert [i.name for i in config.input] == ["IMAGE"]
    assert [o.name for o in config.output] == ["DECISION", "REASONS", "SCORES", "TEXT", "EVIDENCE"]
    steps = {s.model_name: s for s in config.ensemble_scheduling.step}
    assert set(steps) == {
        "preprocess", "content_classifier", "safety_detector", "safety_postprocess", "ocr_engine", "decision_logic",
    }
    assert steps["content_classifier"].model_version == classifier_version
    produced = {"IMAGE"}
    for step in config.ensemble_scheduling.step:
        produced |= set(step.output_map.values())
    for step in config.ensemble_scheduling.step:
        assert set(step.input_map.values()) <= produced, step.model_name
        if step.model_name in OWN_MODELS:
            # every mapped key is a real tensor of that model
            model = parse(pb2, MODEL_REPO / step.model_name / "config.pbtxt")
            assert set(step.input_map) <= {i.name for i in model.input}, step.model_name
            assert set(step.output_map) <= {o.name for o in model.output}, step.model_name


def test_weights_are_ignored_and_version_folders_kept():
    import subprocess

    root = MODEL_REPO.parent
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "triton-model-repo/content_classifier/1/model.onnx"], cwd=root
    )
    assert ignored.returncode == 0, "weights must be git-ignored"
    for folder in ["content_classifier/1", "content_classifier/2", "safety_detector/1", "ocr_orientation/1",
                   "ocr_direction/1", "text_classifier/1"]:
        assert (MODEL_REPO / folder / ".gitkeep").exists(), folder


def triton_runtime() -> Path:
    import os

    candidates = []
    if os.environ.get("TRITON_RUNTIME"):
        candidates.append(Path(os.environ["TRITON_RUNTIME"]))
    if os.environ.get("PERF_ANALYZER"):
        candidates.append(Path(os.environ["PERF_ANALYZER"]).resolve().parent.parent)
    candidates += [MODEL_REPO.parent / ".triton", Path("/work/main/.triton")]
    for candidate in candidates:
        if (candidate / "pytriton/tritonserver/bin/tritonserver").is_file():
            return candidate
    pytest.fail("no Triton runtime found (set TRITON_RUNTIME or run scripts/bootstrap)", pytrace=False)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_gpu_variants_load_in_triton_up_to_the_missing_gpu(tmp_path):
    """tritonserver --model-config-name=gpu reads every configs/gpu.pbtxt: on this
    CPU-only machine loading must stop at 'no GPUs are available', never at parsing."""
    import os
    import subprocess

    runtime = triton_runtime()
    home = runtime / "pytriton/tritonserver"
    repo = tmp_path / "repo"
    repo.mkdir()
    gpu_models = sorted(p.parent.parent.name for p in MODEL_REPO.glob("*/configs/gpu.pbtxt"))
    assert {"content_classifier", "safety_detector", "ocr_orientation", "ocr_direction", "text_classifier"} <= set(gpu_models)
    for model in gpu_models:
        (repo / model).symlink_to(MODEL_REPO / model)
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = f"{runtime / 'nvidia_pytriton.libs'}:{env.get('LD_LIBRARY_PATH', '')}"
    result = subprocess.run(
        [
            str(home / "bin/tritonserver"), f"--model-repository={repo}",
            f"--backend-directory={home / 'backends'}", f"--cache-directory={home / 'caches'}",
            "--model-config-name=gpu", f"--http-port={free_port()}", f"--grpc-port={free_port()}",
            f"--metrics-port={free_port()}", "--exit-on-error=true", "--strict-readiness=true",
        ],
        capture_output=True, text=True, timeout=120, env=env,
    )
    log = result.stdout + result.stderr
    assert result.returncode != 0
    lowered = log.lower()
    for symptom in ("failed to read text proto", "parse", "unknown field"):
        assert symptom not in lowered, log[-3000:]
    for model in gpu_models:
        assert f"of model {model} has kind KIND_GPU but no GPUs are available" in log, log[-3000:]
