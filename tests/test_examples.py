"""Every script in examples/ runs to the end (each checks its own numbers and fails otherwise)."""
from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

EXAMPLES = sorted((pathlib.Path(__file__).resolve().parents[1] / "examples").glob("*.py"))


def test_examples_exist():
    assert {p.stem for p in EXAMPLES} >= {"nt_xent_shard_map", "moco_queue", "batch_norm_explicit_stats",
                                          "fold_batch_norm", "torchvision_weights"}


@pytest.mark.slow
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_example_runs(example):
    result = subprocess.run([sys.executable, str(example)], cwd=example.parents[1], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, f"{example.name} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    assert result.stdout.strip(), f"{example.name} printed nothing"
