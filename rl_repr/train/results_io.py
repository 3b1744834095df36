"""Writing a run's final results: ``<workdir>/results.json`` and a readable table."""
from __future__ import annotations

import json
import os
import tempfile
from typing import Mapping

import jax


def write_results(workdir: str, results: Mapping) -> str:
    """Atomically writes ``results`` as JSON (a crash never leaves a half-written file).

    Only process 0 writes. Returns the path.
    """
    path = os.path.join(workdir, "results.json")
    if jax.process_index() != 0:
        return path
    fd, tmp = tempfile.mkstemp(dir=workdir, prefix=".results-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(dict(results), f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)
    return path


def accuracy_table(results: Mapping, rows: list[tuple[str, str]]) -> str:
    """A Markdown table of linear-probe and kNN accuracy, one row per ``(label, prefix)``."""
    lines = ["| representation | linear probe | kNN |", "|---|---|---|"]
    for label, prefix in rows:
        probe = results.get(f"{prefix}linear_probe_accuracy")
        knn = results.get(f"{prefix}knn_accuracy")
        if probe is None:
            continue
        lines.append(f"| {label} | {100 * probe:.2f}% | {100 * knn:.2f}% |")
    return "\n".join(lines)
