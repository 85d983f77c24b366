"""The CLI's side of the channel policy: turn whatever image a user passes into the network's layout, and back.

``Restorer`` takes arrays already shaped for the network; files in the wild are gray, RGB, RGBA,
raw Bayer... This module decides what is accepted silently, what is converted with a note, and
what is refused (:class:`ChannelError`, one line for the user), from the task's
:class:`~dagl.tasks.channels.ChannelPolicy` and the one alpha rule (:func:`dagl.tasks.channels.split_alpha`),
and keeps what the network does not see (a colour photo's chroma, an opaque alpha) to put back
into the output, so a colour photo comes out in colour.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dagl import get_config
from dagl.images.colour import rgb_to_ycbcr, ycbcr_to_rgb
from dagl.images.io import has_gray_content
from dagl.tasks.channels import ChannelError, split_alpha

__all__ = ["ChannelError", "NetworkImage", "to_network"]


@dataclass
class NetworkImage:
    """An input split into what the network restores and what is carried through unchanged.

    ``array`` goes to ``Restorer``; :meth:`to_file` turns its output back into the input's layout:
    a gray task's colour input gets its chroma (``chroma``: Cb, Cr) back around the restored luma,
    and an opaque ``alpha`` plane is appended again.
    """

    array: np.ndarray
    note: str | None = None
    chroma: np.ndarray | None = None
    alpha: np.ndarray | None = None

    @property
    def file_channels(self) -> int:
        """Channels of the output file: one gray plane, or colour / a mosaic's three, plus an alpha."""
        planes = 3 if self.chroma is not None else (self.array.shape[2] if self.array.ndim == 3 else 1)
        return planes + (self.alpha is not None)

    def to_file(self, restored: np.ndarray) -> np.ndarray:
        """The restored network output in the input file's channels, float32 in [0, 1].

        Colour is rebuilt from the restored Y and the kept Cb, Cr, then clamped to [0, 1] as a
        JPEG decoder clamps: the chroma is the input's exactly wherever the result is in gamut.
        """
        out = restored
        if self.chroma is not None:
            out = np.clip(ycbcr_to_rgb(np.dstack([restored, self.chroma])), 0.0, 1.0)
        if self.alpha is not None:
            out = np.dstack([out, self.alpha])
        return out.astype(np.float32, copy=False)


def to_network(image: np.ndarray, task: str) -> NetworkImage:
    """``image`` in the network's layout, with what its output needs to become a file like ``image``."""
    image, alpha = split_alpha(image)
    policy = get_config(task).channel_policy
    if policy.channels == 1:
        if image.ndim == 2:
            return NetworkImage(image, alpha=alpha)
        if has_gray_content(image):  # a gray picture stored as RGB: restored and written as gray
            return NetworkImage(image[..., 0], alpha=alpha)
        ycbcr = rgb_to_ycbcr(image)
        return NetworkImage(ycbcr[..., 0], f"task {task!r} works on gray images: restored the luma, kept the "
                                           f"colour (BT.601 YCbCr)", chroma=ycbcr[..., 1:], alpha=alpha)
    if image.ndim == 2 and policy.raw_frame is not None:
        return NetworkImage(policy.raw_frame.to_planes(image), policy.raw_frame.note, alpha=alpha)
    if image.ndim == 2:
        raise ChannelError(f"is gray; task {task!r} needs a 3-channel RGB image")
    return NetworkImage(image, alpha=alpha)
