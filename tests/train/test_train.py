"""dagl-train on CPU at a tiny size: data pipeline, learning, exact resume, CLI and shipped files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import dagl
from dagl.tasks.configs import get_config
from dagl.tasks.degradations import grbg_mask, jpeg_pil
from dagl.train import Trainer, TrainingError, distributed
from dagl.train.cli import main
from dagl.train.data import EpochKeySampler, TrainingPairs, augment, load_images
from tiny_training import tiny


@pytest.fixture(scope="module")
def bsd400(datasets_dir: Path) -> Path:
    return datasets_dir / "train" / "bsd400"


def write_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


# ---- data ------------------------------------------------------------------------------------
def test_the_eight_transforms_are_the_symmetries_of_the_square():
    image = np.arange(12, dtype=np.float32).reshape(3, 4)
    got = {augment(image, t).tobytes() for t in range(8)}
    expected = {np.rot90(a, k).tobytes() for a in (image, np.fliplr(image)) for k in range(4)}
    assert got == expected and len(got) == 8


def test_denoise_samples_are_keyed_and_carry_the_task_noise(bsd400):
    config = get_config("denoise")
    clean, _, _ = load_images([bsd400], config, patch=64, limit=2)
    data = TrainingPairs(clean, None, config, sigma=25, patch=64, seed=3)
    noisy, target = data[(0, 5)]
    again, _ = data[(0, 5)]
    assert noisy.shape == target.shape == (1, 64, 64)
    assert torch.equal(noisy, again)  # same key, same sample, whichever worker makes it
    assert not torch.equal(data[(1, 5)][1], target)  # another epoch, another crop
    std = float((noisy - target).std()) * 255
    assert abs(std - 25) < 1.5
    assert float(target.min()) >= 0 and float(target.max()) <= 1


def test_jpeg_samples_are_pillow_encodings_at_the_car_qualities(bsd400):
    config = get_config("jpeg")
    clean, _, _ = load_images([bsd400], config, patch=32, limit=3)
    data = TrainingPairs(clean, None, config, sigma=None, patch=32, seed=0)
    seen = set()
    for position in range(24):
        degraded, target = data[(0, position)]
        matches = [q for q in config.qualities
                   if np.array_equal(jpeg_pil(target[0].numpy(), q), degraded[0].numpy())]
        assert len(matches) >= 1
        seen.update(matches)
    assert seen == set(config.qualities)


def test_demosaic_samples_keep_the_grbg_phase_after_flips(tmp_path):
    rng = np.random.default_rng(0)
    write_png(tmp_path / "rgb" / "a.png", rng.integers(0, 256, (40, 36, 3), dtype=np.uint8))
    config = get_config("demosaic")
    clean, _, _ = load_images([tmp_path / "rgb"], config, patch=16)
    data = TrainingPairs(clean, None, config, sigma=None, patch=16, seed=0)
    for position in range(8):
        mosaic, target = data[(0, position)]
        expected = target.permute(1, 2, 0).numpy() * grbg_mask(16, 16)
        np.testing.assert_array_equal(mosaic.permute(1, 2, 0).numpy(), expected)


def test_real_denoise_pairs_share_crop_and_transform(tmp_path):
    rng = np.random.default_rng(1)
    for name in ("a.png", "b.png"):
        image = rng.integers(0, 256, (30, 34, 3), dtype=np.uint8)
        write_png(tmp_path / "sidd" / "clean" / name, image)
        write_png(tmp_path / "sidd" / "noisy" / name, image // 2)
    config = get_config("real-denoise")
    clean, noisy, _ = load_images([tmp_path / "sidd"], config, patch=16)
    data = TrainingPairs(clean, noisy, config, sigma=None, patch=16, seed=0)
    for position in range(6):
        degraded, target = data[(0, position)]
        np.testing.assert_array_equal(np.round(degraded.numpy() * 255),
                                      np.round(target.numpy() * 255) // 2)


def test_real_denoise_without_pairs_is_refused(tmp_path):
    write_png(tmp_path / "only" / "a.png", np.zeros((20, 20, 3), np.uint8))
    with pytest.raises(TrainingError, match="clean/ and noisy/"):
        load_images([tmp_path / "only"], get_config("real-denoise"), patch=16)


def test_ranks_together_see_the_single_process_batches_and_resume_skips_exactly():
    def keys(sampler, n):
        it = iter(sampler)
        return [[next(it) for _ in range(sampler.per_rank_batch)] for _ in range(n)]

    single = keys(EpochKeySampler(3, 4, rank=0, world_size=1, seed=7), 7)  # crosses 2 epochs
    ranks = [keys(EpochKeySampler(3, 4, rank=r, world_size=2, seed=7), 7) for r in range(2)]
    for step in range(7):
        assert sorted(single[step]) == sorted(ranks[0][step] + ranks[1][step])
    assert keys(EpochKeySampler(3, 4, 0, 1, seed=7, start_iteration=4), 3) == single[4:7]


# ---- learning and resume ---------------------------------------------------------------------
@pytest.mark.slow
def test_loss_goes_down_on_a_fixed_batch(tmp_path, bsd400):
    trainer = Trainer(tiny(tmp_path, bsd400, iterations=20), distributed.setup("cpu"))
    noisy, clean = next(trainer.batches())
    losses = [trainer.train_step(noisy, clean) for _ in range(20)]
    identity = float(((noisy - clean) ** 2).mean())
    assert losses[-1] < losses[0] / 5
    assert losses[-1] < identity  # it denoises, not merely undoes its random initialisation


@pytest.mark.slow
def test_resume_continues_with_the_same_losses(tmp_path, bsd400):
    ctx = distributed.setup("cpu")
    # lr_step=1 makes the schedule change every step, so a lost scheduler state would show.
    straight = Trainer(tiny(tmp_path / "a", bsd400, iterations=4, lr_step=1), ctx)
    straight.fit()
    first = Trainer(tiny(tmp_path / "b", bsd400, iterations=2, lr_step=1), ctx)
    first.fit()
    resumed = Trainer(tiny(tmp_path / "b", bsd400, iterations=4, lr_step=1, resume=True), ctx)
    assert resumed.iteration == 2
    resumed.fit()
    assert first.losses == straight.losses[:2]
    assert resumed.losses == straight.losses[2:]  # bit-exact
    assert resumed.scheduler.get_last_lr() == straight.scheduler.get_last_lr()


def test_resume_refuses_a_checkpoint_of_another_run(tmp_path, bsd400):
    ctx = distributed.setup("cpu")
    Trainer(tiny(tmp_path, bsd400, iterations=1), ctx).fit()
    with pytest.raises(TrainingError, match="seed"):
        Trainer(tiny(tmp_path, bsd400, iterations=2, seed=1, resume=True), ctx)
    with pytest.raises(TrainingError, match="--resume"):
        Trainer(tiny(tmp_path, bsd400, iterations=2), ctx)


class _WritesMarker:
    """Unpickling this calls ``open(marker, "w")``: what a crafted checkpoint could do instead."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


