"""``ocr_engine``: PP-OCRv4 text reading as a Triton BLS model.

Inputs (made by ``preprocess``, see ``ppocr.py`` and the repository README):
``OCR_INPUT`` FP32 [1,3,H,W] detector input, ``OCR_IMAGE`` UINT8 [H,W,3] the
same resized image in BGR, ``OCR_SCALE`` FP32 [2] = (orig_h / H, orig_w / W).
Outputs: ``OCR_LINES`` BYTES [1], a UTF-8 JSON list of
``{"text", "confidence", "box", "line"}`` in reading order with boxes in
original image pixels and ``line`` the reading line of each fragment;
``OCR_INFO`` BYTES [1], a JSON object: orientation applied, boxes found,
crops recognised, whether the crop cap was hit, crops turned round.

Per request: one call to ``ocr_orientation`` (whole image), one to
``ocr_detector``, DB post-processing here, crops (at most ``max_crops``),
one call to ``ocr_direction`` per batch of crops, one to ``ocr_recognizer``
per batch of similar-width crops (normally one), CTC decoding here. Between
calls the engine stops when the client has cancelled the request. A
malformed request gets an error whose message starts with
``invalid_ocr_input:``; a failure of a model it calls gets ``ocr_failed:``;
a cancelled one ``cancelled:``. None affects other requests.

Custom metrics (Triton's /metrics): recognised crops and lines, images whose
crop cap was hit, orientation applied by angle, crops turned round.
"""

import json
import os
import sys

import numpy as np
import triton_python_backend_utils as pb_utils

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ppocr  # noqa: E402  (lives next to this file)


def _parameter(config, key, default):
    entry = config.get("parameters", {}).get(key)
    if entry is None:
        return default
    value = entry.get("string_value", "") if isinstance(entry, dict) else str(entry)
    return value if value != "" else default


