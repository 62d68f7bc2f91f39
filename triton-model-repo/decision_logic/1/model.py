"""Triton python model ``decision_logic``: branch outputs -> DECISION, REASONS, SCORES, TEXT.

The rules live in ``rules.py`` (importable without Triton); thresholds and
detector classes come from the config ``parameters``, text rules from the
terms file in the model folder (``terms_file`` parameter, default terms.json).
"""

import json
import os
import sys
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rules  # noqa: E402


def _bytes_tensor(name, value):
    return pb_utils.Tensor(name, np.array([value.encode("utf-8")], dtype=np.object_))


def _single_bytes(request, name):
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        raise rules.InputError(f"missing input {name}")
    values = tensor.as_numpy().reshape(-1)
    if values.size != 1:
        raise rules.InputError(f"{name} must hold one element, got {values.size}")
    value = values[0]
    return value if isinstance(value, (bytes, str)) else bytes(value)


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        try:
            self.policy = rules.Policy.from_parameters(
                config.get("parameters", {}), Path(args["model_repository"])
            )
        except (rules.PolicyError, OSError, ValueError, KeyError) as error:
            raise pb_utils.TritonModelException(f"decision_logic: bad policy: {error}")

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                probs = pb_utils.get_input_tensor_by_name(request, "NSFW_PROBS")
                if probs is None:
                    raise rules.InputError("missing input NSFW_PROBS")
                result = rules.decide(
                    probs.as_numpy().reshape(-1),
                    _single_bytes(request, "DETECTIONS"),
                    _single_bytes(request, "OCR_LINES"),
                    self.policy,
                )
            except (rules.InputError, ValueError) as error:
                responses.append(
                    pb_utils.InferenceResponse(
                        error=pb_utils.TritonError(f"decision_logic: {error}")
                    )
                )
                continue
            responses.append(
                pb_utils.InferenceResponse(
                    output_tensors=[
                        _bytes_tensor("DECISION", result.decision),
                        _bytes_tensor("REASONS", json.dumps(result.reasons)),
                        _bytes_tensor("SCORES", json.dumps(result.scores)),
                        _bytes_tensor("TEXT", result.text),
                    ]
                )
            )
        return responses
