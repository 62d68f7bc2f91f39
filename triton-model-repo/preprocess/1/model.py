"""Triton python model ``preprocess``: one encoded image -> every branch's tensors.

The image work lives in ``image_prep.py`` (importable without Triton); this
file reads the limits from the config ``parameters``, turns refusals into
``TritonError``s whose message starts with the stable prefix
(``invalid_image:``, ``image_too_large:``, ``unsupported_format:``), counts
them by prefix on Triton's /metrics (``moderation_refusals_total``), and never
lets one bad request fail the others in the same call.
"""

import json
import os
import sys

import numpy as np
import triton_python_backend_utils as pb_utils

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import image_prep  # noqa: E402


def _param(config, key, default, kind):
    entry = config.get("parameters", {}).get(key)
    if entry is None or entry.get("string_value", "") == "":
        return default
    return kind(float(entry["string_value"])) if kind is int else kind(entry["string_value"])


def _error(message):
    try:
        return pb_utils.TritonError(message, pb_utils.TritonError.INVALID_ARG)
    except (AttributeError, TypeError):  # older stubs without error codes
        return pb_utils.TritonError(message)


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.limits = image_prep.Limits(
            max_bytes=_param(config, "max_bytes", image_prep.Limits.max_bytes, int),
            max_pixels=_param(config, "max_pixels", image_prep.Limits.max_pixels, int),
        )
        self.detector = image_prep.DetectorSettings(
            size=_param(config, "detector_size", 320, int),
            size_cap=_param(config, "detector_size_cap", 4096, int),
        )
        self.ocr = image_prep.OcrSettings(
            max_side_len=_param(config, "ocr_max_side_len", 2000, int),
            min_side_len=_param(config, "ocr_min_side_len", 30, int),
            limit_side_len=_param(config, "ocr_limit_side_len", 736, int),
            limit_type=_param(config, "ocr_limit_type", "min", str),
            det_max_side=_param(config, "ocr_det_max_side", 4096, int),
        )
        if self.ocr.limit_type not in ("min", "max"):
            raise pb_utils.TritonModelException("preprocess: ocr_limit_type must be 'min' or 'max'")
        self.refusal_family = pb_utils.MetricFamily(
            name="moderation_refusals_total", description="Images refused by preprocess, by error prefix",
            kind=pb_utils.MetricFamily.COUNTER)
        self.refusals = {}

    def _refused(self, message):
        prefix = message.split(":", 1)[0]
        counter = self.refusals.get(prefix)
        if counter is None:
            counter = self.refusal_family.Metric(labels={"prefix": prefix})
            self.refusals[prefix] = counter
        counter.increment(1.0)
        return pb_utils.InferenceResponse(error=_error(message))

    def execute(self, requests):
        return [self._one(request) for request in requests]

    def _one(self, request):
        tensor = pb_utils.get_input_tensor_by_name(request, "IMAGE")
        if tensor is None:
            return self._refused("invalid_image: missing input IMAGE")
        values = tensor.as_numpy().reshape(-1)
        if values.size != 1:
            return self._refused(f"invalid_image: IMAGE must hold exactly one image, got {values.size}")
        data = values[0]
        if isinstance(data, str):
            data = data.encode("latin-1")
        try:
            prepared = image_prep.prepare(bytes(data), self.limits, self.detector, self.ocr)
        except image_prep.ImageRefused as refusal:
            return self._refused(str(refusal))
        except MemoryError:
            return self._refused("image_too_large: not enough memory to decode the image")
        except Exception as error:  # a decoder bug must not take the model down
            return self._refused(f"invalid_image: cannot process image ({type(error).__name__})")
        outputs = [
            pb_utils.Tensor("CLASSIFIER_INPUT", prepared.classifier_input),
            pb_utils.Tensor("DETECTOR_INPUT", prepared.detector_input),
            pb_utils.Tensor("DETECTOR_LETTERBOX", prepared.detector_letterbox),
            pb_utils.Tensor("IMAGE_SIZE", prepared.image_size),
            pb_utils.Tensor("OCR_INPUT", prepared.ocr_input),
            pb_utils.Tensor("OCR_IMAGE", prepared.ocr_image),
            pb_utils.Tensor("OCR_SCALE", prepared.ocr_scale),
        ]
        return pb_utils.InferenceResponse(output_tensors=outputs)
