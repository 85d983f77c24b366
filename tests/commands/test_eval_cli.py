"""dagl-eval's reports, parity numbers, paper mode and error messages (tiny crops, whole-image tiling)."""

from __future__ import annotations

import csv
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio

import dagl
from dagl.images.io import read_image, write_image
from dagl.runtime.evaluate.cli import main
from dagl.runtime.evaluate.paper import PAPER_CELLS

CROP = 48


def centre(size: int) -> tuple[slice, slice]:
    """dagl-eval's centre crop of a 512x512 image (its offset is even already)."""
    start = (512 - size) // 2
    return slice(start, start + size), slice(start, start + size)


WINDOW = centre(CROP)


def invoke(args: list[str], **kwargs):
    return CliRunner().invoke(main, [str(a) for a in args], **kwargs)


def restore(checkpoint: Path, degraded: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        out = dagl.load("jpeg", weights=checkpoint)(torch.from_numpy(degraded)[None, None])
    return out.clamp(0, 1)[0, 0].double().numpy()


def sk_psnr(test: np.ndarray, clean: np.ndarray) -> float:
    return peak_signal_noise_ratio(clean.astype(np.float64), test.astype(np.float64), data_range=1.0)


@pytest.mark.slow
def test_report_scores_and_parity_match_an_independent_computation(tmp_path, official_checkpoint, datasets_dir):
    base, other = official_checkpoint("jpeg", seed=0), official_checkpoint("jpeg", seed=1)
    result = invoke(["--task", "jpeg", "--dataset", "classic5", "--quality", 10, "--model", base, "--compare", other,
                     "--tiling", "none", "--limit", 2, "--crop", CROP, "--report", tmp_path])
    assert result.exit_code == 0, result.output
    assert "classic5-q10 (2 images of 5: a subset, not the set's numbers)" in result.stdout
    assert "parity against #1" in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["classic5-q10-crop.png", "classic5-q10-psnr.png",
                                                          "classic5-q10.csv", "classic5-q10.md"]
    with Image.open(tmp_path / "classic5-q10-crop.png") as crop, Image.open(tmp_path / "classic5-q10-psnr.png") as plot:
        assert crop.width > 3 * crop.height and plot.width > 0  # four panels side by side
    with open(tmp_path / "classic5-q10.csv", newline="") as handle:
        rows = {(r["image"], r["model"].split(" ")[0]): r for r in csv.DictReader(handle)}
    assert len(rows) == 9  # (input, base, other) x (2 images + mean)

    for image in ("baboon", "barbara"):
        clean = read_image(datasets_dir / "classic5" / f"{image}.bmp")[WINDOW]
        degraded = read_image(datasets_dir / "classic5" / "jpeg_q10" / f"{image}.jpeg")[..., 0][WINDOW]
        out_base, out_other = restore(base, degraded), restore(other, degraded)
        assert float(rows[image, "input"]["psnr"]) == pytest.approx(sk_psnr(degraded, clean), abs=1e-9)
        assert float(rows[image, base.name]["psnr"]) == pytest.approx(sk_psnr(out_base, clean), abs=1e-5)
        assert float(rows[image, other.name]["psnr"]) == pytest.approx(sk_psnr(out_other, clean), abs=1e-5)
        parity = rows[image, other.name]
        assert float(parity["max_abs_vs_base"]) == pytest.approx(np.abs(out_other - out_base).max(), abs=1e-6)
        assert float(parity["psnr_vs_base"]) == pytest.approx(sk_psnr(out_other, out_base), abs=1e-4)
        assert float(parity["delta_psnr_vs_base"]) == pytest.approx(
            sk_psnr(out_other, clean) - sk_psnr(out_base, clean), abs=1e-5)
    for model in ("input", base.name, other.name):
        assert float(rows["mean", model]["psnr"]) == pytest.approx(
            np.mean([float(rows[i, model]["psnr"]) for i in ("baboon", "barbara")]), abs=1e-12)
    assert float(rows["mean", other.name]["max_abs_vs_base"]) == max(
        float(rows[i, other.name]["max_abs_vs_base"]) for i in ("baboon", "barbara"))

    markdown = (tmp_path / "classic5-q10.md").read_text()
    assert f"## Parity against `{base.name} (torch)`" in markdown
    assert f"#1 = {base.name} (torch); #2 = {other.name} (torch)" in markdown
    assert "![input, outputs and ground truth](classic5-q10-crop.png)" in markdown
    assert "--crop 48" in markdown  # the command that reproduces the report
    assert "--ensemble" not in markdown  # not given: not recorded (and no crash on click 8.5's flag defaults)


@pytest.mark.slow
@pytest.mark.parametrize(("args", "message"), [
    (["--task", "jpeg", "--dataset", "nope"], "dagl-eval: error: 'nope' is neither a test set (set12, bsd68"),
    (["--task", "jpeg", "--dataset", "set12", "--sigma", 25], "dagl-eval: error: set12 is a denoise test set, but the model"),
    (["--task", "jpeg", "--dataset", "classic5"], "dagl-eval: error: classic5: JPEG artifact removal needs --quality"),
    (["--task", "jpeg", "--dataset", "classic5", "--quality", 10, "--tiling", "grid", "--tile", 16, "--overlap", 16],
     "dagl-eval: error: need tile >= 8, 0 <= overlap < tile"),
    (["--task", "demosaic", "--dataset", "mcmaster18"], "'head.0.weight': checkpoint has shape (64, 1, 3, 3)"),
    (["--dataset", "classic5", "--quality", 10], "does not say which task it is for; pass --task"),
])
def test_user_mistakes_are_one_line_errors(official_checkpoint, datasets_dir, args, message):
    result = invoke(args + ["--model", official_checkpoint("jpeg")])
    assert result.exit_code != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dagl-eval: error: ") and message in lines[0], result.stderr
    assert "Traceback" not in result.output


def test_missing_model_and_misplaced_options(tmp_path):
    result = invoke(["--task", "jpeg", "--dataset", "classic5", "--quality", 10, "--model", tmp_path / "x.pt"])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"dagl-eval: error: {tmp_path / 'x.pt'}: no such model file"
    result = invoke(["--dataset", "set12"])
    assert result.exit_code == 2 and "--dataset and --model are required" in result.stderr
    result = invoke(["--dataset", "set12", "paper"])
    assert result.exit_code == 2 and "options for `paper` go after it" in result.stderr


def test_paper_mode_without_weights_names_every_missing_cell(tmp_path):
    result = invoke(["paper", "--weights-dir", tmp_path, "--table", tmp_path / "table.md"], terminal_width=250)
    assert result.exit_code == 0, result.output
    table = (tmp_path / "table.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| Table") or line.startswith("| DND")]
    assert len(rows) == len(PAPER_CELLS) == 20
    assert sum("| no weights: dagl-" in row for row in rows) == 18
    assert "| Table 1 | denoise | set12 | sigma 25 | 30.93 |  |  |  | no weights: dagl-denoise-s25.* not in" in table
    assert "| Table 4 | demosaic | mcmaster18 | - | 39.84 / 0.9735 |" in table
    assert "20 of 20 cells have no number" in result.stderr
    cells = [line for line in result.stderr.splitlines() if line.startswith("cell ")]
    assert len(cells) == 20 and cells[0] == "cell 1/20: set12 sigma 15" and cells[-1].startswith("cell 20/20: ")