class _Metrics:
    """Counters on Triton's /metrics endpoint (pb_utils.MetricFamily)."""

    def __init__(self, model):
        self.model = model
        self.families = {}
        self.counters = {}
        for name, text in [
            ("moderation_ocr_crops_total", "Text crops recognised by ocr_engine"),
            ("moderation_ocr_lines_total", "Reading lines returned by ocr_engine"),
            ("moderation_ocr_capped_total", "Images with more text boxes than max_crops (the rest went unread)"),
            ("moderation_ocr_orientation_total", "Images by orientation applied before detection (degrees)"),
            ("moderation_ocr_crops_turned_total", "Crops turned round by the text-direction classifier"),
        ]:
            self.families[name] = pb_utils.MetricFamily(name=name, description=text, kind=pb_utils.MetricFamily.COUNTER)

    def _add(self, name, value, **labels):
        if value <= 0:
            return
        key = (name, tuple(sorted(labels.items())))
        counter = self.counters.get(key)
        if counter is None:
            counter = self.families[name].Metric(labels={"model": self.model, **labels})
            self.counters[key] = counter
        counter.increment(float(value))

    def observe(self, lines, info):
        self._add("moderation_ocr_crops_total", info["crops"])
        self._add("moderation_ocr_lines_total", len({line["line"] for line in lines}))
        self._add("moderation_ocr_capped_total", 1 if info["capped"] else 0)
        self._add("moderation_ocr_orientation_total", 1, degrees=str(info["orientation"]))
        self._add("moderation_ocr_crops_turned_total", info["flipped_crops"])


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])

        def param(key, default):
            return _parameter(config, key, default)

        here = os.path.join(args["model_repository"], args["model_version"])
        characters = ppocr.load_characters(
            os.path.join(here, param("character_file", "characters.txt"))
        )
        detection = ppocr.DetectionSettings(
            threshold=param("det_db_thresh", "0.3"),
            box_threshold=param("det_db_box_thresh", "0.5"),
            max_candidates=param("det_max_candidates", "1000"),
            unclip_ratio=param("det_db_unclip_ratio", "1.6"),
            use_dilation=param("det_use_dilation", "true").lower() in ("1", "true", "yes"),
        )
        self.reader = ppocr.TextReader(
            characters,
            detection=detection,
            text_score=param("text_score", "0.5"),
            max_batch=param("rec_max_batch", "32"),
            max_pixels=param("max_det_pixels", str(2048 * 2048)),
            max_side=param("max_det_side", "8192"),
            max_line_width=param("rec_max_width", "4800"),
            max_crops=param("max_crops", "64"),
            orientation_min_score=param("orientation_min_score", "0.7"),
            direction_min_score=param("direction_min_score", "0.9"),
            min_overlap=param("line_min_overlap", "0.5"),
            column_gap=param("column_gap", "2.5"),
        )
        # The recogniser was trained on BGR crops (PaddleOCR/rapidocr read
        # images with OpenCV); the contract says OCR_IMAGE is BGR. "RGB" lets
        # a producer that sends RGB be served correctly without a code change.
        self.image_channels = param("ocr_image_channels", "BGR").upper()
        if self.image_channels not in ("BGR", "RGB"):
            raise pb_utils.TritonModelException(
                f"ocr_engine: ocr_image_channels must be BGR or RGB, not {self.image_channels}"
            )
        self.detector = param("detector_model", "ocr_detector")
        self.recognizer = param("recognizer_model", "ocr_recognizer")
        # Empty names switch the orientation steps off (the pipeline of before).
        self.orientation = param("orientation_model", "ocr_orientation").strip()
        self.direction = param("direction_model", "ocr_direction").strip()
        self.metrics = _Metrics(args.get("model_name", "ocr_engine"))
        # Ask for outputs in CPU memory: on GPU the ONNX models answer from
        # device memory and this model post-processes with numpy/OpenCV.
        self.preferred_memory = None
        if hasattr(pb_utils, "PreferredMemory"):
            self.preferred_memory = pb_utils.PreferredMemory(
                pb_utils.TRITONSERVER_MEMORY_CPU, 0
            )

    def _infer(self, model, input_name, output_name, array):
        kwargs = {}
        if self.preferred_memory is not None:
            kwargs["preferred_memory"] = self.preferred_memory
        request = pb_utils.InferenceRequest(
            model_name=model,
            requested_output_names=[output_name],
            inputs=[pb_utils.Tensor(input_name, np.ascontiguousarray(array))],
            **kwargs,
        )
        response = request.exec()
        if response.has_error():
            raise RuntimeError(f"{model}: {response.error().message()}")
        tensor = pb_utils.get_output_tensor_by_name(response, output_name)
        if tensor is None:
            raise RuntimeError(f"{model}: no output '{output_name}'")
        return tensor.as_numpy()

    def _detect(self, x):
        return self._infer(self.detector, "x", "sigmoid_0.tmp_0", x)

    def _recognize(self, batch):
        return self._infer(self.recognizer, "x", "softmax_11.tmp_0", batch)

    def _orientation_probs(self, x):
        return self._infer(self.orientation, "x", "fetch_name_0", x)

    def _direction_probs(self, batch):
        return self._infer(self.direction, "x", "save_infer_model/scale_0.tmp_1", batch)

    def _read(self, request):
        tensors = {}
        for name in ("OCR_INPUT", "OCR_IMAGE", "OCR_SCALE"):
            tensor = pb_utils.get_input_tensor_by_name(request, name)
            if tensor is None:
                raise ppocr.InputError(f"missing input {name}")
            tensors[name] = tensor.as_numpy()
        image = tensors["OCR_IMAGE"].astype(np.uint8, copy=False)
        if self.image_channels == "RGB" and image.ndim == 3:
            image = np.ascontiguousarray(image[:, :, ::-1])
        cancelled = getattr(request, "is_cancelled", None)
        lines, info = self.reader.read_with_info(
            tensors["OCR_INPUT"].astype(np.float32, copy=False),
            image,
            tensors["OCR_SCALE"].astype(np.float32, copy=False),
            self._detect,
            self._recognize,
            run_orientation=self._orientation_probs if self.orientation else None,
            run_direction=self._direction_probs if self.direction else None,
            should_stop=cancelled,
        )
        self.metrics.observe(lines, info)
        payload = json.dumps(lines, ensure_ascii=False).encode("utf-8")
        return [
            pb_utils.Tensor("OCR_LINES", np.array([payload], dtype=np.object_)),
            pb_utils.Tensor("OCR_INFO", np.array([json.dumps(info).encode("utf-8")], dtype=np.object_)),
        ]

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                outputs = self._read(request)
                responses.append(pb_utils.InferenceResponse(output_tensors=outputs))
            except ppocr.InputError as error:
                responses.append(
                    pb_utils.InferenceResponse(
                        error=pb_utils.TritonError(f"invalid_ocr_input: {error}")
                    )
                )
            except ppocr.Cancelled as error:
                responses.append(
                    pb_utils.InferenceResponse(error=pb_utils.TritonError(f"cancelled: {error}"))
                )
            except Exception as error:  # a failing sub-model must not kill the stub
                responses.append(
                    pb_utils.InferenceResponse(
                        error=pb_utils.TritonError(f"ocr_failed: {error}")
                    )
                )
        return responses
