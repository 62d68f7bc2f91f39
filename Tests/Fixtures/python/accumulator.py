"""Sequence model: OUTPUT0 is the running sum of INPUT0 within one sequence.

Triton's sequence batcher routes every request of a correlation id to this
instance and marks the first one with sequence_start; state is kept per
correlation id and dropped at sequence_end.
"""

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        self.sums = {}

    def execute(self, requests):
        responses = []
        for request in requests:
            key = request.correlation_id()
            flags = request.flags()
            if flags & pb_utils.TRITONSERVER_REQUEST_FLAG_SEQUENCE_START:
                self.sums[key] = 0
            value = int(pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy().sum())
            total = self.sums.get(key, 0) + value
            self.sums[key] = total
            if flags & pb_utils.TRITONSERVER_REQUEST_FLAG_SEQUENCE_END:
                self.sums.pop(key, None)
            responses.append(
                pb_utils.InferenceResponse(
                    output_tensors=[pb_utils.Tensor("OUTPUT0", np.array([[total]], dtype=np.int32))]
                )
            )
        return responses