@pytest.mark.slow
def test_paper_mode_runs_the_cells_it_has_weights_and_data_for(tmp_path, official_checkpoint, datasets_dir):
    """A datasets folder holding one classic5 crop at q10 and q20 only: those two cells run, the rest fail."""
    root, weights = tmp_path / "datasets", tmp_path / "weights"
    for sub in ("jpeg_q10", "jpeg_q20"):
        (root / "classic5" / sub).mkdir(parents=True)
    weights.mkdir()
    shutil.copy(official_checkpoint("jpeg"), weights / "dagl-jpeg.pt")
    window = (slice(100, 100 + CROP), slice(60, 60 + CROP))
    clean = read_image(datasets_dir / "classic5" / "lena.bmp")[window]
    Image.fromarray(np.round(clean * 255).astype(np.uint8)).save(root / "classic5" / "lena.png")
    expected = {}
    for quality in (10, 20):
        degraded = read_image(datasets_dir / "classic5" / f"jpeg_q{quality}" / "lena.jpeg")[window]
        target = root / "classic5" / f"jpeg_q{quality}" / "lena.png"
        Image.fromarray(np.round(degraded * 255).astype(np.uint8)).save(target)
        expected[quality] = sk_psnr(restore(weights / "dagl-jpeg.pt", degraded[..., 0]), clean)

    result = invoke(["paper", "--weights-dir", weights, "--no-ensemble", "--tiling", "none", "--table",
                     tmp_path / "table.md", "--report", tmp_path / "report"], env={"DAGL_DATASETS": str(root)},
                    terminal_width=250)
    assert result.exit_code == 1 and "dagl-eval: error: 6 cell(s) failed: live1 q10, live1 q20" in result.stderr
    table = (tmp_path / "table.md").read_text()
    for quality, paper in ((10, 30.08), (20, 32.35)):
        ours = expected[quality]
        assert (f"| Table 3 | jpeg | classic5 | q{quality} | {paper:.2f} | {ours:.2f} | {ours - paper:+.4f} | 1 | "
                f"dagl-jpeg.pt |") in table
        assert (tmp_path / "report" / f"classic5-q{quality}.csv").is_file()
    assert re.search(r"\| classic5 \| q30 \|.*\| FAILED: .*jpeg_q30: not found", table)
    assert "no weights: dagl-denoise-s15.* not in" in table


