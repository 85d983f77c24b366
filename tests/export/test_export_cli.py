"""dagl-export's refusals: each a single line on stderr, a non-zero exit, and nothing written."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from click.testing import CliRunner

import dagl.export.cli
import dagl.export.pipeline
from dagl.export.cli import main
from dagl.chosen_weights import WeightsInfo

HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None


def _run(*args: str):
    return CliRunner().invoke(main, list(args))


def _error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("dagl-export: error:")]


def test_missing_weights_file_is_one_line_and_writes_nothing(tmp_path):
    out = tmp_path / "out"
    result = _run("--task", "jpeg", "--weights", str(tmp_path / "nope.pt"), "--output-dir", str(out))
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [f"dagl-export: error: weights file not found: {tmp_path / 'nope.pt'}"]
    assert "Traceback" not in result.output and not out.exists()


def test_weights_for_another_task_are_refused_before_any_file(official_checkpoint, tmp_path):
    out = tmp_path / "out"
    result = _run("--task", "demosaic", "--weights", str(official_checkpoint("jpeg")), "--output-dir", str(out))
    assert result.exit_code == 2 and len(_error_lines(result)) == 1 and "shape" in result.stderr
    assert not out.exists()


def test_no_shipped_weights_tells_the_user_to_pass_weights(tmp_path):
    result = _run("--task", "demosaic", "--output-dir", str(tmp_path / "out"))
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert "no trained weights ship" in line and "--weights PATH" in line and "--weights random" in line


@pytest.mark.parametrize("bad", ["96", "0x64", "64x", "ax3", "64x64x3", "-8x8"])
def test_bad_shape_strings(bad):
    result = _run("--task", "jpeg", "--weights", "random", "--opt-shape", bad)
    assert result.exit_code == 2 and "is not HEIGHTxWIDTH" in result.stderr


def test_shapes_out_of_order():
    result = _run("--task", "jpeg", "--weights", "random", "--min-shape", "64x64", "--opt-shape", "32x32")
    assert result.exit_code == 2 and "min <= opt <= max" in result.stderr


def test_wrong_task():
    result = _run("--task", "deblur", "--weights", "random")
    assert result.exit_code == 2 and "'deblur' is not one of" in result.stderr
    assert result.stderr.strip().splitlines() == [
        "dagl-export: error: Invalid value for '--task': 'deblur' is not one of 'denoise', 'jpeg', 'demosaic', "
        "'real-denoise'."]


def test_sigma_rules():
    missing = _run("--task", "denoise", "--weights", "random")
    assert missing.exit_code == 2 and "pass --sigma" in missing.stderr
    assert "--task denoise only" in _run("--task", "jpeg", "--weights", "random", "--sigma", "25").stderr
    untrained = _run("--task", "denoise", "--weights", "random", "--sigma", "30")
    assert untrained.exit_code == 2
    assert untrained.stderr.strip().splitlines() == [
        "dagl-export: error: sigma 30 is not one the paper trains for 'denoise': pass --sigma (15, 25, 50)"]


def test_onnx_only_and_engine_required_contradict():
    assert _run("--task", "jpeg", "--weights", "random", "--onnx-only", "--engine-required").exit_code == 2


@pytest.mark.skipif(HAS_TENSORRT, reason="tensorrt is installed: cannot exercise its absence")
def test_engine_required_without_tensorrt_fails_fast_and_writes_nothing(tmp_path):
    out = tmp_path / "out"
    result = _run("--task", "jpeg", "--weights", "random", "--engine-required", "--output-dir", str(out))
    assert result.exit_code == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("dagl-export: error: --engine-required, but no engine can be built here: tensorrt is not installed")
    assert not out.exists()


def test_help_teaches_the_first_command():
    result = _run("--help")
    assert result.exit_code == 0 and "dagl-export --task jpeg --weights random --onnx-only" in result.output


class _DataDependent(torch.nn.Module):
    """Exports to a graph with NonZero: what the static TensorRT check must refuse."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.nonzero(x > 0.5).shape[0] * 0.0


def test_graph_failing_the_tensorrt_check_is_not_written(monkeypatch, tmp_path):
    monkeypatch.setattr(dagl.export.pipeline, "load_chosen_weights", lambda task, weights, sigma: (
        _DataDependent(), WeightsInfo(source="test", sha256=None, random=False)))
    result = _run("--task", "jpeg", "--weights", "whatever", "--onnx-only", "--output-dir", str(tmp_path))
    assert result.exit_code == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("dagl-export: error: float32 graph refused, nothing written: not TensorRT-11 compatible: node")
    assert "(NonZero): data-dependent output shape" in line
    assert list(tmp_path.iterdir()) == []
