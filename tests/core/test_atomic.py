"""dagl.atomic: a planted link cannot redirect a write, and a killed writer leaves no temporary file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from dagl.atomic import atomic_path, write_atomic

WRITER = textwrap.dedent("""
    import sys, time
    from dagl.atomic import atomic_path

    with atomic_path(sys.argv[1]) as temp:
        temp.write_bytes(b"half")
        print(temp, flush=True)
        time.sleep(60)
""")


def test_link_planted_at_the_predictable_temp_name_cannot_redirect_the_write(tmp_path, monkeypatch):
    """Even when the attacker knows mkstemp's next name, O_EXCL refuses it and another name is used."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    names = iter(["predicted", "fallback"])
    monkeypatch.setattr(tempfile, "_get_candidate_names", lambda: names)
    planted = tmp_path / ".out.png.predicted.tmp"
    planted.symlink_to(victim)
    for guess in ("out.png.tmp", ".out.png.tmp", "out.png~"):  # names a naive writer would use
        (tmp_path / guess).symlink_to(victim)
    write_atomic(tmp_path / "out.png", b"new image")
    assert victim.read_text() == "precious"
    assert (tmp_path / "out.png").read_bytes() == b"new image" and not (tmp_path / "out.png").is_symlink()
    assert planted.is_symlink() and os.readlink(planted) == str(victim)
    assert not (tmp_path / ".out.png.fallback.tmp").exists()


def test_link_at_the_target_is_replaced_not_written_through(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / "out.png").symlink_to(victim)
    write_atomic(tmp_path / "out.png", b"new image")
    assert victim.read_text() == "precious"
    assert not (tmp_path / "out.png").is_symlink() and (tmp_path / "out.png").read_bytes() == b"new image"


@pytest.mark.parametrize("signum,codes", [(signal.SIGTERM, {143}), (signal.SIGINT, {130, -signal.SIGINT})])
def test_signal_during_a_write_removes_the_temp_file(tmp_path, signum, codes):
    target = tmp_path / "out.png"
    child = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE, text=True,
                             cwd=Path(__file__).resolve().parents[2])
    temp = Path(child.stdout.readline().strip())
    assert temp.parent == tmp_path and temp.name.startswith(".out.png.") and temp.read_bytes() == b"half"
    child.send_signal(signum)
    assert child.wait(timeout=30) in codes
    assert list(tmp_path.glob(".out.png.*.tmp")) == [] and not target.exists()


def test_failed_write_keeps_the_old_file_and_removes_the_temp(tmp_path):
    target = write_atomic(tmp_path / "out.txt", "old")
    with pytest.raises(RuntimeError), atomic_path(target) as temp:
        temp.write_text("partial")
        raise RuntimeError("writer failed")
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]
