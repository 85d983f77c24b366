"""The session's shared ONNX export (the ``jpeg_onnx`` fixture) is what the runtime tests take it for."""

from __future__ import annotations

import onnx


def test_the_shared_export_is_stamped_as_dagl_export_stamps(jpeg_onnx):
    props = {p.key: p.value for p in onnx.load(str(jpeg_onnx), load_external_data=False).metadata_props}
    assert props["dagl.task"] == "jpeg" and props["dagl.channels"] == "1" and props["dagl.precision"] == "fp32"