@pytest.mark.slow
def test_ensemble_is_the_x8_average(tmp_path, official_checkpoint, datasets_dir):
    checkpoint = official_checkpoint("jpeg")
    result = invoke(["--task", "jpeg", "--dataset", "classic5", "--quality", 10, "--model", checkpoint, "--ensemble",
                     "--tiling", "none", "--limit", 1, "--crop", 32, "--report", tmp_path])
    assert result.exit_code == 0, result.output
    with open(tmp_path / "classic5-q10.csv", newline="") as handle:
        ours = next(float(r["psnr"]) for r in csv.DictReader(handle) if r["model"].startswith(checkpoint.name))
    clean = read_image(datasets_dir / "classic5" / "baboon.bmp")[centre(32)]
    x = torch.from_numpy(read_image(datasets_dir / "classic5" / "jpeg_q10" / "baboon.jpeg")[..., 0][centre(32)])[None, None]
    model = dagl.load("jpeg", weights=checkpoint)
    with torch.no_grad():
        outs = [torch.rot90(model(torch.rot90(x.flip(-1) if flip else x, k, (2, 3))), -k, (2, 3))
                for flip in (False, True) for k in range(4)]
        outs = [o.flip(-1) if i >= 4 else o for i, o in enumerate(outs)]
        ensemble = torch.stack(outs).mean(0).clamp(0, 1)[0, 0].double().numpy()
    assert ours == pytest.approx(sk_psnr(ensemble, clean), abs=1e-5)
    assert abs(ours - sk_psnr(restore(checkpoint, x[0, 0].numpy()), clean)) > 1e-3  # the ensemble changes it


def test_unwritable_report_folder_is_a_one_line_error(tmp_path, official_checkpoint, datasets_dir):
    (tmp_path / "file").write_text("")
    result = invoke(["--task", "jpeg", "--dataset", "classic5", "--quality", 10, "--model", official_checkpoint("jpeg"),
                     "--tiling", "none", "--limit", 1, "--crop", 16, "--report", tmp_path / "file" / "sub"])
    assert result.exit_code == 2  # the place the user named (dagl.errors' rule), refused before any image
    assert result.stderr.strip().splitlines() == [
        f"dagl-eval: error: cannot create output folder {tmp_path / 'file' / 'sub'} ({tmp_path / 'file'} is not a folder)"]
    assert "Traceback" not in result.output


