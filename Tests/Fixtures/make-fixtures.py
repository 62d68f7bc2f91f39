#!/usr/bin/env python3
"""Generate the fixture model repository used by the client and gateway tests.

    .venv/bin/python Tests/Fixtures/make-fixtures.py [--out DIR]

Writes DIR (default: Tests/Fixtures/model-repo, git-ignored) from scratch:
every model folder, its config.pbtxt, its Python model file, and a tiny ONNX
graph built with the `onnx` package. Deterministic: the same script always
writes the same repository. These models exist to exercise the whole KServe v2
protocol against a real Triton; they are not part of the production repository.

Models:
  identity_<dtype>       INPUT0 -> OUTPUT0, one per KServe datatype, batched (8)
  identity_fp32_batched  FP32 identity with dynamic batching (max batch 32)
  add_sub                INPUT0, INPUT1 -> OUTPUT0 = sum, OUTPUT1 = difference
  failing                always fails with "fixture failure: ..."
  slow                   sleeps `delay_ms` (request parameter, default 2000) ms
  echo_parameters        OUTPUT0 = the request's parameters as JSON, forwarded HTTP headers
                         (traceparent, X-Request-Id) included
  moderation_a, _b       the moderation ensemble's interface (IMAGE -> DECISION, REASONS,
                         SCORES, TEXT = "served by <name>") without its models
  variant_a, variant_b   FP32 identities (batched, 8) used only by the traffic tests
  guarded_fp32, _bytes,  identities used only by the gateway's refusal tests, which assert
  guarded_rows
                         that Triton's inference count did not move (other suites run
                         inferences on identity_* at the same time)
  flaky                  FP32 identity that fails a `fail_fraction` of requests and/or sleeps
                         `delay_ms` (request parameters): a canary candidate that misbehaves on purpose
  classifier             FP32 scores with a labels file (classification extension)
  accumulator            sequence model: running sum per correlation id
  onnx_add               ONNX graph run by the onnxruntime backend (sum of two inputs)
"""

import argparse
import pathlib
import shutil

HERE = pathlib.Path(__file__).resolve().parent
PYTHON_SOURCES = HERE / "python"

DATATYPES = {
    "bool": "TYPE_BOOL",
    "uint8": "TYPE_UINT8",
    "uint16": "TYPE_UINT16",
    "uint32": "TYPE_UINT32",
    "uint64": "TYPE_UINT64",
    "int8": "TYPE_INT8",
    "int16": "TYPE_INT16",
    "int32": "TYPE_INT32",
    "int64": "TYPE_INT64",
    "fp16": "TYPE_FP16",
    "fp32": "TYPE_FP32",
    "fp64": "TYPE_FP64",
    "bf16": "TYPE_BF16",
    "bytes": "TYPE_STRING",
}


def tensor(name, dtype, dims, extra=""):
    dims_text = ", ".join(str(d) for d in dims)
    return f'  {{ name: "{name}" data_type: {dtype} dims: [ {dims_text} ]{extra} }}'


def config(name, backend, inputs, outputs, max_batch_size=0, extra=""):
    return (
        f'name: "{name}"\n'
        f'backend: "{backend}"\n'
        f"max_batch_size: {max_batch_size}\n"
        "input [\n" + ",\n".join(inputs) + "\n]\n"
        "output [\n" + ",\n".join(outputs) + "\n]\n"
        'instance_group [ { kind: KIND_CPU count: 1 } ]\n' + extra
    )


def python_model(repo, name, source, config_text, files=()):
    folder = repo / name
    (folder / "1").mkdir(parents=True)
    shutil.copyfile(PYTHON_SOURCES / source, folder / "1" / "model.py")
    (folder / "config.pbtxt").write_text(config_text)
    for filename, text in files:
        (folder / filename).write_text(text)


