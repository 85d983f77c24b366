"""The held-out split (dagl.train.heldout): 24 BSD400 files never trained on, the default --val, on which
--init and the relay choose weights; the paper's test sets are refused for that choice.

The validation pairs are checked against an independent derivation: the PNG read with Pillow, the centred
crop at even offsets cut here, and Pillow's own JPEG encoder called here (not dagl.tasks.degradations.jpeg_pil).
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import dagl
from dagl.data.datasets import DATASETS
from dagl.tasks.configs import get_config
from dagl.train import TrainConfig, TrainingError
from dagl.train.cli import command, main
from dagl.train.config import HELD_OUT
from dagl.train.data import load_images
from dagl.train.heldout import HELD_OUT_FILES
from dagl.train.validation import load_validation_set

REPO = Path(__file__).resolve().parents[2]
CROP = 96  # --val-crop's default
QUALITIES = (10, 20, 30, 40)  # the CAR qualities of the jpeg task
REFUSAL = ("--init chooses between the starting and the trained weights on --val, and {name} is one of the "
           "paper's test sets, which are for reporting only: validate on --val held-out (the default) or a "
           "folder of your own")


@pytest.fixture(scope="module")
def bsd400(datasets_dir: Path) -> Path:
    return datasets_dir / "train" / "bsd400"


def _centre(image: np.ndarray, size: int) -> np.ndarray:
    """The centred window at even offsets, cut independently of dagl.data.datasets.centre_crop."""
    top, left = ((n - size) // 2 // 2 * 2 for n in image.shape[:2])
    return image[top:top + size, left:left + size]


def _pillow_jpeg(pixels: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())), np.float32) / 255


def test_the_split_is_24_distinct_files_of_bsd400(bsd400):
    names = sorted(HELD_OUT_FILES)
    assert len(names) == len(set(names)) == 24
    assert all((bsd400 / name).is_file() for name in names)
    assert len(os.listdir(bsd400)) == 400  # 6 % held out


def test_training_never_loads_a_held_out_file_and_held_out_loads_only_them(bsd400):
    config = get_config("jpeg")
    every = sorted(os.listdir(bsd400))
    _, _, trained_on = load_images([bsd400], config, patch=16)
    assert [p.name for p in trained_on] == [n for n in every if n not in HELD_OUT_FILES]
    assert len(trained_on) == 376
    clean, twins, held = load_images([bsd400], config, patch=16, held_out=True)
    assert [p.name for p in held] == sorted(HELD_OUT_FILES) and twins is None
    first = np.asarray(Image.open(bsd400 / held[0].name), np.float32) / 255
    np.testing.assert_array_equal(clean[0][..., 0].astype(np.float32) / 65535, first)
    # --n-images cuts what is left after the split, so no limit brings a held-out file back.
    _, _, few = load_images([bsd400], config, patch=16, limit=5)
    assert [p.name for p in few] == [n for n in every if n not in HELD_OUT_FILES][:5]


def test_the_jpeg_pairs_are_reproducible_pillow_encodings_at_every_car_quality(bsd400):
    config = get_config("jpeg")
    first = load_validation_set(HELD_OUT, config, None, CROP, data=[bsd400])
    again = load_validation_set(HELD_OUT, config, None, CROP, data=[bsd400])
    assert len(first) == len(again) == 24 * len(QUALITIES)
    for a, b in zip(first, again):
        assert a.label == b.label
        np.testing.assert_array_equal(a.degraded, b.degraded)
        np.testing.assert_array_equal(a.clean, b.clean)
    expected = []
    for name in sorted(HELD_OUT_FILES):
        pixels = _centre(np.asarray(Image.open(bsd400 / name).convert("L")), CROP)
        expected += [(f"q{q}", _pillow_jpeg(pixels, q), pixels.astype(np.float32) / 255) for q in QUALITIES]
    for item, (label, degraded, clean) in zip(first, expected, strict=True):
        assert item.label == label and item.degraded.shape == item.clean.shape == (CROP, CROP, 1)
        np.testing.assert_array_equal(item.degraded[..., 0], degraded)
        np.testing.assert_array_equal(item.clean[..., 0], clean)


def test_the_denoise_pairs_are_reproducible_and_carry_the_task_noise(bsd400):
    config = get_config("denoise")
    first = load_validation_set(HELD_OUT, config, 25, CROP, data=[bsd400])
    again = load_validation_set(HELD_OUT, config, 25, CROP, data=[bsd400])
    assert len(first) == 24 and {item.label for item in first} == {""}
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a.degraded, b.degraded)
        np.testing.assert_array_equal(a.clean, b.clean)
    for item, name in zip(first, sorted(HELD_OUT_FILES), strict=True):
        pixels = _centre(np.asarray(Image.open(bsd400 / name).convert("L")), CROP)
        np.testing.assert_array_equal(item.clean[..., 0], pixels.astype(np.float32) / 255)
    noise = np.stack([item.degraded - item.clean for item in first]).astype(np.float64)
    # 24 x 96 x 96 samples: the std's standard error is about 0.15 %, the mean's about 2e-4.
    assert noise.std() == pytest.approx(25 / 255, rel=0.01)
    assert abs(noise.mean()) < 1e-3
    assert not np.allclose(noise[0], noise[1])  # each image draws its own noise
    # An image's noise is its own (seeded by its index), whatever --val-limit cuts.
    one = load_validation_set(HELD_OUT, config, 25, CROP, limit=1, data=[bsd400])
    np.testing.assert_array_equal(one[0].degraded, first[0].degraded)


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_init_refuses_a_paper_test_set_as_validation(name):
    with pytest.raises(TrainingError) as refused:
        TrainConfig(task="jpeg", data=[], out=Path("x"), iterations=2, init=Path("w.safetensors"), val=name)
    assert str(refused.value) == REFUSAL.format(name=name)


def test_the_default_is_held_out_and_none_validates_nothing():
    assert TrainConfig(task="jpeg", data=[], out=Path("x"), iterations=2).val == HELD_OUT
    assert TrainConfig(task="jpeg", data=[], out=Path("x"), iterations=2, val="none").val is None
    # Without --init a test set may still be followed during training (reported, never chosen on).
    assert TrainConfig(task="jpeg", data=[], out=Path("x"), iterations=2, val="classic5").val == "classic5"


def test_dagl_train_refuses_init_with_a_test_set_in_one_line(bsd400, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["--task", "jpeg", "--data", str(bsd400), "--iterations", "2", "--out", str(out), "--device", "cpu",
                 "--init", str(REPO / "dagl" / "weights" / "dagl-jpeg.safetensors"), "--val", "classic5"])
    assert code == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"dagl-train: error: {REFUSAL.format(name='classic5')}"]
    assert not out.exists()


def test_help_shows_held_out_as_the_default():
    result = CliRunner().invoke(command, ["--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "--val TEXT" in text and "[default: held-out]" in text


@pytest.mark.slow
def test_data_without_the_held_out_files_is_one_line(bsd400, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    for name in sorted(n for n in os.listdir(bsd400) if n not in HELD_OUT_FILES)[:4]:
        shutil.copyfile(bsd400 / name, data / name)
    out = tmp_path / "run"
    code = main(["--task", "jpeg", "--data", str(data), "--iterations", "1", "--batch-size", "2", "--patch", "16",
                 "--workers", "0", "--device", "cpu", "--val-crop", "16", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines() == [f"dagl-train: error: no held-out files (dagl.train.heldout) in {data}"]
    assert not (out / "checkpoint.pt").exists()


@pytest.mark.slow
def test_a_run_validates_on_the_held_out_split_by_default_and_its_card_says_so(bsd400, tmp_path):
    out = tmp_path / "run"
    assert main(["--task", "jpeg", "--data", str(bsd400), "--iterations", "2", "--batch-size", "2", "--patch", "16",
                 "--n-images", "4", "--workers", "0", "--device", "cpu", "--val-crop", "16", "--val-limit", "1",
                 "--out", str(out)]) == 0
    card = (out / "dagl-jpeg.md").read_text()
    assert "Validation on `held-out` (the 24 training files held out of every run" in card
    # The card's figures, recomputed: the first held-out file's centred 16x16 crop, Pillow-encoded at each
    # CAR quality, through the shipped (FP16-stored) weights; scikit-image's PSNR of the clamped output.
    from skimage.metrics import peak_signal_noise_ratio

    model = dagl.load("jpeg", weights=out / "dagl-jpeg.safetensors")
    pixels = _centre(np.asarray(Image.open(bsd400 / sorted(HELD_OUT_FILES)[0]).convert("L")), 16)
    clean = pixels.astype(np.float32) / 255
    scores = []
    for quality in QUALITIES:
        with torch.no_grad():
            restored = model(torch.from_numpy(_pillow_jpeg(pixels, quality))[None, None])[0, 0].numpy()
        scores.append(peak_signal_noise_ratio(clean, np.clip(restored, 0, 1), data_range=1.0))
        assert f"| q{quality} | {scores[-1]:.2f} |" in card
    assert f"| mean | {np.mean(scores):.2f} |" in card
