"""The scripts in tools/ run end to end on tiny inputs (their full runs take minutes to hours)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import chroma_study
import draw_architecture  # tools/ is on pytest's pythonpath
import tiling_study

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_tiling_study_runs_through_the_restorer_and_writes_its_plot(datasets_dir, tmp_path):
    image = datasets_dir / "classic5" / "jpeg_q10" / "lena.jpeg"
    plot = tmp_path / "tradeoff.png"
    result = CliRunner().invoke(tiling_study.main, ["--image", str(image), "--crop", "48", "--config", "32/8",
                                                    "--weights", "random", "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    [row] = [line for line in result.output.splitlines() if line.startswith("| 32 | 8 |")]
    assert row.split("|")[3].strip() == "4"  # a 48x48 crop takes 2x2 tiles of 32 with overlap 8
    assert plot.read_bytes()[:8] == PNG


def test_architecture_drawing_is_a_png(tmp_path):
    result = CliRunner().invoke(draw_architecture.main, ["--output", str(tmp_path / "a.png")])
    assert result.exit_code == 0 and (tmp_path / "a.png").read_bytes()[:8] == PNG


def test_chroma_study_psnr_is_scikit_images_and_its_crop_keeps_the_jpeg_grid():
    from skimage.metrics import peak_signal_noise_ratio

    rng = np.random.default_rng(0)
    clean = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
    noisy = np.clip(clean.astype(int) + rng.integers(-9, 10, clean.shape), 0, 255).astype(np.uint8)
    assert chroma_study.rgb_psnr(noisy, clean) == pytest.approx(peak_signal_noise_ratio(clean, noisy, data_range=255),
                                                                abs=1e-9)
    rows, cols = chroma_study.centred_crop(500, 500, (80, 144))
    assert (rows.start, rows.stop, cols.start, cols.stop) == (208, 288, 176, 320)  # corner on the 16-pixel MCUs
    assert chroma_study.parse_crop("80x144") == (80, 144) and chroma_study.parse_crop("128") == (128, 128)
    assert chroma_study.parse_crop("0") is None


def test_chroma_study_runs_both_paths_through_the_restorer(tmp_path):
    from crafted import tiny_onnx

    folder = tmp_path / "clean"
    folder.mkdir()
    y, x = np.mgrid[0:48, 0:64] / 64
    for name, phase in (("a.png", 0.0), ("b.png", 1.0)):
        rgb = np.dstack([0.2 + 0.6 * x, 0.5 + 0.4 * np.sin(6 * y + phase), 0.7 - 0.5 * x * y])
        Image.fromarray(np.uint8(rgb * 255 + 0.5)).save(folder / name)
    model = tiny_onnx(tmp_path / "identity.onnx", "identity")  # an identity "network": both paths give the JPEG back
    log = tmp_path / "study.jsonl"
    args = ["--images", str(folder), "--quality", "10", "--quality", "40", "--crop", "32x48", "--model", str(model),
            "--log", str(log), "--table", str(tmp_path / "table.md")]
    result = CliRunner().invoke(chroma_study.main, args)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(rows) == 4 and {r["crop"] for r in rows} == {"32x48"} and all(r["size"] == [32, 48] for r in rows)
    for r in rows:
        assert r["keep"] == pytest.approx(r["jpeg"], abs=1e-9) and r["restore"] == pytest.approx(r["jpeg"], abs=1e-9)
        assert r["restore_cpu_s"] >= r["keep_cpu_s"] > 0
    table = (tmp_path / "table.md").read_text()
    assert "| 10 | 2 |" in table and "| 40 | 2 |" in table and "| 0/2 |" in table and "| a.png |" in table
    again = CliRunner().invoke(chroma_study.main, args)  # everything is in the log: nothing runs again
    assert again.exit_code == 0 and len(log.read_text().splitlines()) == 4 and again.output.count("| a.png |") == 2
