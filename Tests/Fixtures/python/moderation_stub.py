"""A stand-in for the `moderation` ensemble's interface (IMAGE bytes in; DECISION,
REASONS, SCORES, TEXT out) for gateway traffic tests on the fixture repository.
It does not look at the image: it answers `allow` and names itself in TEXT, so a
test can tell which variant served a /v1/moderate request."""

import json

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        self.name = args["model_name"]

    def execute(self, requests):
        responses = []
        for request in requests:
            image = pb_utils.get_input_tensor_by_name(request, "IMAGE").as_numpy()
            size = len(image.reshape(-1)[0]) if image.size else 0

            def text(name, value):
                return pb_utils.Tensor(name, np.array([value.encode("utf-8")], dtype=np.object_))

            responses.append(
                pb_utils.InferenceResponse(
                    output_tensors=[
                        text("DECISION", "allow"),
                        text("REASONS", "[]"),
                        text("SCORES", json.dumps({"stub": 0.0, "bytes": size})),
                        text("TEXT", f"served by {self.name}"),
                    ]
                )
            )
        return responses
