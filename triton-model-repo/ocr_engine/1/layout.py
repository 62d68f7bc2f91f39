"""Reading order for OCR boxes: which boxes form one line, and in what order
people read the lines. Plain numpy so the tests can import it without Triton.

The detector often cuts one printed line into several boxes (at wide word
gaps, around an emoji, across a coloured band), and its own order
(top-left corner first) interleaves boxes of neighbouring lines when a line
is slightly tilted or its words differ in height. People read by baseline:

- boxes belong to one line when their vertical extents overlap by at least
  ``min_overlap`` of the smaller box's height (same baseline band);
- within a line, boxes go left to right; a horizontal gap wider than
  ``column_gap`` times the line's height splits the line into segments
  (a gutter between columns, not a word gap);
- segments right of a gutter form a column: columns are read one after the
  other, top to bottom within each column.

Returns, for every box, its (line index, position in the line); line indices
follow reading order.
"""

from __future__ import annotations

import numpy as np


def _extent(box):
    box = np.asarray(box, dtype=np.float64)
    return box[:, 0].min(), box[:, 0].max(), box[:, 1].min(), box[:, 1].max()


def group_lines(boxes, min_overlap=0.5, column_gap=2.5):
    """Group 4x2 boxes (upright image coordinates) into reading-order lines.

    Returns a list of lines, each a list of box indices left to right, in
    reading order (columns left to right, lines top to bottom in each).
    """
    if not boxes:
        return []
    extents = [_extent(b) for b in boxes]
    order = sorted(range(len(boxes)), key=lambda i: ((extents[i][2] + extents[i][3]) / 2, extents[i][0]))

    rows = []  # each: {"top", "bottom", "members"}
    for index in order:
        _, _, top, bottom = extents[index]
        height = max(bottom - top, 1.0)
        best, best_overlap = None, 0.0
        for row in rows:
            overlap = min(bottom, row["bottom"]) - max(top, row["top"])
            smaller = max(min(height, row["bottom"] - row["top"]), 1.0)
            ratio = overlap / smaller
            if ratio >= min_overlap and ratio > best_overlap:
                best, best_overlap = row, ratio
        if best is None:
            rows.append({"top": top, "bottom": bottom, "members": [index]})
        else:
            best["members"].append(index)
            # The band is the members' median extent, so one tall box (an
            # emoji, a capital) does not swallow the next line.
            best["top"] = float(np.median([extents[i][2] for i in best["members"]]))
            best["bottom"] = float(np.median([extents[i][3] for i in best["members"]]))

    segments = []  # (column, top, members)
    for row in rows:
        members = sorted(row["members"], key=lambda i: extents[i][0])
        height = max(row["bottom"] - row["top"], 1.0)
        column, current = 0, [members[0]]
        for previous, index in zip(members, members[1:]):
            gap = extents[index][0] - extents[previous][1]
            if gap > column_gap * height:
                segments.append((column, row["top"], current))
                column, current = column + 1, []
            current.append(index)
        segments.append((column, row["top"], current))
    segments.sort(key=lambda s: (s[0], s[1]))
    return [members for _, _, members in segments]


def rotate_points(points, turns, width, height):
    """Map points of an image turned by ``turns`` quarter turns counter-clockwise
    (``np.rot90(image, turns)``, whose size is then ``width`` x ``height``) back
    to the unturned image. Continuous pixel coordinates."""
    points = np.asarray(points, dtype=np.float64).copy()
    turns %= 4
    for _ in range(turns):
        # One counter-clockwise turn maps (x, y) of a W x H image to (y, W - x)
        # of an H x W image; undo it: (x', y') -> (W - y', x').
        x, y = points[:, 0].copy(), points[:, 1].copy()
        width, height = height, width
        points[:, 0] = width - y
        points[:, 1] = x
    return points
