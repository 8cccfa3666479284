"""ScreenSpot: is the model's click inside the target element's box?

The gold `bbox` is [x1, y1, x2, y2] as fractions of the screenshot
(lmms-eval's ScreenSpot). lmms-eval's prompt asks for a box in fractions
with two decimals; Qwen models often answer in their own trained convention
instead, which depends on the family:

| family | coordinates in the answer |
|---|---|
| Qwen2-VL | integers 0-1000, relative to the image (`(x1,y1),(x2,y2)` in `<|box_start|>`) |
| Qwen2.5-VL | absolute pixels of the image the model saw (after smart_resize) |
| Qwen3-VL | integers 0-1000, relative to the image |

So an answer's numbers are read as fractions when all are <= 1, else in the
family's convention. The click is the first point given, or the centre of
the first box (four numbers), as lmms-eval's Center_ACC takes the centre.
"""

from __future__ import annotations

import re

RELATIVE_1000 = {"qwen2_vl", "qwen3_vl"}
_NUMBER = r"-?\d+(?:\.\d+)?"
_FOUR = re.compile(rf"({_NUMBER})\s*,\s*\(?\s*({_NUMBER})\s*\)?\s*,\s*\(?\s*({_NUMBER})\s*,\s*({_NUMBER})")
_TWO = re.compile(rf"({_NUMBER})\s*,\s*({_NUMBER})")


def parse_click(text: str) -> tuple[float, float] | None:
    """The click in the answer's own units: the first box's centre, else the first point; None if neither."""
    text = str(text)
    box = _FOUR.search(text)
    if box:
        x1, y1, x2, y2 = (float(v) for v in box.groups())
        return (x1 + x2) / 2, (y1 + y2) / 2
    point = _TWO.search(text)
    if point:
        return float(point.group(1)), float(point.group(2))
    return None


def to_fraction(click: tuple[float, float], family: str, seen_size: tuple[int, int]) -> tuple[float, float]:
    """A click as fractions of the image; seen_size is (width, height) of the image the model saw."""
    x, y = click
    if max(abs(x), abs(y)) <= 1:
        return x, y
    if family in RELATIVE_1000:
        return x / 1000, y / 1000
    return x / seen_size[0], y / seen_size[1]


def click_in_box(prediction: str, bbox, family: str, seen_size: tuple[int, int]) -> float:
    """1 when the answer's click lands inside bbox (fractions [x1, y1, x2, y2], edges included), else 0."""
    click = parse_click(prediction)
    if click is None:
        return 0.0
    x, y = to_fraction(click, family, seen_size)
    x1, y1, x2, y2 = (float(v) for v in bbox)
    return 1.0 if x1 <= x <= x2 and y1 <= y <= y2 else 0.0
