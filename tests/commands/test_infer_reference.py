"""``dagl-infer --reference``: the PSNR gain it prints is scikit-image's, and the shipped jpeg weights gain."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio

from dagl.images.io import read_image, write_image

INFER = str(Path(sys.executable).parent / "dagl-infer")
LINE = re.compile(r"dagl-infer: (\S+): PSNR ([\d.]+) -> ([\d.]+) dB against (\S+) \(([+-][\d.]+) dB\)")


@pytest.fixture
def barbara_crop(datasets_dir, tmp_path):
    """A 64x64 corner of Classic5 barbara: the stored MATLAB q10 JPEG (one of its identical channels) and the clean."""
    jpeg = read_image(datasets_dir / "classic5" / "jpeg_q10" / "barbara.jpeg")
    clean = read_image(datasets_dir / "classic5" / "barbara.bmp")
    return (write_image(tmp_path / "barbara.png", jpeg[:64, :64, 0]),
            write_image(tmp_path / "clean.png", clean[:64, :64]))


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([INFER, *args], capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_the_printed_gain_is_scikit_images_psnr_of_the_written_output(barbara_crop, official_checkpoint, tmp_path):
    degraded, clean = barbara_crop
    out = tmp_path / "out.npy"
    done = run(str(official_checkpoint("jpeg")), "--task", "jpeg", str(degraded), "-o", str(out),
               "--reference", str(clean), "--device", "cpu")
    assert done.returncode == 0, done.stderr
    [(name, before, after, against, gain)] = LINE.findall(done.stderr)
    truth = read_image(clean).astype(np.float64)
    expected_before = peak_signal_noise_ratio(truth, read_image(degraded).astype(np.float64), data_range=1)
    expected_after = peak_signal_noise_ratio(truth, np.clip(np.load(out), 0, 1).astype(np.float64), data_range=1)
    assert (name, against) == ("barbara.png", "clean.png")
    assert float(before) == pytest.approx(expected_before, abs=0.006)
    assert float(after) == pytest.approx(expected_after, abs=0.006)
    assert float(gain) == pytest.approx(expected_after - expected_before, abs=0.011)


@pytest.mark.slow
def test_the_shipped_jpeg_weights_remove_artifacts(barbara_crop, tmp_path):
    """MODEL ``jpeg`` takes the shipped weights: trained ones raise PSNR on a real MATLAB q10 JPEG
    (random weights would lose tens of dB)."""
    degraded, clean = barbara_crop
    done = run("jpeg", str(degraded), "-o", str(tmp_path / "out.png"), "--reference", str(clean), "--device", "cpu")
    assert done.returncode == 0, done.stderr
    [(_, before, after, _, _)] = LINE.findall(done.stderr)
    assert float(after) > float(before) + 0.1


def test_one_reference_file_for_several_inputs_is_refused_in_one_line(barbara_crop, official_checkpoint, tmp_path):
    degraded, clean = barbara_crop
    done = run(str(official_checkpoint("jpeg")), "--task", "jpeg", str(degraded), str(clean), "-o", str(tmp_path / "out"),
               "--reference", str(clean))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("dagl-infer: error: --reference")


def test_a_reference_of_another_size_is_refused_before_any_work(barbara_crop, official_checkpoint, tmp_path):
    degraded, _ = barbara_crop
    other = write_image(tmp_path / "small.png", np.zeros((32, 48), np.float32))
    out = tmp_path / "out.png"
    done = run(str(official_checkpoint("jpeg")), "--task", "jpeg", str(degraded), "-o", str(out),
               "--reference", str(other))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "does not match the image (64x64)" in done.stderr and not out.exists()
