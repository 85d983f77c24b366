"""dagl-bench: the arithmetic of its figures, and one real run on tiny tiles."""

from __future__ import annotations


import numpy as np
import pytest
from click.testing import CliRunner

import dagl
from dagl.runtime import base
from dagl.runtime.base import BaseRunner, ModelInfo
from dagl.runtime.bench import main
from dagl.runtime.benchmark import measure


class SleepyRunner(BaseRunner):
    """Takes 50 ms per call on a scripted clock (``clock``), so latency and throughput have exact expected values
    however loaded the machine is."""

    name = "sleepy"
    clock = [0.0]

    def activate_impl(self) -> None:
        pass

    def deactivate_impl(self) -> None:
        pass

    def infer_impl(self, batch: np.ndarray) -> np.ndarray:
        self.clock[0] += 0.05
        return batch


def test_latency_is_per_tile_and_throughput_in_megapixels(monkeypatch):
    monkeypatch.setattr(base.time, "perf_counter", lambda: SleepyRunner.clock[0])
    with SleepyRunner(ModelInfo("jpeg", 1)) as runner:
        result = measure(runner, "artefact", tile=100, batch=4, repeats=3)
    assert result.latency_ms == pytest.approx(50 / 4, rel=1e-9)
    assert result.megapixels_per_s == pytest.approx(4 * 100 * 100 / 1e6 / 0.05, rel=1e-9)
    assert result.peak_mib > 10
    assert runner.inference_count == 4  # one warm-up, three timed
    assert result.cpu_ms_per_call >= 0  # the process's CPU time per timed call (next to nothing here)


@pytest.mark.slow
def test_bench_runs_both_paths_and_writes_table_and_plot(tmp_path, jpeg_onnx):
    model = jpeg_onnx
    plot, table = tmp_path / "bench.png", tmp_path / "bench.md"
    result = CliRunner().invoke(main, [str(model), "--tile", "8", "--tile", "12", "--repeats", "1",
                                       "--threads", "1", "--plot", str(plot), "--markdown", str(table)])
    assert result.exit_code == 0, result.output
    rows = [line.split("|")[1:-1] for line in table.read_text().splitlines()[2:]]
    assert [(r[0].strip(), r[1].strip(), int(r[2])) for r in rows] == [
        ("artefact", "onnxruntime", 8), ("artefact", "onnxruntime", 12), ("plain", "torch", 8), ("plain", "torch", 12)]
    assert all(float(r[4]) > 0 and float(r[5]) > 0 for r in rows)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    steps = [line for line in result.stderr.splitlines() if line.startswith("measurement ")]
    assert [line.split(",")[0] for line in steps] == [
        "measurement 1/4 done (artefact", "measurement 2/4 done (artefact", "measurement 3/4 done (plain",
        "measurement 4/4 done (plain"]
    assert "eta" in steps[0] and steps[-1] == "measurement 4/4 done (plain, torch, tile 12)"


def test_bench_bad_model_is_one_line(tmp_path):
    result = CliRunner().invoke(main, [str(tmp_path / "nothing.onnx")])
    assert result.exit_code == 2 and result.stderr.strip().splitlines() == [
        f"dagl-bench: error: {tmp_path / 'nothing.onnx'}: no such model file"]


@pytest.mark.slow
def test_a_task_name_gives_the_plain_path_the_shipped_weights():
    """``dagl-bench jpeg --backend torch``: the plain path loads the weights file the task name stands for."""
    from pathlib import Path

    import torch

    from dagl.runtime.benchmark import Benchmark
    from dagl.weights.checkpoints import load_into
    from dagl.weights.pretrained import shipped_weights

    bench = Benchmark(Path("jpeg"), None, "torch", "cpu", (8,), batch=1, repeats=1, threads=1, precision=None,
                      plain=True)
    (_, artefact), (_, plain) = bench.runners
    expected = dagl.create("jpeg", gfam="plain")
    load_into(expected, shipped_weights("jpeg"))
    for name, value in expected.state_dict().items():
        assert torch.equal(plain.model.state_dict()[name], value), name


@pytest.mark.parametrize("args,message", [
    (["{onnx}", "--cpu-paths"], "{onnx}: --cpu-paths runs weights (a .pt, .pth or .safetensors file, or a task name "
                                "such as jpeg) and exports the ONNX graphs from them itself; got an onnx file"),
    (["jpeg", "--cpu-paths", "--image", "{tmp}/missing.png", "--clean", "{tmp}/missing.png"],
     "Invalid value for '--image': File '{tmp}/missing.png' does not exist."),
    (["jpeg", "--cpu-paths", "--image", "{onnx}"], "--image needs --clean, the clean original its PSNR is measured "
                                                    "against"),
    (["jpeg", "--crop", "64"], "--crop needs --cpu-paths"),
    (["jpeg", "--cpu-paths", "--backend", "openvino"], "--backend does not apply with --cpu-paths (it runs every "
                                                       "CPU path)"),
    (["jpeg", "--batch", "1", "--batch", "4"], "--batch is given once without --cpu-paths (it measures one batch "
                                                "size)"),
])
def test_cpu_paths_refusals_are_one_line_before_any_work(tmp_path, args, message):
    onnx = tmp_path / "dagl-jpeg.onnx"
    onnx.write_bytes(b"not read: refused by its name")
    fill = {"onnx": str(onnx), "tmp": str(tmp_path)}
    result = CliRunner().invoke(main, [a.format(**fill) for a in args] + ["--plot", str(tmp_path / "p.png")])
    assert result.exit_code == 2 and result.stderr.strip().splitlines() == [
        f"dagl-bench: error: {message.format(**fill)}"]
    assert not (tmp_path / "p.png").exists()


def test_cpu_paths_default_image_missing_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGL_DATASETS", str(tmp_path))
    result = CliRunner().invoke(main, ["jpeg", "--cpu-paths", "--plot", str(tmp_path / "p.png")])
    assert result.exit_code == 2 and result.stderr.strip().splitlines() == [
        f"dagl-bench: error: {tmp_path}/classic5/jpeg_q10/barbara.jpeg: not found (the default image; set "
        f"DAGL_DATASETS to the datasets folder, or give --image and --clean)"]
