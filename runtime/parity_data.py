"""Test-set crops as Polygraphy feed dicts: the data behind every backend-vs-backend parity check.

Random inputs say little about an image-restoration network (its attention reacts to image
structure), so parity is checked on crops of the paper's test sets, the same way everywhere: in
the tests (through ``tests/polygraphy_runners.py``) and by users with Polygraphy's own command line::

    polygraphy run dagl-jpeg.onnx --trt --onnxrt ... \\
        --data-loader-script "$(python -m dagl.runtime.parity_data)":load_data

Polygraphy imports the script (``dagl/runtime/polygraphy_loader/dagl_parity_data.py``, which
re-exports :func:`load_data` from a folder where nothing shadows ``torch``) by path and calls
``load_data()`` without arguments, so the dataset is found through environment variables:
``DAGL_DATASETS`` (the datasets folder, default ``../shared/datasets`` beside the checkout, as for
``dagl-eval``), ``DAGL_PARITY_SET`` (default ``classic5``), ``DAGL_PARITY_QUALITY`` (JPEG sets,
default 10) or ``DAGL_PARITY_SIGMA`` (noise sets), ``DAGL_PARITY_CROP`` (side of the centre crops,
default 48) and ``DAGL_PARITY_LIMIT`` (first N images, default all).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from dagl.artefact import INPUT_NAME
from dagl.data.datasets import named_set

DEFAULT_SET = "classic5"
DEFAULT_QUALITY = 10
DEFAULT_CROP = 48


def _env_int(name: str) -> int | None:
    value = os.environ.get(name, "").strip()
    return int(value) if value else None


def load_data(dataset: str | None = None, *, quality: int | None = None, sigma: float | None = None,
              crop: int | None = None, limit: int | None = None, root: Path | None = None
              ) -> Iterator[dict[str, np.ndarray]]:
    """``{"input": (1, C, crop, crop) float32}`` per test image: its degraded centre crop.

    Arguments override the ``DAGL_PARITY_*`` variables; a noise set gets the protocol's seeded
    noise (so its feeds are reproducible), a JPEG set its stored MATLAB JPEGs.
    """
    dataset = dataset or os.environ.get("DAGL_PARITY_SET", DEFAULT_SET)
    sigma = sigma if sigma is not None else _env_int("DAGL_PARITY_SIGMA")
    if sigma is None and quality is None:
        quality = _env_int("DAGL_PARITY_QUALITY") or (DEFAULT_QUALITY if dataset in ("classic5", "live1") else None)
    crop = crop or _env_int("DAGL_PARITY_CROP") or DEFAULT_CROP
    limit = limit or _env_int("DAGL_PARITY_LIMIT")
    for sample in named_set(dataset, sigma=sigma, quality=quality, limit=limit, crop=crop, root=root):
        image = sample.degraded
        planes = image[None] if image.ndim == 2 else image.transpose(2, 0, 1)
        yield {INPUT_NAME: np.ascontiguousarray(planes[None], dtype=np.float32)}


#: The script to pass to ``polygraphy run --data-loader-script``.
SCRIPT = Path(__file__).resolve().parent / "polygraphy_loader" / "dagl_parity_data.py"

if __name__ == "__main__":
    # `python -m dagl.runtime.parity_data` prints the script's path for `--data-loader-script`.
    print(SCRIPT)
