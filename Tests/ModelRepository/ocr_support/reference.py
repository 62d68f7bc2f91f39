"""Reference PP-OCR detector preprocessing (rapidocr-onnxruntime 1.4.4).

This is the contract between ``preprocess`` and ``ocr_engine``; the tests
build the engine's inputs with it. Steps, as rapidocr runs them for an
image it loaded from a file (PIL decode, then RGB -> BGR with OpenCV):

1. ``RapidOCR.preprocess``: if the longer side exceeds 2000 (max_side_len),
   scale it to 2000; then, if the shorter side is under 30 (min_side_len),
   scale it to 30; each of these resizes rounds both sides to multiples of 32.
2. ``DetPreProcess`` with limit_type ``min`` and limit_side_len 736: if the
   shorter side is under 736, scale so that it becomes 736; round both sides
   to the nearest multiple of 32 (``cv2.resize`` default, bilinear).
3. ``OCR_INPUT`` = ``(bgr / 255 - 0.5) / 0.5`` as float32, CHW, batch 1;
   ``OCR_IMAGE`` = the same resized BGR image as uint8 HWC;
   ``OCR_SCALE`` = (original height / H, original width / W).

Not reproduced: rapidocr's letterbox for very flat images (height <= 30 or
width/height > 8 pads black bands above and below), because a top offset
cannot be expressed by ``OCR_SCALE``; ``ocr_engine`` bounds the size of
such inputs itself.
"""

import cv2
import numpy as np
from PIL import Image

MAX_SIDE_LEN = 2000
MIN_SIDE_LEN = 30
LIMIT_SIDE_LEN = 736


def _round32(value):
    return int(round(value / 32) * 32)


def _resize_to_32(image, ratio):
    h, w = image.shape[:2]
    new_h = _round32(int(h * ratio))
    new_w = _round32(int(w * ratio))
    if new_h <= 0 or new_w <= 0:
        raise ValueError(f"image {w}x{h} is too small to resize for PP-OCR")
    return cv2.resize(image, (new_w, new_h))


def to_bgr(image):
    """PIL image -> HxWx3 uint8 BGR, as rapidocr's LoadImage does for RGB/L input."""
    if image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    array = np.array(image)
    if array.ndim == 2:
        return cv2.cvtColor(array, cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(array, cv2.COLOR_RGB2BGR)


def det_resize(bgr):
    """The resized BGR image the detector sees (steps 1 and 2)."""
    image = bgr
    h, w = image.shape[:2]
    if max(h, w) > MAX_SIDE_LEN:
        image = _resize_to_32(image, MAX_SIDE_LEN / max(h, w))
    h, w = image.shape[:2]
    if min(h, w) < MIN_SIDE_LEN:
        image = _resize_to_32(image, MIN_SIDE_LEN / min(h, w))
    h, w = image.shape[:2]
    ratio = LIMIT_SIDE_LEN / min(h, w) if min(h, w) < LIMIT_SIDE_LEN else 1.0
    return _resize_to_32(image, ratio)


def normalise(bgr):
    """HxWx3 uint8 -> 1x3xHxW float32, PP-OCR det normalisation."""
    # Same arithmetic as rapidocr (float32 * 1/255, then float64 mean/std),
    # so that the tensors are bit-identical, not just close.
    half = np.array([0.5, 0.5, 0.5])
    hwc = (bgr.astype("float32") * (1 / 255.0) - half) / half
    return np.ascontiguousarray(hwc.transpose((2, 0, 1))[np.newaxis].astype(np.float32))


def ocr_tensors(image):
    """PIL image -> (OCR_INPUT, OCR_IMAGE, OCR_SCALE) for ``ocr_engine``."""
    bgr = to_bgr(image)
    resized = det_resize(bgr)
    h, w = resized.shape[:2]
    scale = np.array([bgr.shape[0] / h, bgr.shape[1] / w], dtype=np.float32)
    return normalise(resized), np.ascontiguousarray(resized), scale
