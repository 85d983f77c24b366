"""PyTorch backend: a DAGL weights file (official checkpoint or safetensors) run by ``dagl.load``."""

from .loader import create, load_model
from .runner import TorchRunner

__all__ = ["TorchRunner", "create", "load_model"]
