"""Shared fixtures: official-format checkpoints with random weights, and the paper's test sets."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest
import torch

import dagl

REPO_ROOT = Path(__file__).resolve().parents[1]

# A shell starts background jobs with SIGINT ignored, every child inherits an ignored signal, and Python
# keeps it ignored: the Ctrl-C tests would then see nothing. Give the test process (and so every process it
# starts) Ctrl-C's usual disposition, whatever launched the tests.
signal.signal(signal.SIGINT, signal.default_int_handler)


def write_official_checkpoint(task: str, path: Path, seed: int = 0) -> Path:
    """A checkpoint in the release's format (``torch.save`` of the state dict, ``add_mean`` included)."""
    torch.manual_seed(seed)
    state = dagl.create(task).state_dict()
    state["add_mean.weight"] = torch.eye(3).view(3, 3, 1, 1)
    state["add_mean.bias"] = torch.tensor([0.4488, 0.4371, 0.4040])
    torch.save(state, path)
    return path


@pytest.fixture(scope="session")
def official_checkpoint(tmp_path_factory):
    """Factory: ``official_checkpoint("jpeg")`` -> path of a random-weight official checkpoint."""
    cache: dict[tuple[str, int], Path] = {}

    def make(task: str, seed: int = 0) -> Path:
        if (task, seed) not in cache:
            path = tmp_path_factory.mktemp("ckpt") / f"{task}-{seed}.pt"
            cache[(task, seed)] = write_official_checkpoint(task, path, seed)
        return cache[(task, seed)]

    return make


@pytest.fixture
def fake_trt(monkeypatch):
    """The TensorRT 11 fake as ``tensorrt``, on one fixed GPU for the builder, the engine loader and the cache."""
    import fake_tensorrt
    from dagl.artefact import GPU, engine_build
    from dagl.runtime.trt import cache
    from dagl.runtime.trt import loader as engine_loader

    module = fake_tensorrt.make_module()
    monkeypatch.setitem(sys.modules, "tensorrt", module)
    for where in (engine_build, engine_loader, cache):
        monkeypatch.setattr(where, "current_gpu", lambda: GPU(fake_tensorrt.GPU_NAME, fake_tensorrt.GPU_CC))
    return module


@pytest.fixture(scope="session")
def jpeg_onnx(official_checkpoint, tmp_path_factory) -> Path:
    """The ONNX export (with dagl metadata) of the random-weight official jpeg checkpoint, made once a session:
    exporting the 16-ResBlock network takes seconds. Tests that change the file work on a copy."""
    from onnx_models import export_jpeg_onnx

    return export_jpeg_onnx(official_checkpoint("jpeg"), tmp_path_factory.mktemp("jpeg-onnx"))


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    """``../shared/datasets`` beside the checkout (override with ``DAGL_DATASETS``)."""
    path = Path(os.environ.get("DAGL_DATASETS", REPO_ROOT.parent / "shared" / "datasets"))
    if not path.is_dir():
        pytest.skip(f"test sets not found at {path} (set DAGL_DATASETS)")
    return path
