"""Restorer and runners refuse mismatched artefacts and arrays before any work, and never pass on a
NaN, a wrong-shaped output or a half-built session (tiny hand-made ONNX graphs: milliseconds)."""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
import pytest

import dagl
from crafted import tiny_onnx
from dagl.runtime import Restorer, RuntimeLoadError
from dagl.runtime.base import InferenceError
from dagl.runtime.loader import create_runner
from dagl.memory import MemoryBudgetError, check_memory, estimate_peak_bytes
from dagl.runtime.restorer import InputArrayError, RestorerClosedError

FAST = {"tile": 16, "overlap": 4, "threads": 1}
IMAGE = np.full((20, 24), 0.5, np.float32)


@pytest.mark.parametrize("options,message", [
    ({"input_name": "x"}, "graph inputs are ['x'], expected one named 'input'"),
    ({"output_name": "y"}, "graph outputs are ['y'], expected one named 'output'"),
    ({"elem_type": 11}, "input 'input' has ONNX element type 11, expected float32"),
    ({"metadata": {"dagl.channels": "3"}}, "takes 3 channels but task 'jpeg' needs 1"),
])
def test_onnx_interface_mismatch_is_refused_in_one_line_before_any_work(tmp_path, options, message):
    path = tiny_onnx(tmp_path / "m.onnx", **options)
    with pytest.raises(RuntimeLoadError) as excinfo:
        Restorer(path, **FAST)
    assert message in str(excinfo.value) and "\n" not in str(excinfo.value)


def test_declared_output_shape_that_is_not_the_inputs_is_refused(tmp_path):
    with pytest.raises(RuntimeLoadError, match=r"output 'output' has shape \['N', 1, 1, 1\] with a static H/W"):
        Restorer(tiny_onnx(tmp_path / "pool.onnx", "pool"), **FAST)


def test_actual_output_shape_is_checked_on_every_batch(tmp_path):
    restore = Restorer(tiny_onnx(tmp_path / "pool.onnx", "hidden-pool"), **FAST)
    with pytest.raises(InferenceError, match=r"returned shape \(4, 1, 1, 1\) for a batch of shape \(4, 1, 16, 16\)"):
        restore(IMAGE)


def test_nan_output_fails_the_image(tmp_path):
    restore = Restorer(tiny_onnx(tmp_path / "div.onnx", "divide"), **FAST)
    assert np.array_equal(restore(IMAGE), np.ones_like(IMAGE))  # x / x: fine without zeros
    with_zero = IMAGE.copy()
    with_zero[3, 3] = 0.0
    with pytest.raises(InferenceError, match="produced 1 NaN or infinite value"):
        restore(with_zero)


@pytest.mark.slow
def test_nan_weights_are_refused_when_loaded(tmp_path):
    model = dagl.create("jpeg")
    with __import__("torch").no_grad():
        model.tail[0].bias.fill_(float("nan"))
    path = dagl.save_safetensors(model, tmp_path / "nan.safetensors", metadata={"dagl.task": "jpeg"})
    with pytest.raises(RuntimeLoadError, match="tensor 'tail.0.bias' holds 1 NaN or infinite value"):
        Restorer(path, **FAST)


@pytest.mark.parametrize("array,message", [
    ((IMAGE * 255).astype(np.uint8), "got a uint8 array; pass float samples in [0, 1]"),
    (np.where(np.eye(20, 24) > 0, np.nan, IMAGE).astype(np.float32), "holds 20 NaN or infinite sample(s)"),
    (np.full((20, 24), np.inf, np.float32), "holds 480 NaN or infinite sample(s)"),
    (IMAGE * 255, "samples range over [127.5, 127.5]"),
    (np.zeros((20, 24, 3), np.float32), "takes (H, W, 1) images with 1 channel(s)"),
    (np.zeros((0, 0), np.float32), "is 0x0 px; images need at least 8 px on each side"),
    (np.zeros((7, 12), np.float32), "is 12x7 px; images need at least 8 px on each side"),
])
def test_restorer_refuses_arrays_that_are_not_unit_float_images(tmp_path, array, message):
    restore = Restorer(tiny_onnx(tmp_path / "id.onnx"), **FAST)
    with pytest.raises(InputArrayError) as excinfo:
        restore(array)
    assert message in str(excinfo.value)
    assert not restore.runner.is_active  # refused before the session was even built


def test_unclipped_protocol_noise_is_accepted(tmp_path):
    noisy = IMAGE + np.random.default_rng(0).normal(0, 50 / 255, IMAGE.shape).astype(np.float32)
    assert Restorer(tiny_onnx(tmp_path / "id.onnx"), **FAST)(noisy).shape == IMAGE.shape


