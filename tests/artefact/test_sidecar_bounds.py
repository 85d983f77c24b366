"""An engine sidecar is read with bounds: a regular file, at most 1 MiB, JSON at most 32 levels deep;
a FIFO, a device, a deep or huge file is one line (SidecarError), read in bounded time and memory."""

from __future__ import annotations

import os
import subprocess
import sys
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


def test_a_sidecar_of_escaped_quotes_is_measured_in_linear_time(tmp_path):
    """1 MiB of one unclosed string of escaped quotes: a string-matching regex retried it from every
    quote (quadratic, hours at this size, holding the GIL: so the read runs in a child process, whose
    generous hang guard a linear pass meets in about a second)."""
    engine = tmp_path / "x.plan"
    body = '["' + '\\"' * ((1 << 19) - 4)
    sidecar_path(engine).write_text(body)
    assert len(body) < 1 << 20
    code = ("import sys; from pathlib import Path; from dagl.artefact import EngineSidecar, SidecarError\n"
            "try:\n    EngineSidecar.read(Path(sys.argv[1]))\nexcept SidecarError as exc:\n    print(exc)")
    done = subprocess.run([sys.executable, "-c", code, str(engine)], capture_output=True, text=True, timeout=60)
    assert "unreadable sidecar (Unterminated string" in done.stdout
    assert json_depth(body) == 1 and json_depth(body + '"]]]') == 1


def test_json_depth_follows_escapes_inside_strings():
    assert json_depth('["\\\\", [[]]]') == 3  # an escaped backslash does not escape the closing quote
    assert json_depth('["\\"[[[", []]') == 2


@pytest.mark.parametrize(("value", "message"), [
    ("Infinity", "unreadable sidecar (Infinity is not a JSON number)"),
    ("-Infinity", "unreadable sidecar (-Infinity is not a JSON number)"),
    ("NaN", "unreadable sidecar (NaN is not a JSON number)"),
    ("1e400", "max_shape [4, 1, inf, 256] is not four positive integer sizes"),
    ("256.5", "max_shape [4, 1, 256.5, 256] is not four positive integer sizes"),
])
def test_a_sidecar_shape_that_is_not_an_integer_is_one_line(tmp_path, value, message):
    """``Infinity`` in a shape reached ``int()`` as a float: OverflowError's traceback."""
    from sidecars import SIDECAR

    engine = tmp_path / "x.plan"
    SIDECAR.write(engine)
    text = sidecar_path(engine).read_text()
    start = text.index('"max_shape"')
    end = text.index("]", start) + 1
    sidecar_path(engine).write_text(text[:start] + f'"max_shape": [4, 1, {value}, 256]' + text[end:])
    assert message in _refusal(engine)
