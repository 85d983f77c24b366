"""runtime/batch.py: dagl-infer's plan of a batch, called as a library, without a model."""

from __future__ import annotations

import numpy as np

from dagl.images.io import write_image
from dagl.runtime.batch import check_batch, plan_batch


def test_plan_names_outputs_and_says_why_a_job_is_skipped(tmp_path):
    for name in ("a.png", "b.png"):
        write_image(tmp_path / name, np.full((16, 16), 0.5, np.float32), 8)
    out = tmp_path / "out"
    out.mkdir()
    write_image(out / "b.png", np.zeros((16, 16), np.float32), 8)
    jobs = plan_batch((str(tmp_path / "*.png"), str(tmp_path / "missing.png")), f"{out}/", overwrite=False)
    check_batch(jobs, "jpeg", 8)
    assert [(job.source.name, job.target, job.error) for job in jobs] == [
        ("a.png", out / "a.png", None),
        ("b.png", out / "b.png", f"output {out / 'b.png'} exists; pass --overwrite to replace it"),
        ("missing.png", None, "no such file")]
