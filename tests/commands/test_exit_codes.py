"""One exit-code rule (dagl/errors.py), and outputs checked before any work, in every command:
the place a user names is theirs (2); a disk that fills up while writing is a failure while working (1)."""

from __future__ import annotations

import errno
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from crafted import tiny_onnx
from dagl.errors import OutputError, first_line, os_error_exit_code, output_error
from dagl.images.io import ImageWriteError, write_image


@pytest.mark.parametrize(("code", "exit_code"), [(errno.ENOSPC, 1), (errno.EDQUOT, 1), (errno.EIO, 1),
                                                 (errno.EACCES, 2), (errno.EROFS, 2), (errno.ENAMETOOLONG, 2),
                                                 (errno.ENOENT, 2)])
def test_one_rule_for_a_failed_write(code, exit_code):
    exc = OSError(code, "reason")
    assert os_error_exit_code(exc) == exit_code
    error = output_error("out.png", exc)
    assert isinstance(error, OutputError) and error.exit_code == exit_code and str(error) == "out.png: cannot write (reason)"


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_while_writing_an_image_is_a_failure_while_working(tmp_path, monkeypatch):
    monkeypatch.setattr(np, "save", _disk_full)
    with pytest.raises(ImageWriteError) as excinfo:
        write_image(tmp_path / "x.npy", np.zeros((4, 4), np.float32))
    assert excinfo.value.exit_code == 1 and "No space left on device" in str(excinfo.value)
    assert list(tmp_path.iterdir()) == []  # the temporary file is gone too


_SHORT_WRITE = """
import resource, signal, sys
import numpy as np
from dagl.images.io import ImageWriteError, write_image
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))
try:
    write_image(sys.argv[1], np.zeros((256, 256), np.float32), 32)
except ImageWriteError as exc:
    print(exc.exit_code, exc)
"""


@pytest.mark.parametrize("name", ["o.npy", "o.tif"])
def test_a_write_the_filesystem_cuts_short_is_a_failure_while_working(tmp_path, name):
    """A real short write: past the file-size limit the kernel stops a write as on a full disk (EFBIG
    for ENOSPC). numpy's ``tofile``, which np.save and tifffile used, dropped the errno: exit 2."""
    done = subprocess.run([sys.executable, "-c", _SHORT_WRITE, str(tmp_path / name)], capture_output=True,
                          text=True, timeout=120)
    assert done.stdout.strip() == f"1 {tmp_path / name}: cannot write (File too large)", done.stderr
    assert list(tmp_path.iterdir()) == []  # neither the output nor its temporary file


def test_dagl_infer_exits_1_on_a_full_disk(tmp_path, monkeypatch, capsys):
    from dagl.runtime.cli import main

    Image.fromarray(np.full((24, 24), 90, np.uint8)).save(tmp_path / "in.png")
    monkeypatch.setattr(np, "save", _disk_full)
    assert main.run([str(tiny_onnx(tmp_path / "m.onnx")), str(tmp_path / "in.png"), "-o", str(tmp_path / "o.npy"),
                     "--tiling", "none"]) == 1
    assert [line for line in capsys.readouterr().err.splitlines() if "error" in line] == [
        f"dagl-infer: error: {tmp_path / 'o.npy'}: cannot write (No space left on device)"]


def test_a_corrupt_onnx_is_the_users_file(tmp_path, capsys):
    from dagl.runtime.cli import main

    (tmp_path / "bad.onnx").write_bytes(b"\x08\x07garbage that is not protobuf \xff\xff")
    Image.new("L", (16, 16)).save(tmp_path / "in.png")
    assert main.run([str(tmp_path / "bad.onnx"), str(tmp_path / "in.png"), "-o", str(tmp_path / "o.png")]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"dagl-infer: error: {tmp_path / 'bad.onnx'}: not a readable ONNX file")


