"""The smallest training runs that still use the real network, and a free port for their DDP rendezvous."""

from __future__ import annotations

import socket
from pathlib import Path

from dagl.train import TrainConfig


def tiny(out: Path, data: Path, **overrides) -> TrainConfig:
    """The smallest run that still uses the real network: 2 crops of 16x16 per step, validated at the end on
    one 16x16 crop of the default held-out split."""
    options = dict(task="denoise", sigma=25, data=[data], iterations=2, out=out, batch_size=2, patch=16,
                   workers=0, n_images=4, val_every=0, val_crop=16, val_limit=1, log_every=1)
    options.update(overrides)
    return TrainConfig(**options)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
