"""Echoes INPUT0, but misbehaves on request: a canary candidate that fails or slows on purpose.

Request parameters (all optional; without them it is a healthy identity model):
  fail_fraction  probability in [0, 1] that a request fails with "fixture flaky failure"
  delay_ms       sleep this many milliseconds before answering (capped at 10 s)
"""

import json
import random
import time

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                parameters = json.loads(request.parameters() or "{}")
                fail_fraction = min(1.0, max(0.0, float(parameters.get("fail_fraction", 0))))
                delay = min(10000.0, max(0.0, float(parameters.get("delay_ms", 0)))) / 1000.0
            except (TypeError, ValueError):
                fail_fraction, delay = 0.0, 0.0
            if delay:
                time.sleep(delay)
            if fail_fraction and random.random() < fail_fraction:
                responses.append(
                    pb_utils.InferenceResponse(error=pb_utils.TritonError("fixture flaky failure"))
                )
                continue
            tensor = pb_utils.get_input_tensor_by_name(request, "INPUT0")
            responses.append(
                pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("OUTPUT0", tensor.as_numpy())])
            )
        return responses
