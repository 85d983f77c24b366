"""Shared, cached artefacts for the runtime tests (imported by test_runtime*/test_infer*/test_bench*).

Exporting the 16-ResBlock CAR network to ONNX takes seconds, so it happens once per session; the
cache is this module's, which every importing test module shares.
"""

from __future__ import annotations

from pathlib import Path

import onnx

import dagl
from dagl.artefact.format import METADATA_PREFIX
from dagl.export.onnx import export_onnx, save_atomic, set_metadata

_CACHE: dict[str, Path] = {}


def add_metadata(path: Path, props: dict[str, str]) -> Path:
    """Stamp ``dagl.*`` metadata_props the way dagl-export does (keys: dagl.artefact.onnx_metadata).

    Takes a subset of the keys on purpose, so tests can build graphs that declare only some facts.
    """
    model = onnx.load(str(path))
    return save_atomic(set_metadata(model, {METADATA_PREFIX + k: v for k, v in props.items()}), path)


def jpeg_onnx(checkpoint: Path, folder: Path) -> Path:
    """ONNX export of the official-format random-weight CAR checkpoint, with dagl metadata."""
    if "jpeg" not in _CACHE:
        path = export_onnx(dagl.load("jpeg", weights=checkpoint), folder / "dagl-jpeg.onnx", channels=1)
        _CACHE["jpeg"] = add_metadata(path, {"task": "jpeg", "channels": "1", "precision": "fp32"})
    return _CACHE["jpeg"]


def test_metadata_is_stamped(tmp_path_factory, official_checkpoint):
    path = jpeg_onnx(official_checkpoint("jpeg"), tmp_path_factory.mktemp("onnx"))
    props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    assert props["dagl.task"] == "jpeg" and props["dagl.channels"] == "1"
