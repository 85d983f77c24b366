"""Two CPU processes under DDP (gloo) against one process: same samples, same gradients, same CLI."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from dagl.train import TrainConfig, Trainer, distributed
from tiny_training import free_port


def config(out: Path, data: Path, **overrides) -> TrainConfig:
    options = dict(task="denoise", sigma=25, data=[data], iterations=1, out=out, batch_size=4, patch=16,
                   workers=0, n_images=4, val_every=0, val_crop=16, val_limit=1)
    options.update(overrides)
    return TrainConfig(**options)


def first_step(trainer: Trainer) -> dict:
    """Inputs and gradients of the first batch, gradients after DDP's all-reduce.

    The network runs in float64 (built under a float64 default dtype, fed float64 inputs): in float32
    the GFAM's hard mask decisions at the threshold flip between two summation orders and move the
    threshold convs' gradients by up to 1e-4 relative, which would hide a small reduction bug.
    """
    noisy, clean = next(trainer.batches())
    loss = trainer.compute_gradients(noisy.double(), clean)
    grads = {name: p.grad.clone() for name, p in trainer.model.named_parameters() if p.requires_grad}
    return {"noisy": noisy, "clean": clean, "loss": loss, "grads": grads}


def rank_main(rank: int, world_size: int, port: int, out: str, data: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    torch.set_default_dtype(torch.float64)
    ctx = distributed.setup("cpu")
    try:
        torch.save(first_step(Trainer(config(Path(out), Path(data)), ctx)), Path(out) / f"rank{rank}.pt")
    finally:
        distributed.teardown()


@pytest.fixture(scope="module")
def bsd400(datasets_dir: Path) -> Path:
    return datasets_dir / "train" / "bsd400"


@pytest.mark.slow
def test_two_gloo_ranks_give_the_gradients_of_one_process_on_the_whole_batch(tmp_path, bsd400):
    mp.spawn(rank_main, args=(2, free_port(), str(tmp_path), str(bsd400)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        single = first_step(Trainer(config(tmp_path / "single", bsd400), distributed.setup("cpu")))
    finally:
        torch.set_default_dtype(previous)
    assert all(g.dtype == torch.float64 for g in single["grads"].values())

    def rows(batch: torch.Tensor) -> list[bytes]:
        return sorted(sample.numpy().tobytes() for sample in batch)

    # The DistributedSampler splits the one-process batch between the ranks, 2 samples each.
    for key in ("noisy", "clean"):
        assert ranks[0][key].shape[0] == 2
        assert rows(torch.cat([ranks[0][key], ranks[1][key]])) == rows(single[key])
    assert (ranks[0]["loss"] + ranks[1]["loss"]) / 2 == pytest.approx(single["loss"], rel=1e-6)
    # Float64 sums in another order: each tensor's gradient agrees to 1e-10 relative (measured at most
    # 3.3e-15). A wrong reduction (a sum instead of a mean, a rank's samples dropped or doubled) is off by
    # 50 % or more.
    expected = torch.cat([g.flatten() for g in single["grads"].values()]).double()
    for rank in ranks:
        got = torch.cat([rank["grads"][name].flatten() for name in single["grads"]]).double()
        assert float((got - expected).norm() / expected.norm()) < 1e-10
        for name, single_grad in single["grads"].items():
            error = float((rank["grads"][name] - single_grad).norm() / single_grad.norm())
            assert error < 1e-10, name
    assert "body.8.c1_1.W.weight" not in single["grads"]  # frozen: DDP needs every parameter to get a gradient


@pytest.mark.slow
def test_torchrun_runs_the_cli_on_two_cpu_processes(tmp_path, bsd400):
    out = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
           str(free_port()), "-m", "dagl.train.cli", "--task", "denoise", "--sigma", "25", "--data", str(bsd400),
           "--iterations", "2", "--batch-size", "4", "--patch", "16", "--n-images", "4", "--workers", "0",
           "--val-crop", "16", "--val-limit", "1", "--log-every", "1", "--out", str(out), "--device", "cpu"]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    log = (out / "train.log").read_text()
    assert "global batch 4 (2 x 2)" in log
    assert len(re.findall(r"train it +\d+/2", log)) == 2  # rank 0 alone writes
    assert (out / "dagl-denoise-s25.safetensors").is_file() and (out / "dagl-denoise-s25.md").is_file()
    assert torch.load(out / "checkpoint.pt", weights_only=False)["iteration"] == 2
