"""ONNX files for the tests: dagl's own export of a network, stamped with ``dagl.*`` metadata as dagl-export does.

The session's shared export of the random-weight jpeg checkpoint is the ``jpeg_onnx`` fixture (conftest.py).
"""

from __future__ import annotations

from pathlib import Path

import onnx

import dagl
from dagl.artefact.format import METADATA_PREFIX
from dagl.export.onnx import export_onnx, save_atomic, set_metadata


def add_metadata(path: Path, props: dict[str, str]) -> Path:
    """Stamp ``dagl.*`` metadata_props the way dagl-export does (keys: dagl.artefact.onnx_metadata).

    Takes a subset of the keys on purpose, so tests can build graphs that declare only some facts.
    """
    model = onnx.load(str(path))
    return save_atomic(set_metadata(model, {METADATA_PREFIX + k: v for k, v in props.items()}), path)


def export_jpeg_onnx(checkpoint: Path, folder: Path) -> Path:
    """``folder/dagl-jpeg.onnx``: the ONNX export of the jpeg ``checkpoint``, with dagl metadata."""
    path = export_onnx(dagl.load("jpeg", weights=checkpoint), folder / "dagl-jpeg.onnx", channels=1)
    return add_metadata(path, {"task": "jpeg", "channels": "1", "precision": "fp32"})
