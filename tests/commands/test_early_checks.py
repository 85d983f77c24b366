"""Every check that needs no model runs before the model loads, in one line with exit 2 (issue 26).

The order is proven with spies on the loaders, not with timing: each test replaces what loads the model
(``Restorer`` in dagl-infer and dagl-eval, ``dagl.load``/``dagl.create`` in dagl-export, the process
group's set-up in dagl-train) by a spy that records the call, and a mistake must be refused without it.
"""

from __future__ import annotations

import errno
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import dagl
import dagl.train.distributed
from dagl.data.datasets import folder_set
from dagl.errors import OutputError, UserInputError
from dagl.export.cli import main as export_main
from dagl.images.io import write_image
from dagl.outputs import check_output_folder
from dagl.runtime import auto
from dagl.runtime import cli as infer_cli
from dagl.runtime.evaluate import cli as eval_cli
from dagl.suggest import did_you_mean
from dagl.train.cli import command as train_command

SPY_LINE = "spy: the model would load here"


class LoadSpy:
    """Stands in for a model loader: records each call and stops the command with a line of its own."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, *args: object, **kwargs: object) -> None:
        self.calls += 1
        raise UserInputError(SPY_LINE)


@pytest.fixture
def infer_spy(monkeypatch) -> LoadSpy:
    spy = LoadSpy()
    monkeypatch.setattr(auto, "Restorer", spy)  # dagl-infer makes its Restorer through runtime.auto.open_restorer
    return spy


@pytest.fixture
def eval_spy(monkeypatch) -> LoadSpy:
    spy = LoadSpy()
    monkeypatch.setattr(eval_cli, "Restorer", spy)
    return spy


def run(command, *args: object) -> tuple[int, list[str]]:
    result = CliRunner().invoke(command, [str(a) for a in args])
    assert "Traceback" not in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stderr.strip().splitlines()


@pytest.fixture
def gray_png(tmp_path) -> Path:
    return write_image(tmp_path / "gray.png", np.random.default_rng(0).random((24, 20), dtype=np.float32), 8)


def test_did_you_mean_names_the_nearest_name_or_nothing():
    assert did_you_mean("jpg", dagl.TASKS) == "; did you mean 'jpeg'?"
    assert did_you_mean("denoize", dagl.TASKS) == "; did you mean 'denoise'?"
    assert did_you_mean("model_best.pt", dagl.TASKS) == ""


# ---- dagl-infer ------------------------------------------------------------------------------------


def test_infer_a_near_miss_task_name_is_refused_with_the_task_meant_before_the_model_loads(
        infer_spy, gray_png, tmp_path):
    code, lines = run(infer_cli.main, "jpg", gray_png, "-o", tmp_path / "out.png")
    assert code == 2 and infer_spy.calls == 0
    assert lines == ["dagl-infer: error: jpg: no such model file or task; did you mean 'jpeg'?"]


def test_infer_a_name_far_from_every_task_lists_the_tasks(infer_spy, gray_png, tmp_path):
    code, lines = run(infer_cli.main, "xyzzy", gray_png, "-o", tmp_path / "out.png")
    assert code == 2 and infer_spy.calls == 0
    assert lines == [f"dagl-infer: error: xyzzy: no such model file or task (the tasks: {', '.join(dagl.TASKS)})"]


def test_infer_a_text_file_as_image_is_refused_before_the_model_loads(infer_spy, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image\n")
    code, lines = run(infer_cli.main, "jpeg", notes, "-o", tmp_path / "out.png")
    assert code == 2 and infer_spy.calls == 0
    assert len(lines) == 1 and lines[0].startswith(f"dagl-infer: error: {notes}: not an image")
    assert not (tmp_path / "out.png").exists()


def test_infer_an_unfit_image_among_good_ones_is_reported_before_the_model_loads(infer_spy, gray_png, tmp_path):
    notes = tmp_path / "notes.png"
    notes.write_text("not an image\n")
    code, lines = run(infer_cli.main, "jpeg", gray_png, notes, "-o", tmp_path / "out")
    assert infer_spy.calls == 1  # the good image still runs
    assert lines[0].startswith(f"dagl-infer: error: {notes}: not an image") and lines[1].endswith(SPY_LINE)


def test_infer_an_image_the_task_cannot_take_is_refused_before_the_model_loads(infer_spy, gray_png, tmp_path):
    """With --task (or a task name as MODEL) the task is known at once, so its channel rule applies early too."""
    weights = tmp_path / "never-loaded.pt"
    weights.write_bytes(b"")
    code, lines = run(infer_cli.main, weights, gray_png, "--task", "real-denoise", "-o", tmp_path / "out.png")
    assert code == 2 and infer_spy.calls == 0
    assert lines == [f"dagl-infer: error: {gray_png}: is gray; task 'real-denoise' needs a 3-channel RGB image"]


def test_infer_a_reference_of_another_size_is_refused_before_the_model_loads(infer_spy, gray_png, tmp_path):
    clean = write_image(tmp_path / "clean.png", np.zeros((30, 30), np.float32), 8)
    code, lines = run(infer_cli.main, "jpeg", gray_png, "-o", tmp_path / "out.png", "--reference", clean)
    assert code == 2 and infer_spy.calls == 0
    assert lines == [f"dagl-infer: error: {gray_png}: --reference {clean}: 30x30 does not match the image (20x24)"]


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_infer_an_output_in_proc_is_refused_before_the_model_loads(infer_spy, gray_png):
    code, lines = run(infer_cli.main, "jpeg", gray_png, "-o", "/proc/x.png")
    assert code == 2 and infer_spy.calls == 0
    assert len(lines) == 1 and lines[0].startswith("dagl-infer: error: /proc: cannot write into this output folder")


def test_infer_with_server_a_near_miss_task_is_refused_with_the_task_meant(gray_png, tmp_path):
    code, lines = run(infer_cli.main, "jpg", gray_png, "-o", tmp_path / "out.png", "--server", "http://127.0.0.1:1")
    assert code == 2 and len(lines) == 1 and lines[0].endswith("got 'jpg'; did you mean 'jpeg'?")


# ---- the output folder's trial write -----------------------------------------------------------------


def test_an_output_folder_the_filesystem_refuses_is_refused_although_its_mode_allows(tmp_path, monkeypatch):
    """Root passes every os.access check; only a write says whether writes work there."""
    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(tempfile, "TemporaryFile", refuse)
    with pytest.raises(OutputError, match="cannot write into this output folder") as caught:
        check_output_folder(tmp_path / "new" / "folder")
    assert caught.value.exit_code == 2


def test_a_full_disk_at_the_trial_write_is_a_failure_while_working(tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tempfile, "TemporaryFile", full)
    with pytest.raises(OutputError) as caught:
        check_output_folder(tmp_path)
    assert caught.value.exit_code == 1


def test_the_trial_write_leaves_nothing_behind(tmp_path):
    check_output_folder(tmp_path / "not" / "yet")
    assert list(tmp_path.iterdir()) == []


# ---- dagl-eval ---------------------------------------------------------------------------------------


def folder_dataset(root: Path, names: tuple[str, ...], broken: str | None = None) -> Path:
    rng = np.random.default_rng(1)
    for sub in ("clean", "degraded"):
        (root / sub).mkdir(parents=True)
        for name in names:
            write_image(root / sub / f"{name}.png", rng.random((24, 24), dtype=np.float32), 8)
    if broken:
        (root / "degraded" / f"{broken}.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    return root


def test_eval_a_near_miss_task_name_as_model_is_refused_before_the_model_loads(eval_spy):
    code, lines = run(eval_cli.main, "--task", "jpeg", "--dataset", "classic5", "--quality", "10", "--model", "jpg")
    assert code == 2 and eval_spy.calls == 0
    assert lines == ["dagl-eval: error: jpg: no such model file or task; did you mean 'jpeg'?"]


def test_eval_a_near_miss_set_name_is_refused_with_the_set_meant(eval_spy):
    code, lines = run(eval_cli.main, "--task", "jpeg", "--dataset", "clasic5", "--quality", "10", "--model", "jpeg")
    assert code == 2 and eval_spy.calls == 0
    assert len(lines) == 1 and lines[0].endswith("nor a folder; did you mean 'classic5'?")


def test_eval_a_near_miss_image_name_is_refused_with_the_image_meant(eval_spy, tmp_path):
    data = folder_dataset(tmp_path / "set", ("barbara", "lena"))
    code, lines = run(eval_cli.main, "--task", "jpeg", "--dataset", data, "--model", "jpeg", "--images", "barbra")
    assert code == 2 and eval_spy.calls == 0
    assert lines == [f"dagl-eval: error: {data / 'clean'}: no image named 'barbra'; did you mean 'barbara'? "
                     f"(its images: barbara, lena)"]


def test_eval_a_broken_file_of_the_set_is_refused_before_the_model_loads(eval_spy, tmp_path):
    data = folder_dataset(tmp_path / "set", ("a", "b"), broken="b")
    code, lines = run(eval_cli.main, "--task", "jpeg", "--dataset", data, "--model", "jpeg")
    assert code == 2 and eval_spy.calls == 0
    assert len(lines) == 1 and lines[0].startswith(f"dagl-eval: error: {data / 'degraded' / 'b.png'}: ")


def test_eval_images_of_the_set_that_are_not_chosen_are_not_read(eval_spy, tmp_path):
    """--images barbara is a subset: the loader is reached with a set whose broken image was left out."""
    data = folder_dataset(tmp_path / "set", ("a", "b"), broken="b")
    code, lines = run(eval_cli.main, "--task", "jpeg", "--dataset", data, "--model", "jpeg", "--images", "a")
    assert eval_spy.calls == 1 and lines[-1].endswith(SPY_LINE)


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_eval_a_report_folder_in_proc_is_refused_before_the_model_loads(eval_spy):
    code, lines = run(eval_cli.main, "--task", "jpeg", "--dataset", "classic5", "--quality", "10", "--model", "jpeg",
                      "--report", "/proc/report")
    assert code == 2 and eval_spy.calls == 0 and len(lines) == 1


def test_images_select_a_subset_labelled_so(tmp_path):
    data = folder_dataset(tmp_path / "set", ("a", "b", "c"))
    subset = folder_set(data, "jpeg", images=("c", "a"))
    assert [name for name, _, _ in subset.pairs] == ["a", "c"]  # the set's order, not the option's
    assert subset.is_subset and subset.total == 3
    assert subset.description.endswith("; a subset, not the set's numbers: 2 of 3 images (a, c)")
    whole = folder_set(data, "jpeg")
    assert not whole.is_subset and "not the set's numbers" not in whole.description


def test_eval_scores_only_the_chosen_image_and_says_it_is_a_subset(tmp_path, official_checkpoint):
    data = folder_dataset(tmp_path / "set", ("a", "b"))
    result = CliRunner().invoke(eval_cli.main, ["--task", "jpeg", "--dataset", str(data), "--model",
                                                str(official_checkpoint("jpeg")), "--images", "b",
                                                "--tiling", "none", "--threads", "1"])
    assert result.exit_code == 0, result.stderr
    assert "1 images of 2: a subset, not the set's numbers" in result.stdout
    assert re.findall(r"^\W+(\w+)\s+\W\s+\d", result.stdout, re.M) == ["b", "mean"]  # the table's first column


def test_eval_images_needs_a_name():
    code, lines = run(eval_cli.main, "--task", "jpeg", "--dataset", "classic5", "--quality", "10", "--model", "jpeg",
                      "--images", " , ")
    assert code == 2 and len(lines) == 1 and "name at least one image" in lines[0]


# ---- dagl-export -------------------------------------------------------------------------------------


@pytest.fixture
def export_spy(monkeypatch) -> LoadSpy:
    spy = LoadSpy()
    monkeypatch.setattr(dagl, "load", spy)
    monkeypatch.setattr(dagl, "create", spy)
    return spy


@pytest.mark.parametrize("args, message", [
    (["--task", "jpg"], "'jpg' is not one of 'denoise', 'jpeg', 'demosaic', 'real-denoise'; did you mean 'jpeg'?"),
    (["--task", "jpeg", "--weights", "randon"], "weights file not found: randon; did you mean 'random'?"),
    (["--task", "jpeg", "--weights", "model_best.pt"], "weights file not found: model_best.pt"),
])
def test_export_a_wrong_name_is_refused_before_the_model_loads(export_spy, tmp_path, args, message):
    code, lines = run(export_main, *args, "--onnx-only", "--output-dir", tmp_path / "out")
    assert code == 2 and export_spy.calls == 0
    assert len(lines) == 1 and lines[0].endswith(message)
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_export_an_output_folder_in_proc_is_refused_before_the_model_loads(export_spy):
    code, lines = run(export_main, "--task", "jpeg", "--onnx-only", "--output-dir", "/proc/out")
    assert code == 2 and export_spy.calls == 0 and len(lines) == 1


# ---- dagl-train --------------------------------------------------------------------------------------


@pytest.fixture
def train_spy(monkeypatch) -> LoadSpy:
    spy = LoadSpy()
    monkeypatch.setattr(dagl.train.distributed, "setup", spy)
    return spy


@pytest.fixture
def train_data(tmp_path) -> Path:
    folder = tmp_path / "train"
    folder.mkdir()
    write_image(folder / "a.png", np.zeros((32, 32), np.float32), 8)
    return folder


@pytest.mark.parametrize("extra, message", [
    (["--val", "clasic5"], "nor a folder; did you mean 'classic5'?"),
    (["--init", "nope.safetensors"], "--init nope.safetensors: no such weights file"),
    (["--out", "/proc/run"], "/proc: cannot write into this output folder"),
    (["--task", "jpg"], "did you mean 'jpeg'?"),
])
def test_train_a_mistake_is_refused_before_torch_sets_up(train_spy, train_data, tmp_path, extra, message):
    if "/proc/run" in extra and not Path("/proc/self").is_dir():
        pytest.skip("needs Linux's /proc")
    code, lines = run(train_command, "--task", "jpeg", "--data", train_data, "--iterations", "1",
                      "--out", tmp_path / "run", *extra)
    assert code == 2 and train_spy.calls == 0
    assert len(lines) == 1 and message in lines[0]


def test_train_a_missing_data_folder_is_refused_before_torch_sets_up(train_spy, tmp_path):
    code, lines = run(train_command, "--task", "jpeg", "--data", tmp_path / "nope", "--iterations", "1",
                      "--out", tmp_path / "run")
    assert code == 2 and train_spy.calls == 0
    assert lines == [f"dagl-train: error: data folder not found: {tmp_path / 'nope'}"]


def test_train_good_files_reach_the_set_up(train_spy, train_data, tmp_path):
    code, lines = run(train_command, "--task", "jpeg", "--data", train_data, "--iterations", "1",
                      "--out", tmp_path / "run")
    assert train_spy.calls == 1 and lines[-1].endswith(SPY_LINE)


def test_eval_without_a_model_says_a_task_name_is_one():
    code, lines = run(eval_cli.main, "--task", "jpeg", "--dataset", "classic5", "--quality", "10")
    assert code == 2 and len(lines) == 1
    assert lines[0].endswith("--model takes a file or a task name for the weights shipped for it (--model jpeg)")
