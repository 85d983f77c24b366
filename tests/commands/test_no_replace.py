"""The final write itself refuses to replace a file without --overwrite, so two concurrent runs on one
output cannot both succeed: the existence check at planning is not the only guard."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from crafted import tiny_onnx
from dagl.atomic import write_atomic
from dagl.images.io import ImageWriteError, write_image


def _left(folder):
    return sorted(p.name for p in folder.iterdir())


def test_no_replace_write_keeps_the_file_that_won(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("first writer")
    with pytest.raises(FileExistsError):
        write_atomic(target, "second writer", replace=False)
    assert target.read_text() == "first writer" and _left(tmp_path) == ["out.txt"]  # no temporary file left
    write_atomic(tmp_path / "new.txt", "only writer", replace=False)
    assert (tmp_path / "new.txt").read_text() == "only writer"


def test_no_replace_without_hard_links_claims_the_name_exclusively(tmp_path, monkeypatch):
    def no_links(*args, **kwargs):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    write_atomic(tmp_path / "a.txt", "written", replace=False)
    assert (tmp_path / "a.txt").read_text() == "written"
    with pytest.raises(FileExistsError):
        write_atomic(tmp_path / "a.txt", "again", replace=False)
    assert (tmp_path / "a.txt").read_text() == "written" and _left(tmp_path) == ["a.txt"]


def test_write_image_without_overwrite_is_one_line(tmp_path):
    target = tmp_path / "x.png"
    Image.new("L", (4, 4), 7).save(target)
    with pytest.raises(ImageWriteError, match="appeared while this image was restored .* without --overwrite"):
        write_image(target, np.zeros((4, 4), np.float32), overwrite=False)
    assert np.asarray(Image.open(target)).max() == 7
    write_image(target, np.zeros((4, 4), np.float32))  # the library default replaces, as before
    assert np.asarray(Image.open(target)).max() == 0


def test_dagl_infer_does_not_replace_an_output_another_run_wrote_meanwhile(tmp_path, capsys, monkeypatch):
    from dagl.runtime.cli import main
    from dagl.runtime.onnxrt import OnnxRuntimeRunner

    model = tiny_onnx(tmp_path / "m.onnx")
    Image.fromarray(np.full((24, 24), 90, np.uint8)).save(tmp_path / "in.png")
    target = tmp_path / "out" / "in.png"
    real = OnnxRuntimeRunner.infer_impl

    def other_run_writes_first(self, batch):
        target.parent.mkdir(exist_ok=True)
        Image.new("L", (24, 24), 3).save(target)  # the concurrent run's output, after our planning
        return real(self, batch)

    monkeypatch.setattr(OnnxRuntimeRunner, "infer_impl", other_run_writes_first)
    assert main.run([str(model), str(tmp_path / "in.png"), "-o", str(tmp_path / "out"), "--tiling", "none"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1 and "appeared while this image was restored" in errors[0]
    assert np.asarray(Image.open(target)).max() == 3 and _left(target.parent) == ["in.png"]
