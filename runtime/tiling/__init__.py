"""Tiling policies: how an image is split into network calls and the outputs put back together.

GFAM attends from every query to every pixel of its input, so a tile's cost grows with the
square of its area: a whole image is never run as one tile unless asked (``none``). Each policy
is one module of this package (``grid.py``, ``recursive_chop.py``, ``whole.py``) holding one
:class:`TilingPolicy` registered with :func:`register_tiling`; every module here is imported
below, so a new policy is one new file, and ``Restorer``, its memory bound and every ``--tiling``
option see it.

A policy's ``run`` takes ``infer``: (N, C, h, w) float32 -> same, e.g. a runner's ``infer``,
optionally wrapped by :func:`dagl.runtime.ensemble.ensemble`.
"""

from __future__ import annotations

import importlib
import pkgutil

from .base import (TILINGS, PeakTile, Progress, TileFn, TileOptions, TilingError, TilingPolicy, chunked, get_tiling,
                   register_tiling, tilings_help)

for _module in pkgutil.iter_modules(__path__):  # sorted by file name: the order --tiling lists them
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["TILINGS", "PeakTile", "Progress", "TileFn", "TileOptions", "TilingError", "TilingPolicy", "chunked",
           "get_tiling", "register_tiling", "tilings_help"]
