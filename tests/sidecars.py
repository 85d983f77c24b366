"""A well-formed engine sidecar, the starting point of the tests that alter one."""

from __future__ import annotations

from dagl.artefact import EngineSidecar

SIDECAR = EngineSidecar(task="denoise", channels=1, precision="fp16", sigma=25, tensorrt_version="11.4.0.7",
                        gpu_name="NVIDIA H100 80GB HBM3", compute_capability="9.0", min_shape=(1, 1, 16, 16),
                        opt_shape=(4, 1, 80, 80), max_shape=(4, 1, 256, 256), onnx_sha256="ab" * 32,
                        weights={"source": "w.safetensors", "sha256": "cd" * 32, "random": False})
