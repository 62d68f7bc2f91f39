"""A Python-based Triton backend named ``onnxruntime`` for CPU-only machines.

The ``nvidia-pytriton`` wheel ships Triton without its native ONNX Runtime
backend.  Triton treats a backend directory that holds a ``model.py`` (and no
``libtriton_<name>.so``) as a Python-based backend, so this file lets a model
whose ``config.pbtxt`` says ``backend: "onnxruntime"`` run here through the
``onnxruntime`` package, and the very same config runs unchanged on the NGC
container with the native backend.

It is local tooling: ``scripts/bootstrap`` copies it into the runtime folder;
it is not part of any model repository.

What it honours from the model config:
- ``default_model_filename`` (default ``model.onnx``) in the version folder;
- ``max_batch_size``: with batching, the requests Triton hands over in one
  call (dynamic batching) are concatenated along dimension 0, run once, and
  split back per request;
- ``parameters``: ``intra_op_thread_count``, ``inter_op_thread_count`` and
  ``graph_optimization_level`` (``disable``/``basic``/``extended``/``all``);
- input and output names; outputs not named in the config are not returned;
- ``TYPE_STRING`` inputs (BYTES elements are decoded as UTF-8 for ONNX
  Runtime's string tensors).
"""

import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


_OPT_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def _parameter(config, key, default):
    entry = config.get("parameters", {}).get(key)
    if entry is None:
        return default
    value = entry.get("string_value", "") if isinstance(entry, dict) else str(entry)
    return value if value != "" else default


def _as_strings(array):
    flat = [
        value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)
        for value in array.reshape(-1)
    ]
    return np.array(flat, dtype=np.object_).reshape(array.shape)


class TritonPythonModel:
    def initialize(self, args):
        self.config = json.loads(args["model_config"])
        self.max_batch_size = int(self.config.get("max_batch_size", 0))
        filename = self.config.get("default_model_filename") or "model.onnx"
        path = os.path.join(
            args["model_repository"], args["model_version"], filename
        )
        if not os.path.isfile(path):
            raise pb_utils.TritonModelException(
                f"onnxruntime shim: model file not found: {path}"
            )

        options = ort.SessionOptions()
        options.intra_op_num_threads = int(
            _parameter(self.config, "intra_op_thread_count", "1")
        )
        options.inter_op_num_threads = int(
            _parameter(self.config, "inter_op_thread_count", "1")
        )
        level = _parameter(self.config, "graph_optimization_level", "all")
        if level not in _OPT_LEVELS:
            raise pb_utils.TritonModelException(
                f"onnxruntime shim: unknown graph_optimization_level '{level}'"
            )
        options.graph_optimization_level = _OPT_LEVELS[level]
        self.session = ort.InferenceSession(
            path, sess_options=options, providers=["CPUExecutionProvider"]
        )

        session_inputs = {i.name for i in self.session.get_inputs()}
        self.inputs = [i["name"] for i in self.config.get("input", [])]
        missing = [n for n in self.inputs if n not in session_inputs]
        if missing:
            raise pb_utils.TritonModelException(
                f"onnxruntime shim: config inputs {missing} are not inputs of {filename}"
            )
        session_outputs = {o.name for o in self.session.get_outputs()}
        self.outputs = []
        for out in self.config.get("output", []):
            if out["name"] not in session_outputs:
                raise pb_utils.TritonModelException(
                    f"onnxruntime shim: config output '{out['name']}' is not an output of {filename}"
                )
            dtype = pb_utils.triton_string_to_numpy(out["data_type"])
            self.outputs.append((out["name"], dtype))

    def execute(self, requests):
        feeds_per_request = []
        for request in requests:
            feeds = {}
            for name in self.inputs:
                tensor = pb_utils.get_input_tensor_by_name(request, name)
                if tensor is None:
                    feeds = None
                    break
                array = tensor.as_numpy()
                if array.dtype == np.object_:
                    # Triton hands BYTES elements over as bytes; ONNX Runtime's
                    # string tensors take str.
                    array = _as_strings(array)
                feeds[name] = array
            feeds_per_request.append(feeds)

        responses = [None] * len(requests)
        runnable = []
        for index, feeds in enumerate(feeds_per_request):
            if feeds is None:
                responses[index] = pb_utils.InferenceResponse(
                    error=pb_utils.TritonError("onnxruntime shim: missing input")
                )
            else:
                runnable.append(index)

        if self.max_batch_size > 0 and len(runnable) > 1:
            self._run_batched(runnable, feeds_per_request, responses)
        else:
            for index in runnable:
                responses[index] = self._run_one(feeds_per_request[index])
        return responses

    def _run_one(self, feeds):
        try:
            results = self.session.run([n for n, _ in self.outputs], feeds)
        except Exception as error:  # onnxruntime raises several types
            return pb_utils.InferenceResponse(
                error=pb_utils.TritonError(f"onnxruntime shim: {error}")
            )
        return self._response(results)

    def _run_batched(self, runnable, feeds_per_request, responses):
        sizes = [feeds_per_request[i][self.inputs[0]].shape[0] for i in runnable]
        try:
            merged = {
                name: np.concatenate([feeds_per_request[i][name] for i in runnable])
                for name in self.inputs
            }
            results = self.session.run([n for n, _ in self.outputs], merged)
        except Exception:
            # One bad request must not fail the others: run them one by one.
            for index in runnable:
                responses[index] = self._run_one(feeds_per_request[index])
            return
        offset = 0
        for index, size in zip(runnable, sizes):
            part = [r[offset : offset + size] for r in results]
            responses[index] = self._response(part)
            offset += size

    def _response(self, results):
        tensors = [
            pb_utils.Tensor(name, np.ascontiguousarray(value.astype(dtype, copy=False)))
            for (name, dtype), value in zip(self.outputs, results)
        ]
        return pb_utils.InferenceResponse(output_tensors=tensors)