def test_paper_table_records_the_command_with_a_negative_flag(tmp_path):
    result = invoke(["paper", "--weights-dir", tmp_path, "--no-ensemble", "--table", tmp_path / "t.md"],
                    terminal_width=250)
    assert result.exit_code == 0, result.output
    assert f"Generated by `dagl-eval paper --weights-dir {tmp_path} --no-ensemble --table {tmp_path / 't.md'}`" in (
        tmp_path / "t.md").read_text()


def _parity_run(base: Path, *candidates: Path):
    compared = [word for candidate in candidates for word in ("--compare", candidate)]
    return invoke(["--task", "jpeg", "--dataset", "classic5", "--quality", 10, "--model", base, *compared,
                   "--tiling", "none", "--limit", 1, "--crop", 16, "--threads", 1], terminal_width=250)


def test_compare_prints_a_passing_parity_verdict(official_checkpoint, datasets_dir, jpeg_onnx):
    checkpoint = official_checkpoint("jpeg")
    onnx_path = jpeg_onnx
    result = _parity_run(checkpoint, onnx_path)
    assert result.exit_code == 0, result.output
    [line] = [line for line in result.stdout.splitlines() if "PASSED" in line or "FAILED" in line]
    assert line.startswith("dagl-jpeg.onnx (onnxruntime): PASSED float32 ONNX vs float32 PyTorch: max |diff| ")
    assert line.endswith("(required: max |diff| <= 0.0001)")


def test_compare_out_of_bounds_exits_non_zero(official_checkpoint, datasets_dir, jpeg_onnx):
    onnx_path = jpeg_onnx
    result = _parity_run(official_checkpoint("jpeg", seed=1), onnx_path)  # other weights: far out of bounds
    assert result.exit_code == 1
    assert "dagl-jpeg.onnx (onnxruntime): FAILED float32 ONNX vs float32 PyTorch" in result.stdout
    assert result.stderr.strip().splitlines()[-1] == "dagl-eval: error: 1 of 1 compared model(s) out of parity bounds"


@pytest.mark.slow
def test_compare_says_when_the_artefact_was_made_from_different_weights(official_checkpoint, datasets_dir,
                                                                        tmp_path_factory, jpeg_onnx):
    from dagl.files import file_digest
    from onnx_models import add_metadata

    folder = tmp_path_factory.mktemp("stamped")
    checkpoint, other = official_checkpoint("jpeg"), official_checkpoint("jpeg", seed=1)
    onnx_path = folder / "dagl-jpeg.onnx"
    shutil.copy(jpeg_onnx, onnx_path)
    add_metadata(onnx_path, {"task": "jpeg", "channels": "1", "precision": "fp32", "weights": file_digest(checkpoint)})
    result = _parity_run(other, onnx_path)
    assert result.exit_code == 1
    [line] = [line for line in result.stdout.splitlines() if "FAILED" in line]
    assert line.endswith(f"; made from different weights ({file_digest(other)[:12]} vs {file_digest(checkpoint)[:12]}); "
                         f"compare artefacts of the same weights")
    assert result.stderr.strip().splitlines()[-1] == ("dagl-eval: error: 1 of 1 compared model(s) out of parity "
                                                      "bounds; every one made from different weights")
    result = _parity_run(checkpoint, onnx_path)  # the same weights: passes, and says nothing of weights
    assert result.exit_code == 0 and "different weights" not in result.output


def test_verdict_names_the_artefact_it_judges_after_an_unjudged_weights_file(official_checkpoint, datasets_dir,
                                                                             jpeg_onnx):
    """A second weights file gets numbers but no verdict; the ONNX graph after it keeps its own name."""
    checkpoint = official_checkpoint("jpeg")
    onnx_path = jpeg_onnx
    result = _parity_run(checkpoint, official_checkpoint("jpeg", seed=1), onnx_path)
    assert result.exit_code == 0, result.output
    [line] = [line for line in result.stdout.splitlines() if "PASSED" in line or "FAILED" in line]
    assert line.startswith("dagl-jpeg.onnx (onnxruntime): PASSED float32 ONNX vs float32 PyTorch")