def test_random_weights_artefact_warns_in_one_line(tmp_path, caplog):
    path = tiny_onnx(tmp_path / "rnd.onnx", metadata={"dagl.weights": "RANDOM (seed 0), not trained"})
    with caplog.at_level(logging.WARNING):
        Restorer(path, **FAST)
    assert [r.getMessage() for r in caplog.records] == [
        "rnd.onnx holds RANDOM, untrained weights (RANDOM (seed 0), not trained): its outputs are meaningless; "
        "use it for pipeline smoke tests only"]
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        Restorer(tiny_onnx(tmp_path / "real.onnx"), **FAST)
    assert caplog.records == []


def test_random_engine_sidecar_warns(caplog, tmp_path):
    from dagl.runtime.metadata import warn_if_random

    with caplog.at_level(logging.WARNING):
        assert warn_if_random({"weights": {"source": "random", "random": True, "seed": 0}}, tmp_path / "e.plan")
        assert not warn_if_random({"weights": {"source": "w.pt", "random": False}}, tmp_path / "e.plan")
    assert len(caplog.records) == 1 and "e.plan holds RANDOM" in caplog.text


def test_four_threads_making_the_first_call_open_one_session(tmp_path, monkeypatch):
    import onnxruntime

    opened = []
    real = onnxruntime.InferenceSession

    def slow_session(*args, **kwargs):
        opened.append(threading.get_ident())
        time.sleep(0.2)  # wide window for a second thread to start its own session
        return real(*args, **kwargs)

    monkeypatch.setattr(onnxruntime, "InferenceSession", slow_session)
    restore = Restorer(tiny_onnx(tmp_path / "id.onnx"), **FAST)
    results: list[np.ndarray] = []
    threads = [threading.Thread(target=lambda: results.append(restore(IMAGE))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(opened) == 1 and len(results) == 4
    assert all(np.array_equal(r, IMAGE) for r in results)


def test_close_during_a_call_is_a_clear_error(tmp_path):
    restore = Restorer(tiny_onnx(tmp_path / "id.onnx"), **FAST)
    inside, release = threading.Event(), threading.Event()

    def progress(n: int) -> None:
        inside.set()
        release.wait(5)

    worker = threading.Thread(target=restore, args=(IMAGE, progress))
    worker.start()
    assert inside.wait(5)
    with pytest.raises(RestorerClosedError, match="close\\(\\) called while 1 restoration\\(s\\) are running"):
        restore.close()
    release.set()
    worker.join()
    restore.close()  # allowed once the call returned
    assert not restore.runner.is_active


def test_tile_memory_is_refused_at_construction(tmp_path, monkeypatch):
    """--tile 320 on a 48x48 image took over 12 GB; now refused before the artefact is even read."""
    import dagl.runtime.restorer as restorer_module

    monkeypatch.setattr(restorer_module, "create_runner", lambda *a, **k: pytest.fail("loaded the model"))
    with pytest.raises(MemoryBudgetError) as excinfo:
        Restorer(tmp_path / "never-read.onnx", tile=320, batch=1)
    assert "1 tile(s) of 320x320 px would need about 11.7 GiB" in str(excinfo.value)
    assert "use a smaller --tile or --batch" in str(excinfo.value)
    with pytest.raises(MemoryBudgetError, match="4 tile"):
        Restorer(tmp_path / "never-read.onnx", tile=128, batch=4, memory_budget=1 << 30)


def test_untiled_image_memory_is_refused_before_the_session_starts(tmp_path):
    restore = Restorer(tiny_onnx(tmp_path / "id.onnx"), tiling="none", memory_budget=1 << 30)
    with pytest.raises(MemoryBudgetError, match="1 whole image"):
        restore(np.zeros((300, 300), np.float32))
    assert not restore.runner.is_active


@pytest.mark.parametrize("tile,batch,measured", [(64, 1, 46.5e6), (96, 1, 161.4e6), (128, 1, 420.1e6),
                                                 (160, 1, 918.4e6)])
def test_memory_estimate_matches_the_cpu_measurements(tile, batch, measured):
    """The fitted constants reproduce the ru_maxrss figures in dagl.memory within 10%."""
    assert abs(estimate_peak_bytes(tile, tile, batch) / measured - 1) < 0.10


def test_default_tiles_fit_any_budget_the_toolkit_sets():
    check_memory(80, 80, 4, budget=1 << 30)  # the defaults: ~0.4 GiB
    check_memory(256, 256, 1, budget=6 << 30)  # the largest engine profile tile


def test_weights_task_comes_from_safetensors_metadata(tmp_path):
    path = dagl.save_safetensors(dagl.create("jpeg"), tmp_path / "trained.safetensors",
                                 metadata={"dagl.task": "jpeg", "dagl.trainer": "dagl-train"})
    assert create_runner(path).info.task == "jpeg"
    with pytest.raises(RuntimeLoadError) as excinfo:
        create_runner(path, task="denoise")
    assert str(excinfo.value) == "trained.safetensors was exported for task 'jpeg', not 'denoise'"
