"""The benchmark tool's measuring side (tools/export_bench.py), in-process on a tiny tile (the full run takes minutes)."""

from __future__ import annotations

import pytest

from dagl.artefact import onnx_metadata
from dagl.chosen_weights import WeightsInfo
from dagl.tasks.configs import get_config
from export_bench import worker  # tools/ is on pytest's pythonpath


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["torch-batched", "onnxruntime"])
def test_worker_reports_time_and_memory(backend, jpeg_onnx):
    onnx_path = jpeg_onnx
    row = worker(backend, "jpeg", str(onnx_path), tile=16, threads=1, repeats=2)
    assert row["backend"] == backend
    assert 0 < row["min_s"] <= row["median_s"]
    assert row["peak_rss_mib"] >= row["rss_loaded_mib"] > 50  # torch alone is well over 50 MiB


@pytest.mark.parametrize("task, sigma", [("denoise", 25), ("real-denoise", None)])
def test_onnx_metadata_carries_sigma_only_for_denoise(task, sigma):
    info = WeightsInfo(source="w.pt", sha256="ab" * 32, random=False)
    channels = get_config(task).channels
    props = onnx_metadata(task, channels, "fp16", sigma, info.label)
    assert props["dagl.task"] == task and props["dagl.precision"] == "fp16"
    assert props["dagl.channels"] == str(channels)
    assert props.get("dagl.sigma") == (str(sigma) if sigma else None)
    assert props["dagl.weights"] == "ab" * 32