@pytest.mark.slow
def test_resume_refuses_a_checkpoint_that_would_run_code_when_unpickled(tmp_path, bsd400, capsys):
    ctx = distributed.setup("cpu")
    Trainer(tiny(tmp_path, bsd400, iterations=1), ctx).fit()
    path = tmp_path / "checkpoint.pt"
    state = torch.load(path, weights_only=True)  # a genuine checkpoint loads without full unpickling
    assert state["iteration"] == 1
    marker = tmp_path / "pwned"
    state["payload"] = _WritesMarker(marker)
    torch.save(state, path)
    with pytest.raises(TrainingError, match="refused .*could run code"):
        Trainer(tiny(tmp_path, bsd400, iterations=2, resume=True), ctx)
    args = ["--task", "denoise", "--sigma", "25", "--data", str(bsd400), "--iterations", "2", "--batch-size", "2",
            "--patch", "16", "--n-images", "4", "--workers", "0", "--val-crop", "16", "--val-limit", "1",
            "--out", str(tmp_path), "--resume"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "refused" in err
    assert not marker.exists()


# ---- command line ----------------------------------------------------------------------------
def test_help_of_the_installed_command():
    result = subprocess.run([sys.executable, "-m", "dagl.train.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    assert "--iterations" in result.stdout and "torchrun" in result.stdout


@pytest.mark.parametrize("args, message", [
    (["--task", "denoise", "--sigma", "25", "--iterations", "2", "--data", "/no/such/dir"], "not found"),
    (["--task", "demosaic", "--iterations", "2", "--data", "BSD400"], "RGB"),
    (["--task", "denoise", "--iterations", "2", "--data", "BSD400"], "--sigma"),
    (["--task", "denoise", "--sigma", "30", "--iterations", "2", "--data", "BSD400"], "sigma 30"),
    (["--task", "jpeg", "--sigma", "25", "--iterations", "2", "--data", "BSD400"], "--sigma"),
    (["--task", "blur", "--iterations", "2", "--data", "BSD400"], "blur"),
    (["--task", "jpeg", "--iterations", "2", "--data", "BSD400", "--val", "set99"], "set99"),
    (["--task", "jpeg", "--iterations", "2", "--data", "BSD400", "--val", "set12"], "denoise test set"),
])
def test_bad_arguments_give_one_line_and_a_nonzero_exit(args, message, bsd400, tmp_path, capsys):
    args = [str(bsd400) if a == "BSD400" else a for a in args] + ["--out", str(tmp_path), "--workers", "0",
                                                                  "--batch-size", "2", "--val-crop", "16"]
    assert main(args) != 0  # (the default 32 crops of 64 px would be refused first on a CPU: about 20 GiB)
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("dagl-train: error:") and message in err
    assert not (tmp_path / "checkpoint.pt").exists()


@pytest.mark.slow
def test_a_two_iteration_run_writes_what_ships(tmp_path, bsd400, capsys):
    out = tmp_path / "run"
    args = ["--task", "jpeg", "--data", str(bsd400), "--iterations", "2", "--batch-size", "2", "--patch", "16",
            "--n-images", "4", "--workers", "1", "--out", str(out), "--val", "classic5", "--val-crop", "16",
            "--log-every", "1"]
    assert main(args) == 0
    weights = out / "dagl-jpeg.safetensors"
    assert {p.name for p in out.iterdir()} == {"checkpoint.pt", "train.log", weights.name, "dagl-jpeg.md"}
    model = dagl.load("jpeg", weights=weights)
    trained = torch.load(out / "checkpoint.pt", weights_only=True)["model"]
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, trained[key].half().float(), rtol=0, atol=0)
    card = (out / "dagl-jpeg.md").read_text()
    for fact in ("Iterations: 2", "Pillow", "{10,20,30,40}", "CPU", "classic5", "| mean |", "Wall time"):
        assert fact in card
    # The card's PSNR, recomputed independently: the stored MATLAB JPEGs (q10) of Classic5, the
    # centred 16x16 crop, scikit-image's PSNR of the clamped output of the reloaded weights.
    from skimage.metrics import peak_signal_noise_ratio

    scores = []
    classic5 = bsd400.parents[1] / "classic5"
    for path in sorted(classic5.glob("*.bmp")):
        clean = np.asarray(Image.open(path).convert("L"), np.float32) / 255
        jpeg = np.asarray(Image.open(classic5 / "jpeg_q10" / f"{path.stem}.jpeg"), np.float32)[..., 0] / 255
        top, left = ((n - 16) // 2 // 2 * 2 for n in clean.shape)
        with torch.no_grad():
            restored = model(torch.from_numpy(jpeg[top:top + 16, left:left + 16].copy())[None, None])[0, 0]
        scores.append(peak_signal_noise_ratio(clean[top:top + 16, left:left + 16],
                                              np.clip(restored.numpy(), 0, 1), data_range=1.0))
    assert f"| q10 | {np.mean(scores):.2f} |" in card
    log = (out / "train.log").read_text()
    assert "train it        2/2" in log and "it/s" in log and "eta" in log and "val " in log


@pytest.mark.parametrize("native,expected", [(True, "bf16"), (False, "off")])
def test_auto_precision_on_a_cpu_is_bf16_only_where_the_cpu_has_it(monkeypatch, native, expected):
    """bf16 autocast nearly halves a CPU step where bfloat16 is native, and is emulated (slower) elsewhere."""
    from dagl.train import trainer

    monkeypatch.setattr(trainer, "cpu_has_native_bf16", lambda: native)
    assert trainer.resolve_amp("auto", torch.device("cpu")) == expected
    assert trainer.resolve_amp("off", torch.device("cpu")) == "off"  # an explicit choice is kept


def test_the_cpu_training_default_is_the_unfold_gfam():
    from dagl.train.config import TrainConfig

    assert TrainConfig(task="jpeg", data=[], iterations=1, out=Path("x")).gfam == "unfold"


def test_dagl_train_offers_every_gfam_implementation():
    from dagl.network.gfam import GFAM_IMPLEMENTATIONS
    from dagl.train.config import GFAM_NAMES

    assert sorted(GFAM_NAMES) == sorted(GFAM_IMPLEMENTATIONS)
