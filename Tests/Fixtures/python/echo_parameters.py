"""Answers with the request parameters Triton handed the model, as one JSON string.

Triton adds the HTTP headers that match `--http-header-forward-pattern` to those
parameters (scripts/triton and the image's entry point forward `traceparent` and
`X-Request-Id`), so this shows what reached Triton from the gateway.
"""

import numpy as np

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            seen = request.parameters() or "{}"
            responses.append(
                pb_utils.InferenceResponse(
                    output_tensors=[pb_utils.Tensor("OUTPUT0", np.array([seen.encode()], dtype=np.object_))]
                )
            )
        return responses
