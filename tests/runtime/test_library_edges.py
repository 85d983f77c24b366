"""Library edges: NaN never written as an image, tiny and empty arrays refused by Restorer, a 16-bit
colour PNG refused before inference, -o with a trailing slash is a folder, SIGTERM during dagl-export
leaves no temporary folder."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest
from PIL import Image

from crafted import tiny_onnx
from dagl.images.io import ImageWriteError, check_writable, write_image


@pytest.mark.parametrize("suffix", [".png", ".tif", ".npy"])
def test_nan_is_never_written_as_an_image(tmp_path, suffix):
    array = np.full((8, 8), np.nan, np.float32)
    with pytest.raises(ImageWriteError, match="holds 64 NaN or infinite sample"):
        write_image(tmp_path / f"x{suffix}", array, 32 if suffix != ".png" else 8)
    assert list(tmp_path.iterdir()) == []


def test_sixteen_bit_colour_png_is_known_unwritable_from_the_channels():
    with pytest.raises(ImageWriteError, match="16-bit colour PNG is not supported"):
        check_writable("x.png", 16, channels=3)
    assert check_writable("x.png", 16, channels=1) == 16 and check_writable("x.tif", 16, channels=3) == 16


def test_dagl_infer_refuses_a_16_bit_colour_png_before_inference(tmp_path, capsys, monkeypatch):
    from dagl.runtime.cli import main
    from dagl.runtime.onnxrt import OnnxRuntimeRunner

    def never(self, batch):
        raise AssertionError("inference ran")

    monkeypatch.setattr(OnnxRuntimeRunner, "infer_impl", never)
    model = tiny_onnx(tmp_path / "rgb.onnx", metadata={"dagl.task": "real-denoise"}, channels=3)
    Image.fromarray(np.full((16, 16, 3), 80, np.uint8)).save(tmp_path / "in.png")
    code = main.run([str(model), str(tmp_path / "in.png"), "-o", str(tmp_path / "o.png"), "--bit-depth", "16"])
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert code == 2 and errors == [f"dagl-infer: error: {tmp_path / 'in.png'}: {tmp_path / 'o.png'}: "
                                    f"16-bit colour PNG is not supported; write a .tif instead"]


def test_output_with_a_trailing_slash_is_a_folder(tmp_path, monkeypatch):
    from dagl.runtime.cli import main

    monkeypatch.chdir(tmp_path)
    Image.fromarray(np.full((16, 16), 80, np.uint8)).save(tmp_path / "in.png")
    assert main.run([str(tiny_onnx(tmp_path / "m.onnx")), "in.png", "-o", "out/v1.0/"]) == 0
    assert (tmp_path / "out" / "v1.0" / "in.png").is_file()


def test_sigterm_during_dagl_export_leaves_no_temporary_folder(tmp_path, monkeypatch):
    import dagl.export.cli
    import dagl.export.onnx

    def export_then_terminated(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)

    # The command imports the exporter in its body (a fast --help): patch it where it is looked up then.
    monkeypatch.setattr(dagl.export.onnx, "export_onnx", export_then_terminated)
    out = tmp_path / "out"
    code = dagl.export.cli.main.run(["--task", "jpeg", "--weights", "random", "--onnx-only", "--output-dir", str(out)])
    assert code == 143
    assert sorted(p.name for p in out.iterdir()) == []  # no hidden .dagl-export-* folder, no partial file
