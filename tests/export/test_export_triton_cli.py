"""``dagl-export --triton-repo``: the repository comes from what the command built (the engine on the
TensorRT 11 fake), and a tile or batch the engine's profile would refuse stops the command up front."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import dagl.export.cli
import dagl.export.pipeline
import fake_tensorrt
from dagl.artefact import GPU

PROFILE = ["--min-shape", "16x16", "--opt-shape", "48x48", "--max-shape", "64x64", "--batch", "2"]


@pytest.mark.slow
def test_export_writes_the_repository_of_what_it_built(fake_trt, tmp_path, monkeypatch):
    monkeypatch.setattr(dagl.export.pipeline, "current_gpu", lambda: GPU(fake_tensorrt.GPU_NAME, fake_tensorrt.GPU_CC))
    out, repo = tmp_path / "out", tmp_path / "repo"
    result = CliRunner().invoke(dagl.export.cli.main, ["--task", "jpeg", "--weights", "random", "--engine-required",
                                                       "--output-dir", str(out), "--triton-repo", str(repo), *PROFILE])
    assert result.exit_code == 0, result.output
    models = ["dagl-jpeg-trt", "dagl-jpeg-trt-tile", "dagl-jpeg-onnx", "dagl-jpeg-onnx-tile"]
    assert sorted(p.name for p in repo.iterdir()) == sorted(models)
    assert json.loads((out / "dagl-jpeg.json").read_text())["triton_models"] == models
    assert (repo / "dagl-jpeg-trt/1/model-cc9.0.plan").read_bytes() == (out / "dagl-jpeg-fp32.plan").read_bytes()
    tile = (repo / "dagl-jpeg-trt-tile/config.pbtxt").read_text()
    assert "max_batch_size: 2" in tile and "dims: [ 1, 48, 48 ]" in tile  # the profile's batch and tuned tile
    assert 'cc_model_filenames { key: "9.0" value: "model-cc9.0.plan" }' in tile
    assert (repo / "dagl-jpeg-onnx/1/model.onnx").read_bytes() == (out / "dagl-jpeg.onnx").read_bytes()


def test_a_tile_or_batch_the_profile_refuses_is_one_line_before_any_work(tmp_path):
    for option, message in ((["--triton-tile", "96"], "dims [1, 96, 96]: height 96 is outside the engine profile's 16..64"),
                            (["--triton-max-batch", "3"], "max_batch_size 3 is outside the engine profile's batch 1..2")):
        result = CliRunner().invoke(dagl.export.cli.main, ["--task", "jpeg", "--weights", "random", "--output-dir",
                                                           str(tmp_path / "out"), "--triton-repo",
                                                           str(tmp_path / "repo"), *PROFILE, *option])
        assert result.exit_code == 2, result.output
        lines = result.stderr.strip().splitlines()
        assert lines == [f"dagl-export: error: the Triton tile model would disagree with the engine: {message}"]
        assert not (tmp_path / "out").exists() and not (tmp_path / "repo").exists()