@pytest.mark.parametrize(("extra", "expected"), [
    (["--plot", "b.xyz"], "b.xyz: cannot write .xyz; use one of .pdf, .png, .svg"),
    (["--plot", "x" * 300 + ".png"], "a name of 304 bytes is over the filesystem's limit of 255"),
    (["--markdown", "FILE/sub/t.md"], "is not a folder)"),
    (["--plot", "FILE/p.png"], "is not a folder)"),
    (["--tile", "4000"], "would need about"),
])
def test_dagl_bench_checks_outputs_and_memory_before_measuring(tmp_path, capsys, monkeypatch, extra, expected):
    from dagl.runtime.bench import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "FILE").write_text("")
    model = tiny_onnx(tmp_path / "m.onnx")
    assert main.run([str(model), "--tile", "16", "--repeats", "1", "--no-plain", *extra]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("dagl-bench: error: ") and expected in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["FILE", "m.onnx"]  # nothing measured, nothing written


def test_dagl_bench_creates_the_markdown_folder(tmp_path, monkeypatch):
    from dagl.runtime.bench import main

    monkeypatch.chdir(tmp_path)
    model = tiny_onnx(tmp_path / "m.onnx")
    assert main.run([str(model), "--tile", "16", "--repeats", "1", "--no-plain", "--plot", "p/b.svg",
                     "--markdown", "new/t.md"]) == 0
    assert (tmp_path / "new" / "t.md").read_text().startswith("| path | backend |")
    assert (tmp_path / "p" / "b.svg").read_text().lstrip().startswith("<?xml")


def test_dagl_export_checks_its_output_folder_first(tmp_path):
    import dagl.export.cli

    (tmp_path / "FILE").write_text("")
    result = CliRunner().invoke(dagl.export.cli.main, ["--task", "jpeg", "--weights", "random", "--onnx-only",
                                                       "--output-dir", str(tmp_path / "FILE" / "out")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr.strip().splitlines() == [
        f"dagl-export: error: cannot create output folder {tmp_path / 'FILE' / 'out'} ({tmp_path / 'FILE'} is not a folder)"]


def test_dagl_infer_refuses_a_name_over_the_filesystem_limit(tmp_path, capsys):
    """-o with a 304-byte file name: one line, exit 2, before the model loads (was ENAMETOOLONG's traceback)."""
    from dagl.runtime.cli import main

    Image.new("L", (16, 16)).save(tmp_path / "in.png")
    model = str(tiny_onnx(tmp_path / "m.onnx"))
    assert main.run([model, str(tmp_path / "in.png"), "-o", str(tmp_path / ("y" * 300 + ".png"))]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("dagl-infer: error: yyyyy") and "a name of 304 bytes is over the filesystem's limit" in line


def test_an_onnx_runtime_failure_while_running_is_one_line_exit_1(tmp_path, capsys):
    """A graph that loads but fails on the input (ORT's RuntimeException from a Reshape, as a Tile or
    Expand past the memory would): was a traceback."""
    from dagl.runtime.cli import main

    Image.new("L", (16, 16)).save(tmp_path / "in.png")
    model = str(tiny_onnx(tmp_path / "m.onnx", "reshape-by-7"))
    assert main.run([model, str(tmp_path / "in.png"), "-o", str(tmp_path / "o.png"), "--tiling", "none"]) == 1
    [line] = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert line.startswith(f"dagl-infer: error: {tmp_path / 'in.png'}: ONNX Runtime failed running m.onnx on a "
                           f"batch of shape [1, 1, 16, 16] (") and "Reshape" in line
    assert not (tmp_path / "o.png").exists()


@pytest.mark.parametrize("where", ["input", "input path", "model", "reference"])
def test_names_the_system_will_not_look_up_are_one_line_exit_2(tmp_path, capsys, where):
    """A 304-byte name (over NAME_MAX) or a 5,000-byte path (over PATH_MAX): exists() raised ENAMETOOLONG's
    traceback."""
    from dagl.runtime.cli import main

    Image.new("L", (16, 16)).save(tmp_path / "in.png")
    model, image = str(tiny_onnx(tmp_path / "m.onnx")), str(tmp_path / "in.png")
    long_name = str(tmp_path / ("a" * 300 + ".png"))
    long_path = "/".join(["b" * 250] * 20) + "/x.png"
    args = {"input": [model, long_name], "input path": [model, long_path], "model": [long_name + ".onnx", image],
            "reference": [model, image, "--reference", long_name]}[where]
    assert main.run([*args, "-o", str(tmp_path / "out") + "/"]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("dagl-infer: error: ") and ": File name too long (" in line and len(line) < 250
    assert not (tmp_path / "out").exists()


def test_read_image_refuses_a_name_over_the_limit_as_the_users(tmp_path):
    from dagl.images.io import ImageReadError, read_image

    with pytest.raises(ImageReadError, match=r"\.\.\.a+\.png: File name too long \([0-9]+ bytes\)") as excinfo:
        read_image(tmp_path / ("a" * 300 + ".png"))
    assert excinfo.value.exit_code == 2


@pytest.mark.parametrize(("exc", "line"), [
    (RuntimeError("\n  [ERROR] cannot open model.xml\n  at line 12 of core.cpp\n"), "[ERROR] cannot open model.xml"),
    (ValueError(""), "ValueError"),
    (EOFError(), "EOFError"),
])
def test_a_library_error_of_pages_is_cut_to_its_first_line(exc, line):
    assert first_line(exc) == line
