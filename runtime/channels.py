"""The CLI's side of the channel policy: turn whatever image a user passes into the network's layout, and back.

``Restorer`` takes arrays already shaped for the network; files in the wild are gray, RGB, RGBA,
raw Bayer... This module decides what is accepted silently, what is converted with a note, and
what is refused (:class:`ChannelError`, one line for the user), from the task's
:class:`~dagl.tasks.channels.ChannelPolicy` and the one alpha rule (:func:`dagl.tasks.channels.split_alpha`),
and keeps what the output needs around the network's planes (a colour photo's Cb, Cr; an opaque alpha)
to put back into the output, so a colour photo comes out in colour.

A gray task's colour input has two ways through (``chroma``, :data:`CHROMA_CHOICES`): ``restore`` (the
default) runs the luma and then Cb and Cr through the same gray network, each as a plane of its own at
full resolution as decoded, for three times the network time; ``keep`` restores the luma only and keeps
the decoded Cb, Cr. docs/colour.md measures one against the other on McMaster18.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from dagl import get_config
from dagl.images.colour import rgb_to_ycbcr, ycbcr_to_rgb
from dagl.images.io import has_gray_content
from dagl.tasks.channels import ChannelError, split_alpha

__all__ = ["CHROMA_CHOICES", "DEFAULT_CHROMA", "ChannelError", "NetworkImage", "to_network"]

#: What a gray task does with a colour photo's chroma: ``keep`` the decoded Cb, Cr, or ``restore``
#: them with the network as well (each plane as a gray image; 3x the network time).
CHROMA_CHOICES = ("keep", "restore")
#: ``restore``: it won on every JPEG quality of docs/colour.md's study (McMaster18, Pillow q10-q40, RGB PSNR).
DEFAULT_CHROMA = "restore"


@dataclass
class NetworkImage:
    """An input split into what the network restores and what is carried through unchanged.

    ``array`` goes to ``Restorer``; :meth:`to_file` turns its output back into the input's layout:
    a gray task's colour input gets its chroma (``chroma``: Cb, Cr) back around the restored luma,
    and an opaque ``alpha`` plane is appended again. With ``restore_chroma`` the network restores
    the chroma too: :attr:`planes` lists every array it is run on, and :meth:`restore` runs them all.
    """

    array: np.ndarray
    note: str | None = None
    chroma: np.ndarray | None = None
    alpha: np.ndarray | None = None
    restore_chroma: bool = False

    @property
    def planes(self) -> list[np.ndarray]:
        """The arrays the network restores, in order: ``array``, then Cb and Cr with ``restore_chroma``."""
        if self.restore_chroma and self.chroma is not None:
            return [self.array, np.ascontiguousarray(self.chroma[..., 0]), np.ascontiguousarray(self.chroma[..., 1])]
        return [self.array]

    def restore(self, restorer: Callable[..., np.ndarray], progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Every plane of :attr:`planes` through ``restorer`` (a ``Restorer``), in the input file's channels.

        ``progress`` is passed on to each call, so a bar sized ``len(planes) * restorer.tiles_for(H, W)``
        fills once.
        """
        restored = [restorer(plane, progress=progress) for plane in self.planes]
        return self.to_file(restored[0], np.dstack(restored[1:]) if len(restored) > 1 else None)

    @property
    def file_channels(self) -> int:
        """Channels of the output file: one gray plane, or colour / a mosaic's three, plus an alpha."""
        planes = 3 if self.chroma is not None else (self.array.shape[2] if self.array.ndim == 3 else 1)
        return planes + (self.alpha is not None)

    def to_file(self, restored: np.ndarray, chroma: np.ndarray | None = None) -> np.ndarray:
        """The restored network output in the input file's channels, float32 in [0, 1].

        Colour is rebuilt from the restored Y and the kept Cb, Cr (or ``chroma``, restored ones),
        then clamped to [0, 1] as a JPEG decoder clamps: the kept chroma is the input's exactly
        wherever the result is in gamut.
        """
        out = restored
        if self.chroma is not None:
            kept = self.chroma if chroma is None else chroma
            out = np.clip(ycbcr_to_rgb(np.dstack([restored, kept])), 0.0, 1.0)
        if self.alpha is not None:
            out = np.dstack([out, self.alpha])
        return out.astype(np.float32, copy=False)


def to_network(image: np.ndarray, task: str, chroma: str = DEFAULT_CHROMA) -> NetworkImage:
    """``image`` in the network's layout, with what its output needs to become a file like ``image``.

    ``chroma`` (:data:`CHROMA_CHOICES`) says what a gray task does with a colour image's Cb, Cr:
    ``keep`` them as decoded, or ``restore`` them with the network too; other inputs ignore it.
    """
    if chroma not in CHROMA_CHOICES:
        raise ValueError(f"chroma must be one of {', '.join(CHROMA_CHOICES)}, got {chroma!r}")
    image, alpha = split_alpha(image)
    policy = get_config(task).channel_policy
    if policy.channels == 1:
        if image.ndim == 2:
            return NetworkImage(image, alpha=alpha)
        if has_gray_content(image):  # a gray picture stored as RGB: restored and written as gray
            return NetworkImage(image[..., 0], alpha=alpha)
        ycbcr = rgb_to_ycbcr(image)
        restore = chroma == "restore"
        note = (f"task {task!r} works on gray images: restored the luma and the chroma (BT.601 YCbCr), "
                f"each plane as a gray image" if restore else
                f"task {task!r} works on gray images: restored the luma, kept the colour (BT.601 YCbCr)")
        return NetworkImage(ycbcr[..., 0], note, chroma=ycbcr[..., 1:], alpha=alpha, restore_chroma=restore)
    if image.ndim == 2 and policy.raw_frame is not None:
        return NetworkImage(policy.raw_frame.to_planes(image), policy.raw_frame.note, alpha=alpha)
    if image.ndim == 2:
        raise ChannelError(f"is gray; task {task!r} needs a 3-channel RGB image")
    return NetworkImage(image, alpha=alpha)
