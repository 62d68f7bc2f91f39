"""Triton python model ``safety_postprocess``: NudeNet raw output -> DETECTIONS JSON."""

import json
import os
import sys

import numpy as np
import triton_python_backend_utils as pb_utils

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import detections  # noqa: E402


def _float_param(config, key, default):
    entry = config.get("parameters", {}).get(key)
    if entry is None or entry.get("string_value", "") == "":
        return default
    return float(entry["string_value"])


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.min_score = _float_param(config, "min_score", 0.2)
        self.nms_score = _float_param(config, "nms_score_threshold", 0.25)
        self.nms_iou = _float_param(config, "nms_iou_threshold", 0.45)

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                output = pb_utils.get_input_tensor_by_name(request, "DETECTOR_OUTPUT").as_numpy()
                letterbox = pb_utils.get_input_tensor_by_name(request, "DETECTOR_LETTERBOX").as_numpy()
                size = pb_utils.get_input_tensor_by_name(request, "IMAGE_SIZE").as_numpy()
                found = detections.postprocess(
                    output, letterbox, size, self.min_score, self.nms_score, self.nms_iou
                )
            except Exception as error:
                responses.append(
                    pb_utils.InferenceResponse(
                        error=pb_utils.TritonError(f"safety_postprocess: {error}")
                    )
                )
                continue
            payload = np.array([json.dumps(found).encode("utf-8")], dtype=np.object_)
            responses.append(
                pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("DETECTIONS", payload)])
            )
        return responses
