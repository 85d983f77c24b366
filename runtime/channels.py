"""The CLI's channel policy: turn whatever image a user passes into the network's layout.

``Restorer`` takes arrays already shaped for the network; files in the wild are gray, RGB, RGBA,
raw Bayer... This module decides, per task, what is accepted silently, what is converted with a
note, and what is refused (:class:`ChannelError`, one line for the user).
"""

from __future__ import annotations

import numpy as np

from dagl import get_config
from dagl.degradations import raw_to_mosaic
from dagl.errors import UserInputError
from dagl.io import has_gray_content, to_luma


class ChannelError(UserInputError):
    """An image whose channels do not fit the task; the message is one line meant for the user."""


def _drop_alpha(image: np.ndarray) -> np.ndarray:
    """Gray+alpha or RGBA without the alpha; refused unless alpha is fully opaque.

    Transparent pixels have no defined colour to restore (and compositing onto some background
    would invent one), so only images whose alpha carries no information are accepted.
    """
    if image.ndim == 3 and image.shape[2] in (2, 4):
        if float(image[..., -1].min()) < 1.0:
            raise ChannelError("has transparent pixels (alpha < 1); flatten it onto a background first")
        return image[..., :-1]
    return image


def to_network(image: np.ndarray, task: str) -> tuple[np.ndarray, str | None]:
    """(array in the network's layout, a note to show the user or ``None``)."""
    if image.ndim == 3 and image.shape[2] not in (1, 2, 3, 4):
        raise ChannelError(f"has {image.shape[2]} channels; expected gray, RGB or RGBA")
    image = _drop_alpha(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    config = get_config(task)
    if config.channels == 1:
        if image.ndim == 2:
            return image, None
        if has_gray_content(image):
            return image[..., 0], None
        return to_luma(image), f"task {task!r} works on gray images: converted colour to luma (BT.601)"
    if task == "demosaic" and image.ndim == 2:
        return raw_to_mosaic(image), "read as a one-channel GRBG raw frame"
    if image.ndim == 2:
        raise ChannelError(f"is gray; task {task!r} needs a 3-channel RGB image")
    return image, None
