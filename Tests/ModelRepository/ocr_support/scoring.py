"""Scoring OCR output against the lines drawn on a synthetic image."""


def edit_distance(a, b):
    """Levenshtein distance (insertions, deletions, substitutions cost 1)."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb))
            )
        previous = current
    return previous[-1]


def text_rows(lines):
    """Group ``ocr_engine`` lines (already in reading order) into visual rows.

    The detector may cut one drawn line into several boxes (at wide word
    gaps); boxes whose vertical centres lie within half a box height of the
    row's first box belong to the same row and are joined with a space, left
    to right. Returns the row strings, top to bottom.
    """
    rows = []
    for line in lines:
        ys = [p[1] for p in line["box"]]
        centre, half = (min(ys) + max(ys)) / 2, (max(ys) - min(ys)) / 2
        x = min(p[0] for p in line["box"])
        for row in rows:
            if abs(row["centre"] - centre) < max(row["half"], half):
                row["parts"].append((x, line["text"]))
                break
        else:
            rows.append({"centre": centre, "half": half, "parts": [(x, line["text"])]})
    rows.sort(key=lambda r: r["centre"])
    return [" ".join(t.strip() for _, t in sorted(r["parts"])) for r in rows]


def score(expected_lines, rows):
    """(edit distance, expected characters, exact lines) for one image.

    The texts are compared as a whole, lines joined with newlines, so a
    missed or extra row costs its characters without shifting the others.
    A line is exact when a recognised row equals it character for character.
    """
    expected = "\n".join(expected_lines)
    distance = edit_distance(expected, "\n".join(rows))
    unmatched = list(rows)
    exact = 0
    for line in expected_lines:
        if line in unmatched:
            unmatched.remove(line)
            exact += 1
    return distance, len(expected), exact