def onnx_add(repo):
    import onnx
    from onnx import TensorProto, helper

    a = helper.make_tensor_value_info("INPUT0", TensorProto.FLOAT, ["batch", 16])
    b = helper.make_tensor_value_info("INPUT1", TensorProto.FLOAT, ["batch", 16])
    out = helper.make_tensor_value_info("OUTPUT0", TensorProto.FLOAT, ["batch", 16])
    graph = helper.make_graph(
        [helper.make_node("Add", ["INPUT0", "INPUT1"], ["OUTPUT0"])], "onnx_add", [a, b], [out]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    folder = repo / "onnx_add"
    (folder / "1").mkdir(parents=True)
    onnx.save(model, folder / "1" / "model.onnx")
    (folder / "config.pbtxt").write_text(
        config(
            "onnx_add",
            "onnxruntime",
            [tensor("INPUT0", "TYPE_FP32", [16]), tensor("INPUT1", "TYPE_FP32", [16])],
            [tensor("OUTPUT0", "TYPE_FP32", [16])],
            max_batch_size=8,
            extra="dynamic_batching { max_queue_delay_microseconds: 100 }\n"
            'parameters { key: "intra_op_thread_count" value: { string_value: "1" } }\n',
        )
    )


def build(repo):
    if repo.exists():
        shutil.rmtree(repo)
    repo.mkdir(parents=True)

    for short, dtype in DATATYPES.items():
        python_model(
            repo,
            f"identity_{short}",
            "identity.py",
            config(
                f"identity_{short}",
                "python",
                [tensor("INPUT0", dtype, [-1])],
                [tensor("OUTPUT0", dtype, [-1])],
                max_batch_size=8,
            ),
        )

    python_model(
        repo,
        "identity_fp32_batched",
        "identity.py",
        config(
            "identity_fp32_batched",
            "python",
            [tensor("INPUT0", "TYPE_FP32", [-1])],
            [tensor("OUTPUT0", "TYPE_FP32", [-1])],
            max_batch_size=32,
            extra="dynamic_batching { max_queue_delay_microseconds: 200 }\n",
        ),
    )
    python_model(
        repo,
        "add_sub",
        "add_sub.py",
        config(
            "add_sub",
            "python",
            [tensor("INPUT0", "TYPE_FP32", [-1]), tensor("INPUT1", "TYPE_FP32", [-1])],
            [tensor("OUTPUT0", "TYPE_FP32", [-1]), tensor("OUTPUT1", "TYPE_FP32", [-1])],
        ),
    )
    python_model(
        repo,
        "echo_parameters",
        "echo_parameters.py",
        config("echo_parameters", "python", [tensor("INPUT0", "TYPE_FP32", [-1])], [tensor("OUTPUT0", "TYPE_STRING", [1])]),
    )
    python_model(
        repo,
        "failing",
        "failing.py",
        config(
            "failing",
            "python",
            [tensor("INPUT0", "TYPE_FP32", [-1])],
            [tensor("OUTPUT0", "TYPE_FP32", [-1])],
        ),
    )
    python_model(
        repo,
        "slow",
        "slow.py",
        config(
            "slow",
            "python",
            [tensor("INPUT0", "TYPE_FP32", [-1])],
            [tensor("OUTPUT0", "TYPE_FP32", [-1])],
            # Several instances so one sleeping request does not block the next test.
        ).replace("count: 1", "count: 4"),
    )
    # Two interchangeable FP32 identities for the traffic tests (A/B, canary baseline,
    # mirror), so their inference counts are not disturbed by other suites.
    for name in ("variant_a", "variant_b"):
        python_model(
            repo,
            name,
            "identity.py",
            config(
                name,
                "python",
                [tensor("INPUT0", "TYPE_FP32", [-1])],
                [tensor("OUTPUT0", "TYPE_FP32", [-1])],
                max_batch_size=8,
            ),
        )
    # Identities only the gateway's refusal tests call: their exact inference counts
    # are not moved by suites running at the same time. guarded_rows is SecurityRowsTests'
    # own (EndToEndTests makes one accepted call to guarded_fp32).
    for name, short in (("guarded_fp32", "fp32"), ("guarded_bytes", "bytes"), ("guarded_rows", "fp32")):
        python_model(
            repo,
            name,
            "identity.py",
            config(
                name,
                "python",
                [tensor("INPUT0", DATATYPES[short], [-1])],
                [tensor("OUTPUT0", DATATYPES[short], [-1])],
                max_batch_size=8,
            ),
        )
    # The moderation ensemble's interface without its models, for /v1/moderate A/B tests.
    for name in ("moderation_a", "moderation_b"):
        python_model(
            repo,
            name,
            "moderation_stub.py",
            config(
                name,
                "python",
                [tensor("IMAGE", "TYPE_STRING", [1])],
                [tensor(output, "TYPE_STRING", [1]) for output in ("DECISION", "REASONS", "SCORES", "TEXT")],
            ),
        )
    python_model(
        repo,
        "flaky",
        "flaky.py",
        config(
            "flaky",
            "python",
            [tensor("INPUT0", "TYPE_FP32", [-1])],
            [tensor("OUTPUT0", "TYPE_FP32", [-1])],
            # Batched like identity_fp32, so the same request fits both (a canary pair).
            max_batch_size=8,
        ).replace("count: 1", "count: 2"),
    )
    python_model(
        repo,
        "classifier",
        "identity.py",
        config(
            "classifier",
            "python",
            [tensor("INPUT0", "TYPE_FP32", [-1])],
            [tensor("OUTPUT0", "TYPE_FP32", [-1], ' label_filename: "labels.txt"')],
        ),
        files=[("labels.txt", "cat\ndog\nbird\nfish\n")],
    )
    python_model(
        repo,
        "accumulator",
        "accumulator.py",
        config(
            "accumulator",
            "python",
            [tensor("INPUT0", "TYPE_INT32", [1])],
            [tensor("OUTPUT0", "TYPE_INT32", [1])],
            max_batch_size=1,
            extra="sequence_batching { max_sequence_idle_microseconds: 60000000 }\n",
        ),
    )
    onnx_add(repo)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=pathlib.Path, default=HERE / "model-repo")
    args = parser.parse_args()
    build(args.out)
    print(f"fixture model repository written to {args.out}")


if __name__ == "__main__":
    main()
