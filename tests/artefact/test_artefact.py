"""The artefact format: the engine sidecar round-trips and every malformed one is refused in one line."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from dagl.artefact import (EngineSidecar, SidecarError, declared_metadata, onnx_metadata, sidecar_path)
from dagl.errors import UserInputError
from sidecars import SIDECAR


def test_sidecar_round_trips_through_json(tmp_path):
    engine = tmp_path / "dagl-denoise-fp16.plan"
    written = SIDECAR.write(engine)
    assert written == sidecar_path(engine) == tmp_path / "dagl-denoise-fp16.plan.json"
    raw = json.loads(written.read_text())
    assert raw["max_shape"] == [4, 1, 256, 256] and raw["sigma"] == 25  # plain JSON a person can read
    again = EngineSidecar.read(engine)
    assert again == SIDECAR and again.max_batch == 4 and again.profile.opt == (4, 1, 80, 80)
    assert again.declared() == {"task": "denoise", "channels": 1, "sigma": 25, "precision": "fp16",
                                "weights": SIDECAR.weights}


@pytest.mark.parametrize("content, message", [
    (None, "sidecar x.plan.json is missing"),
    ("{not json", "unreadable sidecar"),
    ("[1, 2]", "expected a JSON object"),
    ('{"task": "jpeg"}', "lacks channels, compute_capability, gpu_name, max_shape"),
])
def test_missing_or_foreign_sidecar_is_refused(tmp_path, content, message):
    engine = tmp_path / "x.plan"
    if content is not None:
        sidecar_path(engine).write_text(content)
    with pytest.raises(SidecarError, match=message) as excinfo:
        EngineSidecar.read(engine)
    assert "\n" not in str(excinfo.value) and isinstance(excinfo.value, UserInputError)


@pytest.mark.parametrize("field, value, message", [
    ("max_shape", [4, 1, 256], "max_shape .* is not four positive integer sizes"),
    ("min_shape", [0, 1, 16, 16], "min_shape .* is not four positive integer sizes"),
    ("channels", "one", "field channels = 'one' is not an integer"),
    ("sigma", [25], r"field sigma = \[25\] is not an integer"),
    ("weights", "trained", "weights is not an object"),
])
def test_malformed_sidecar_fields_are_refused(tmp_path, field, value, message):
    engine = tmp_path / "x.plan"
    SIDECAR.write(engine)
    raw = json.loads(sidecar_path(engine).read_text()) | {field: value}
    sidecar_path(engine).write_text(json.dumps(raw))
    with pytest.raises(SidecarError, match=message):
        EngineSidecar.read(engine)


def test_oversized_sidecar_is_refused_without_parsing(tmp_path):
    engine = tmp_path / "x.plan"
    sidecar_path(engine).write_bytes(b" " * ((1 << 20) + 1))
    with pytest.raises(SidecarError, match="over 1,048,576 bytes, too large for an engine sidecar"):
        EngineSidecar.read(engine)


def test_sidecar_without_sigma_reads_as_none(tmp_path):
    engine = tmp_path / "x.plan"
    replace(SIDECAR, task="jpeg", sigma=None).write(engine)
    assert EngineSidecar.read(engine).sigma is None


def test_onnx_metadata_round_trips_and_ignores_foreign_keys():
    props = onnx_metadata("denoise", 1, "fp32", 15, "RANDOM (seed 0), not trained")
    assert props == {"dagl.task": "denoise", "dagl.channels": "1", "dagl.precision": "fp32",
                     "dagl.weights": "RANDOM (seed 0), not trained", "dagl.sigma": "15"}
    assert declared_metadata(props | {"producer": "someone"}) == {
        "task": "denoise", "channels": 1, "precision": "fp32", "weights": "RANDOM (seed 0), not trained",
        "sigma": 15}
    assert "dagl.sigma" not in onnx_metadata("jpeg", 1, "fp16", None, "ab")
