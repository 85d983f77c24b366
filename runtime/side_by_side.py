"""A before/after picture for ``dagl-infer --side-by-side``: input | output | amplified difference.

A user restoring photos wants to see what the network did without opening three files: the
difference panel is ``|output - input|`` times :data:`GAIN` (clamped), so the removed artefacts or
noise, a few 8-bit levels each, become visible. Panels are shown as RGB (gray repeated, alpha
dropped) under a one-line label strip.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

#: How much the difference panel amplifies |output - input|.
GAIN = 10
#: Pixels between panels, and the height of the label strip above them.
GAP = 4
LABEL_HEIGHT = 16


def as_rgb(image: np.ndarray) -> np.ndarray:
    """(H, W[, C]) float image as (H, W, 3): gray repeated, an alpha channel dropped."""
    if image.ndim == 2:
        return np.repeat(image[..., None], 3, axis=2)
    if image.shape[2] in (1, 2):
        return np.repeat(image[..., :1], 3, axis=2)
    return image[..., :3]


def panels(before: np.ndarray, after: np.ndarray, gain: float = GAIN) -> list[tuple[str, np.ndarray]]:
    """(label, RGB image) of the three panels."""
    rgb_before, rgb_after = as_rgb(before), as_rgb(after)
    difference = np.clip(np.abs(rgb_after - rgb_before) * gain, 0.0, 1.0)
    return [("input", rgb_before), ("output", rgb_after), (f"|output - input| x{gain:g}", difference)]


def side_by_side(before: np.ndarray, after: np.ndarray, gain: float = GAIN) -> np.ndarray:
    """One float32 RGB image in [0, 1]: the labelled panels left to right, mid-gray between them."""
    if before.shape[:2] != after.shape[:2]:
        raise ValueError(f"input {before.shape[:2]} and output {after.shape[:2]} differ in size")
    height, width = before.shape[:2]
    shown = panels(before, after, gain)
    canvas = np.full((LABEL_HEIGHT + height, len(shown) * width + (len(shown) - 1) * GAP, 3), 0.5, np.float32)
    for index, (_, image) in enumerate(shown):
        left = index * (width + GAP)
        canvas[LABEL_HEIGHT:, left:left + width] = np.clip(image, 0.0, 1.0)
    labels = Image.new("L", (canvas.shape[1], LABEL_HEIGHT), 255)
    draw = ImageDraw.Draw(labels)
    for index, (label, _) in enumerate(shown):
        draw.text((index * (width + GAP) + 2, 2), label, fill=0)
    canvas[:LABEL_HEIGHT] = (np.asarray(labels, np.float32) / 255.0)[..., None]
    return canvas