def test_device_is_one_choice_not_free_text(official_checkpoint):
    result = invoke(["--task", "jpeg", "--dataset", "classic5", "--quality", 10, "--model", official_checkpoint("jpeg"),
                     "--device", "gpu"])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines()[-1].startswith("dagl-eval: error: Invalid value for '--device': 'gpu'")


def test_nan_output_is_one_line_error_never_a_nan_score(tmp_path):
    """A model that outputs NaN (here x / x on an image with a zero) stops the run; no `nan` is reported."""
    from crafted import tiny_onnx

    for folder in ("clean", "degraded"):
        (tmp_path / "set" / folder).mkdir(parents=True)
        image = np.full((24, 24), 128, np.uint8)
        image[5, 5] = 0
        Image.fromarray(image).save(tmp_path / "set" / folder / "a.png")
    model = tiny_onnx(tmp_path / "div.onnx", "divide")
    result = invoke(["--dataset", tmp_path / "set", "--model", model, "--tiling", "grid", "--tile", "16",
                     "--overlap", "4"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "nan" not in result.stdout.lower()
    [error] = [line for line in result.stderr.splitlines() if "error" in line]
    assert error.startswith("dagl-eval: error: ") and "produced 1 NaN or infinite value(s)" in error


def _folder_set(root: Path) -> Path:
    rng = np.random.default_rng(3)
    for sub in ("clean", "degraded"):
        (root / sub).mkdir(parents=True)
        for name in ("a", "b"):
            write_image(root / sub / f"{name}.png", rng.random((24, 24), dtype=np.float32), 8)
    return root


@pytest.mark.parametrize("crop,random", [(16, True), (None, False)])
def test_report_says_crop_or_whole_image_and_random_weights(tmp_path, monkeypatch, crop, random):
    from crafted import tiny_onnx

    import dagl.runtime.evaluate.report as report

    figures = []
    saved = report._save_figure
    monkeypatch.setattr(report, "_save_figure", lambda figure, path: figures.append(figure) or saved(figure, path))
    weights = {"dagl.weights": "RANDOM (seed 0), not trained"} if random else {}
    model = tiny_onnx(tmp_path / "id.onnx", "identity", metadata=weights)
    args = ["--task", "jpeg", "--dataset", _folder_set(tmp_path / "set"), "--model", model, "--tiling", "none",
            "--report", tmp_path / "report"] + (["--crop", crop] if crop else [])
    result = invoke(args)
    assert result.exit_code == 0, result.output
    titles = [axes.get_title() for axes in figures[0].axes]
    scope = "(crop)" if crop else "(whole image)"
    assert [t.split("\n")[1].split(" dB ")[1] for t in titles if "\n" in t] == [scope, scope]  # input, model
    markdown = (tmp_path / "report" / "set.md").read_text()
    assert ("- weights: **RANDOM, untrained** (`id.onnx (onnxruntime, RANDOM weights)`" in markdown) is random
    assert ("RANDOM, untrained weights" in figures[0]._suptitle.get_text()) is random


@pytest.mark.parametrize("size", [8, 10])
def test_images_smaller_than_the_ssim_window_are_refused_with_the_minimum(tmp_path, size):
    """8x8 and 10x10 pairs: one line naming the file and 11x11, exit 2, before any score (none is printed)."""
    from crafted import tiny_onnx

    for folder in ("clean", "degraded"):
        (tmp_path / "set" / folder).mkdir(parents=True)
        Image.fromarray(np.full((size, size), 100, np.uint8)).save(tmp_path / "set" / folder / "a.png")
    result = invoke(["--dataset", tmp_path / "set", "--model", tiny_onnx(tmp_path / "id.onnx"), "--tiling", "none"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr.strip().splitlines() == [
        f"dagl-eval: error: {tmp_path / 'set' / 'clean' / 'a.png'}: {size}x{size} px is smaller than SSIM's 11x11 "
        f"window; the protocol needs images of at least 11x11 px"]
