"""Triton python model ``decision_logic``: branch outputs -> DECISION, REASONS, SCORES, TEXT, EVIDENCE.

The rules live in ``rules.py`` (importable without Triton); thresholds and
detector classes come from the config ``parameters``, text rules from the
terms file in the model folder (``terms_file`` parameter, default terms.json)
and the word lists it names. When there is OCR text, the learned text
classifier (``text_classifier_model``) is called through BLS on the
normalised text; its score joins the rules.

Custom metrics (Triton's /metrics): decisions, reasons by source and code,
text-classifier scores (a histogram where the stub supports one).
"""

import json
import os
import sys
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rules  # noqa: E402

SCORE_BUCKETS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99]


def _bytes_tensor(name, value):
    return pb_utils.Tensor(name, np.array([value.encode("utf-8")], dtype=np.object_))


def _single_bytes(request, name, optional=False):
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        if optional:
            return None
        raise rules.InputError(f"missing input {name}")
    values = tensor.as_numpy().reshape(-1)
    if values.size != 1:
        raise rules.InputError(f"{name} must hold one element, got {values.size}")
    value = values[0]
    return value if isinstance(value, (bytes, str)) else bytes(value)


class _Metrics:
    """Decision counters on Triton's /metrics endpoint (pb_utils.MetricFamily)."""

    def __init__(self, model):
        self.model = model
        counter = pb_utils.MetricFamily.COUNTER
        self.decisions = pb_utils.MetricFamily(
            name="moderation_decisions_total", description="Moderation decisions", kind=counter)
        self.reasons = pb_utils.MetricFamily(
            name="moderation_reasons_total", description="Reasons behind moderation decisions, by source and code",
            kind=counter)
        self.cache = {}
        self.histogram = None
        if hasattr(pb_utils.MetricFamily, "HISTOGRAM"):
            # The family must outlive its metric: keep both.
            self.histogram_family = pb_utils.MetricFamily(
                name="moderation_text_classifier_score", description="Text classifier offensive-text scores",
                kind=pb_utils.MetricFamily.HISTOGRAM)
            self.histogram = self.histogram_family.Metric(labels={"model": model}, buckets=SCORE_BUCKETS)

    def _count(self, family, **labels):
        key = (id(family), tuple(sorted(labels.items())))
        metric = self.cache.get(key)
        if metric is None:
            metric = family.Metric(labels={"model": self.model, **labels})
            self.cache[key] = metric
        metric.increment(1.0)

    def observe(self, result, text_score):
        self._count(self.decisions, decision=result.decision)
        for reason in result.reasons:
            self._count(self.reasons, source=reason["source"], code=reason["code"], action=reason["action"])
        if text_score is not None and self.histogram is not None:
            self.histogram.observe(float(text_score))


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        parameters = config.get("parameters", {})
        try:
            self.policy = rules.Policy.from_parameters(parameters, Path(args["model_repository"]))
        except (rules.PolicyError, OSError, ValueError, KeyError) as error:
            raise pb_utils.TritonModelException(f"decision_logic: bad policy: {error}")
        entry = parameters.get("text_classifier_model", {})
        self.classifier = (entry.get("string_value", "") if isinstance(entry, dict) else str(entry)).strip()
        self.metrics = _Metrics(args.get("model_name", "decision_logic"))

    def _text_score(self, ocr_lines):
        """Offensive-text probability of the normalised OCR text, or None."""
        if not self.classifier:
            return None
        text = rules.classifier_text(ocr_lines)
        if not text:
            return None
        request = pb_utils.InferenceRequest(
            model_name=self.classifier,
            requested_output_names=["probabilities"],
            inputs=[pb_utils.Tensor("text", np.array([[text.encode("utf-8")]], dtype=np.object_))],
        )
        response = request.exec()
        if response.has_error():
            raise RuntimeError(f"{self.classifier}: {response.error().message()}")
        probabilities = pb_utils.get_output_tensor_by_name(response, "probabilities").as_numpy().reshape(-1)
        return float(probabilities[1])

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                probs = pb_utils.get_input_tensor_by_name(request, "NSFW_PROBS")
                if probs is None:
                    raise rules.InputError("missing input NSFW_PROBS")
                ocr_lines = _single_bytes(request, "OCR_LINES")
                text_score = self._text_score(ocr_lines)
                result = rules.decide(
                    probs.as_numpy().reshape(-1),
                    _single_bytes(request, "DETECTIONS"),
                    ocr_lines,
                    self.policy,
                    ocr_info=_single_bytes(request, "OCR_INFO", optional=True),
                    text_score=text_score,
                )
            except (rules.InputError, ValueError) as error:
                responses.append(
                    pb_utils.InferenceResponse(
                        error=pb_utils.TritonError(f"decision_logic: {error}")
                    )
                )
                continue
            except RuntimeError as error:  # the text classifier failed
                responses.append(
                    pb_utils.InferenceResponse(error=pb_utils.TritonError(f"text_classifier_failed: {error}"))
                )
                continue
            self.metrics.observe(result, text_score)
            responses.append(
                pb_utils.InferenceResponse(
                    output_tensors=[
                        _bytes_tensor("DECISION", result.decision),
                        _bytes_tensor("REASONS", json.dumps(result.reasons)),
                        _bytes_tensor("SCORES", json.dumps(result.scores)),
                        _bytes_tensor("TEXT", result.text),
                        _bytes_tensor("EVIDENCE", json.dumps(result.evidence)),
                    ]
                )
            )
        return responses
