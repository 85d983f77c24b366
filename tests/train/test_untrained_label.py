"""Weights that were never trained (a dagl-train run with no iteration) are labelled RANDOM wherever
they travel: safetensors metadata, model card, train.log, the ONNX exported from them, and the
warning of every command that loads them, exactly as ``dagl-export --weights random`` is."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import onnx
import pytest
from click.testing import CliRunner
from safetensors import safe_open

from dagl.train import Trainer, distributed
from dagl.artefact.naming import is_random_label
from tiny_training import tiny


@pytest.fixture(scope="module")
def untrained(tmp_path_factory, datasets_dir: Path) -> Path:
    """A --time-budget run whose budget is spent before it starts: 0 iterations, its weights written."""
    out = tmp_path_factory.mktemp("run")
    config = tiny(out, datasets_dir / "train" / "bsd400", task="jpeg", sigma=None, iterations=None, time_budget=5.0,
                  seed=7)
    trainer = Trainer(config, distributed.setup("cpu"), started_at=time.monotonic() - 60)
    weights = trainer.fit()
    assert trainer.iteration == 0
    return weights


def test_metadata_card_and_log_say_random(untrained):
    with safe_open(str(untrained), framework="pt") as fh:
        label = fh.metadata()["dagl.weights"]
    assert label.startswith("RANDOM (seed 7), not trained: dagl-train ran 0 iterations (the --time-budget of 5 s")
    assert is_random_label(label)
    card = untrained.with_suffix(".md").read_text()
    assert "**UNTRAINED: RANDOM weights** (seeded initialisation, seed 7)" in card
    assert "trained with `dagl-train`" not in card
    log = (untrained.parent / "train.log").read_text()
    assert "nothing was trained: the --time-budget of 5 s was used up" in log


def test_inference_from_them_warns(untrained, caplog):
    from dagl.runtime.loader import create_runner

    with caplog.at_level(logging.WARNING):
        create_runner(untrained)
    assert any("holds RANDOM, untrained weights (RANDOM (seed 7), not trained" in r.getMessage() for r in caplog.records)


@pytest.mark.slow
def test_the_onnx_exported_from_them_is_labelled_random(untrained, tmp_path):
    import dagl.export.cli

    result = CliRunner().invoke(dagl.export.cli.main, ["--task", "jpeg", "--weights", str(untrained), "--onnx-only",
                                                       "--output-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "RANDOM (seed 7), not trained" in result.stderr
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "dagl-jpeg.onnx"), load_external_data=False).metadata_props}
    assert props["dagl.weights"].startswith("RANDOM (seed 7), not trained: dagl-train ran 0 iterations")


@pytest.mark.slow
def test_trained_weights_are_not_labelled(tmp_path, datasets_dir):
    config = tiny(tmp_path, datasets_dir / "train" / "bsd400", task="jpeg", sigma=None, iterations=1)
    weights = Trainer(config, distributed.setup("cpu")).fit()
    with safe_open(str(weights), framework="pt") as fh:
        assert "dagl.weights" not in fh.metadata()
    assert "trained with `dagl-train`" in weights.with_suffix(".md").read_text()


@pytest.mark.slow
def test_evaluation_reports_name_them_random(untrained, tmp_path):
    import numpy as np
    from PIL import Image

    from dagl.runtime.evaluate.cli import main

    for folder in ("clean", "degraded"):
        (tmp_path / "set" / folder).mkdir(parents=True)
        Image.fromarray(np.full((24, 24), 100, np.uint8)).save(tmp_path / "set" / folder / "a.png")
    result = CliRunner().invoke(main, ["--task", "jpeg", "--dataset", str(tmp_path / "set"), "--model", str(untrained),
                                       "--tiling", "none", "--report", str(tmp_path / "report")])
    assert result.exit_code == 0, result.output
    assert f"{untrained.name} (torch, RANDOM weights)" in result.stdout
    assert any(f"{untrained.name} (torch, RANDOM weights)" in p.read_text()
               for p in (tmp_path / "report").iterdir() if p.suffix in (".md", ".csv"))
