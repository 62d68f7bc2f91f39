"""Echoes INPUT0 after sleeping `delay_ms` milliseconds (request parameter, default 2000)."""

import json
import time

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            parameters = json.loads(request.parameters() or "{}")
            delay_ms = parameters.get("delay_ms", 2000)
            try:
                delay = max(0.0, min(float(delay_ms), 60000.0)) / 1000.0
            except (TypeError, ValueError):
                delay = 2.0
            time.sleep(delay)
            tensor = pb_utils.get_input_tensor_by_name(request, "INPUT0")
            responses.append(
                pb_utils.InferenceResponse(
                    output_tensors=[pb_utils.Tensor("OUTPUT0", tensor.as_numpy())]
                )
            )
        return responses
