"""ocr_engine's reading order (layout.py): boxes into lines and columns, and
points of a turned image mapped back; no Triton needed."""

import numpy as np
import pytest

from ocr_support.fixtures import ENGINE_DIR  # noqa: F401  (puts the engine folder on sys.path)


@pytest.fixture(scope="module")
def layout():
    import sys

    if str(ENGINE_DIR) not in sys.path:
        sys.path.insert(0, str(ENGINE_DIR))
    import layout as module

    return module


def box(x0, y0, x1, y1):
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


def test_fragments_on_one_baseline_are_one_line_left_to_right(layout):
    # "you tomorrow" sits 3 px higher than "I will kill": the detector's own
    # order (top-left corner first) would read it first.
    boxes = [box(300, 47, 560, 90), box(20, 50, 280, 92), box(20, 130, 200, 170)]
    assert layout.group_lines(boxes) == [[1, 0], [2]]


def test_a_tall_glyph_does_not_swallow_the_next_line(layout):
    boxes = [box(10, 10, 60, 90), box(70, 40, 300, 80), box(70, 100, 300, 140)]
    assert layout.group_lines(boxes) == [[0, 1], [2]]


def test_columns_are_read_one_after_the_other(layout):
    left = [box(20, 20 + 60 * i, 220, 60 + 60 * i) for i in range(3)]
    right = [box(500, 20 + 60 * i, 700, 60 + 60 * i) for i in range(3)]
    lines = layout.group_lines(left + right)
    assert lines == [[0], [1], [2], [3], [4], [5]]


@pytest.mark.parametrize("turns", [0, 1, 2, 3])
def test_points_of_a_turned_image_map_back(layout, turns):
    height, width = 40, 100
    image = np.zeros((height, width), dtype=np.uint8)
    image[10, 70] = 1
    turned = np.rot90(image, turns)
    y, x = np.argwhere(turned == 1)[0]
    # pixel centres: (x + 0.5, y + 0.5)
    back = layout.rotate_points([[x + 0.5, y + 0.5]], turns, turned.shape[1], turned.shape[0])
    assert back[0] == pytest.approx([70.5, 10.5])
