"""A task's channel policy: which image files its network takes, and the one alpha rule.

Every reader of image files (``dagl-infer``, the test sets, training data, calibration crops)
first applies :func:`split_alpha`, so an alpha plane means the same everywhere: accepted only when
fully opaque (it then carries no information and is set aside; ``dagl-infer`` puts it back into the
output), refused otherwise, because transparent pixels have no defined colour to restore and
compositing onto some background would invent one.

What then differs per task is on its :class:`~dagl.tasks.configs.TaskConfig`: a :class:`ChannelPolicy`
(the network's planes, and a one-plane raw frame it may also take). How a colour file reaches a
gray network is the reader's choice, on purpose: ``dagl-infer`` restores the luma and the chroma,
each as a gray plane (``--chroma keep``: the luma only), training converts to luma, evaluation refuses
(a silent conversion would change the numbers).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import UserInputError


class ChannelError(UserInputError):
    """An image whose channels do not fit the task; one line, which callers prefix with the file."""


def split_alpha(image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(H, W[, C]) as (planes, alpha or None): (H, W) gray or (H, W, 3); an opaque alpha split off.

    Gray+alpha and RGBA lose their last plane, which must be fully opaque; (H, W, 1) becomes (H, W);
    anything but 1 to 4 channels is refused.
    """
    if image.ndim == 3 and image.shape[2] not in (1, 2, 3, 4):
        raise ChannelError(f"has {image.shape[2]} channels; expected gray, RGB or RGBA")
    alpha = None
    if image.ndim == 3 and image.shape[2] in (2, 4):
        image, alpha = image[..., :-1], image[..., -1]
        if float(alpha.min()) < 1.0:
            raise ChannelError("has transparent pixels (alpha < 1); flatten it onto a background first")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    return image, alpha


@dataclass(frozen=True)
class RawFrame:
    """A one-plane sensor frame a colour task also takes, and how it becomes the network's planes."""

    #: (H, W) -> (H, W, 3) network input.
    to_planes: Callable[[np.ndarray], np.ndarray]
    #: Said to the user when a file is read this way.
    note: str


@dataclass(frozen=True)
class ChannelPolicy:
    """The planes a task's network takes (1: gray, 3: colour) and what else its readers accept."""

    channels: int
    #: A one-plane file this colour task takes as a raw frame (demosaic); None: gray files are refused.
    raw_frame: RawFrame | None = None
