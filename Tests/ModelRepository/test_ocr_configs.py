"""The OCR model configs parse as Triton ModelConfig protobufs and agree
with the ONNX graphs, with each other and with their GPU variants."""

import importlib.util
from pathlib import Path

import onnx
import pytest
from google.protobuf import text_format


MODELS = ("ocr_detector", "ocr_recognizer", "ocr_engine", "ocr_orientation", "ocr_direction")
ONNX_MODELS = ("ocr_detector", "ocr_recognizer", "ocr_orientation", "ocr_direction")


def _model_config_module():
    # tritonclient ships the generated ModelConfig protobuf module under its
    # grpc package; load the file alone (the package __init__ needs grpcio).
    spec = importlib.util.find_spec("tritonclient")
    path = Path(spec.origin).parent / "grpc" / "model_config_pb2.py"
    module_spec = importlib.util.spec_from_file_location("ocr_model_config_pb2", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def pb():
    return _model_config_module()


def _load(pb, path):
    return text_format.Parse(path.read_text(), pb.ModelConfig())


@pytest.fixture(scope="module")
def configs(pb, model_repo):
    loaded = {}
    for model in MODELS:
        loaded[(model, "cpu")] = _load(pb, model_repo / model / "config.pbtxt")
        loaded[(model, "gpu")] = _load(pb, model_repo / model / "configs" / "gpu.pbtxt")
    return loaded


def _params(config):
    return {key: value.string_value for key, value in config.parameters.items()}


def _signature(config):
    return (
        [(t.name, t.data_type, list(t.dims)) for t in config.input],
        [(t.name, t.data_type, list(t.dims)) for t in config.output],
    )


@pytest.mark.parametrize("model", MODELS)
def test_cpu_and_gpu_configs_serve_the_same_tensors(configs, pb, model):
    cpu, gpu = configs[(model, "cpu")], configs[(model, "gpu")]
    assert cpu.name == gpu.name == model
    assert cpu.backend == gpu.backend
    assert _signature(cpu) == _signature(gpu)
    assert all(g.kind == pb.ModelInstanceGroup.KIND_AUTO for g in cpu.instance_group)
    assert all(g.kind == pb.ModelInstanceGroup.KIND_GPU for g in gpu.instance_group)
    assert gpu.max_batch_size >= cpu.max_batch_size


@pytest.mark.parametrize("model", ONNX_MODELS)
def test_onnx_configs_match_the_graph(configs, pb, model_repo, model):
    path = model_repo / model / "1" / "model.onnx"
    if not path.is_file():
        pytest.fail(f"{path} is missing: run scripts/fetch-models", pytrace=False)
    graph = onnx.load(str(path), load_external_data=False).graph

    def dims(value):
        return [d.dim_value if d.dim_value > 0 else -1 for d in value.type.tensor_type.shape.dim]

    for variant in ("cpu", "gpu"):
        config = configs[(model, variant)]
        assert config.backend == "onnxruntime"
        assert config.max_batch_size > 0 and config.HasField("dynamic_batching")
        for tensors, values in ((config.input, graph.input), (config.output, graph.output)):
            assert [t.name for t in tensors] == [v.name for v in values]
            for tensor, value in zip(tensors, values):
                assert tensor.data_type == pb.TYPE_FP32
                graph_dims = dims(value)[1:]  # batch dimension is implicit
                assert len(tensor.dims) == len(graph_dims)
                for mine, theirs in zip(tensor.dims, graph_dims):
                    assert theirs == -1 or mine == theirs, (model, tensor.name)
        threads = int(_params(config).get("intra_op_thread_count", "0"))
        if variant == "cpu":
            assert 1 <= threads <= 2, "2-core machine: 1-2 intra-op threads"
            assert not config.optimization.execution_accelerators.gpu_execution_accelerator
        else:
            accelerators = config.optimization.execution_accelerators.gpu_execution_accelerator
            assert [a.name for a in accelerators] == ["tensorrt"]


@pytest.mark.parametrize("variant", ["cpu", "gpu"])
def test_engine_stays_within_its_sub_models_limits(configs, variant):
    engine = _params(configs[("ocr_engine", variant)])
    recognizer = configs[("ocr_recognizer", variant)]
    assert configs[("ocr_engine", variant)].max_batch_size == 0
    assert 1 <= int(engine["rec_max_batch"]) <= recognizer.max_batch_size
    assert engine["detector_model"] == "ocr_detector"
    assert engine["recognizer_model"] == "ocr_recognizer"
    assert engine["orientation_model"] == "ocr_orientation"
    assert engine["direction_model"] == "ocr_direction"
    # direction batches are cut at rec_max_batch too
    assert int(engine["rec_max_batch"]) <= configs[("ocr_direction", variant)].max_batch_size
    if variant == "gpu":
        # Inputs the engine lets through must fit the TensorRT profiles.
        def profile_max(model):
            accelerator = configs[(model, "gpu")].optimization.execution_accelerators
            shapes = accelerator.gpu_execution_accelerator[0].parameters["trt_profile_max_shapes"]
            return [int(v) for v in shapes.split(":", 1)[1].split("x")]

        det_max = profile_max("ocr_detector")
        assert int(engine["max_det_side"]) <= min(det_max[2:])
        assert int(engine["max_det_pixels"]) <= det_max[2] * det_max[3]
        rec_max = profile_max("ocr_recognizer")
        assert int(engine["rec_max_width"]) <= rec_max[3]
        assert int(engine["rec_max_batch"]) <= rec_max[0]
