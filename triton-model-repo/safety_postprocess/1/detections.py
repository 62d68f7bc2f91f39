"""NudeNet 3.4.2 post-processing, importable without Triton.

Mirrors ``nudenet._postprocess``: for each of the 2100 anchors take the best
class score; keep anchors at or above ``min_score`` (NudeNet: 0.2); convert
(cx, cy, w, h) to top-left boxes in original pixels through the letterbox;
clip to the image; then OpenCV NMS with score threshold 0.25 and IoU 0.45.
Vectorised, so a crowded output does not cost a Python loop per anchor.
"""

from __future__ import annotations

import cv2
import numpy as np

# Class order of the 320n model, as in nudenet/nudenet.py (3.4.2).
LABELS = (
    "FEMALE_GENITALIA_COVERED",
    "FACE_FEMALE",
    "BUTTOCKS_EXPOSED",
    "FEMALE_BREAST_EXPOSED",
    "FEMALE_GENITALIA_EXPOSED",
    "MALE_BREAST_EXPOSED",
    "ANUS_EXPOSED",
    "FEET_EXPOSED",
    "BELLY_COVERED",
    "FEET_COVERED",
    "ARMPITS_COVERED",
    "ARMPITS_EXPOSED",
    "FACE_MALE",
    "BELLY_EXPOSED",
    "MALE_GENITALIA_EXPOSED",
    "ANUS_COVERED",
    "FEMALE_BREAST_COVERED",
    "BUTTOCKS_COVERED",
)


def postprocess(
    output: np.ndarray,
    letterbox: np.ndarray,
    image_size: np.ndarray,
    min_score: float = 0.2,
    nms_score: float = 0.25,
    nms_iou: float = 0.45,
) -> list[dict]:
    """Raw detector output [1, 22, N] (or [22, N]) -> [{label, score, box: [x, y, w, h]}].

    ``letterbox`` is [scale_x, scale_y, pad_left, pad_top] from ``preprocess``;
    ``image_size`` is (height, width) of the oriented original.
    """
    rows = np.asarray(output, dtype=np.float32).reshape(4 + len(LABELS), -1).T
    scale_x, scale_y, pad_left, pad_top = (float(v) for v in np.asarray(letterbox).reshape(4))
    height, width = (int(v) for v in np.asarray(image_size).reshape(2))

    class_scores = rows[:, 4:]
    best = class_scores.max(axis=1)
    keep = np.nonzero(best >= min_score)[0]
    if keep.size == 0:
        return []
    class_ids = class_scores[keep].argmax(axis=1)
    scores = best[keep]
    cx, cy, w, h = (rows[keep, i] for i in range(4))

    x = (cx - w / 2) * scale_x - pad_left
    y = (cy - h / 2) * scale_y - pad_top
    w = w * scale_x
    h = h * scale_y
    x = np.clip(x, 0, width)
    y = np.clip(y, 0, height)
    w = np.minimum(w, width - x)
    h = np.minimum(h, height - y)

    boxes = np.stack([x, y, w, h], axis=1)
    indices = cv2.dnn.NMSBoxes(boxes.tolist(), scores.tolist(), nms_score, nms_iou)
    detections = []
    for index in np.asarray(indices, dtype=np.int64).reshape(-1):
        bx, by, bw, bh = boxes[index]
        detections.append(
            {
                "label": LABELS[int(class_ids[index])],
                "score": float(scores[index]),
                "box": [int(bx), int(by), int(bw), int(bh)],
            }
        )
    return detections
