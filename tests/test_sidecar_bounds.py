"""An engine sidecar is read with bounds: a regular file, at most 1 MiB, JSON at most 32 levels deep;
a FIFO, a device, a deep or huge file is one line (SidecarError), read in bounded time and memory."""

from __future__ import annotations

import os
import threading

import pytest

from dagl.artefact import EngineSidecar, SidecarError, sidecar_path
from dagl.files import json_depth, loads_bounded, read_small


def _refusal(engine):
    outcome = {}

    def read():
        try:
            EngineSidecar.read(engine)
        except SidecarError as exc:
            outcome["error"] = str(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(30)  # generous hang guard: the reads below finish in milliseconds
    assert not reader.is_alive(), "the sidecar read hung"
    assert "\n" not in outcome["error"]
    return outcome["error"]


def test_deeply_nested_sidecar_is_refused_before_parsing(tmp_path):
    engine = tmp_path / "x.plan"
    sidecar_path(engine).write_text("[" * 100_000 + "]" * 100_000)
    assert "JSON nested 100,000 levels deep (at most 32)" in _refusal(engine)


def test_fifo_sidecar_does_not_block(tmp_path):
    engine = tmp_path / "x.plan"
    os.mkfifo(sidecar_path(engine))
    assert "not a regular file" in _refusal(engine)


def test_device_sidecar_is_not_read(tmp_path):
    engine = tmp_path / "x.plan"
    sidecar_path(engine).symlink_to("/dev/zero")
    assert "not a regular file" in _refusal(engine)


def test_read_small_stops_after_the_limit(tmp_path):
    path = tmp_path / "big"
    path.write_bytes(b"x" * 5000)
    assert read_small(path, 5000) == b"x" * 5000
    with pytest.raises(ValueError, match="over 4,999 bytes, too large for a test"):
        read_small(path, 4999, "a test")


def test_json_depth_ignores_brackets_in_strings():
    assert json_depth('{"a": [1, {"b": "[[[[{{{\\"]]"}]}') == 3
    assert json_depth("3") == 0
    assert loads_bounded('{"a": ["[["]}') == {"a": ["[["]}
    with pytest.raises(ValueError, match="nested 3 levels"):
        loads_bounded("[[[]]]", max_depth=2)
