"""What the classic-study scripts (``experiments/study_*.py``) share: run a study's sweep
resumably, gather its cells by setting over seeds, read curves, and write the results.

Each study script trains the cells of ``configs/studies/<name>.py`` through
``rl_repr.sweeps.run_sweep`` (finished cells are skipped, interrupted ones resume from their
checkpoints), then writes ``results.json`` (every cell's numbers), ``table.md`` and
``plot.png`` under ``experiments/results/<name>/``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from typing import Any, Iterable, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from rl_repr import sweeps  # noqa: E402
from rl_repr.core.files import atomic_open, write_json  # noqa: E402
from rl_repr.core.log import show_messages  # noqa: E402
from rl_repr.core.mesh import request_cpu_devices  # noqa: E402
from rl_repr.core.recipes import import_recipe_file  # noqa: E402


def parse_arguments(name: str, description: str, *, devices: int = 0) -> argparse.Namespace:
    """``--dir`` (the cells' workdirs), ``--out`` (the published results), ``--arg`` (the sweep's
    launch argument) and ``--report_only``; starts the simulated CPU devices the study needs."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--dir", default=os.path.join(ROOT, "workdirs", "studies", name))
    parser.add_argument("--out", default=os.path.join(ROOT, "experiments", "results", name))
    parser.add_argument("--arg", default="", help="the sweep's launch argument (e.g. 'quick')")
    parser.add_argument("--report_only", action="store_true", help="only rewrite the results from finished cells")
    args = parser.parse_args()
    show_messages(verbose=False)
    request_cpu_devices(devices)
    return args


def run_study(name: str, args: argparse.Namespace) -> tuple[sweeps.Sweep, dict, float]:
    """Trains the unfinished cells of ``configs/studies/<name>.py:<arg>``; returns the sweep, its
    collected summary and the wall time of this call in minutes."""
    start = time.perf_counter()
    # the launch argument apart from the path: it may hold a path of its own (the distillation teacher)
    module, arg = import_recipe_file(os.path.join(ROOT, "configs", "studies", f"{name}.py"), args.arg or None,
                                     "sweep", "get_sweep", "configs/studies/depth.py")
    sweep = module.get_sweep(arg)
    if args.report_only:
        summary = sweeps.collect(sweep, args.dir, plot=False)
    else:
        summary = sweeps.run_sweep(sweep, args.dir, plot=False)
    return sweep, summary, (time.perf_counter() - start) / 60


def done_cells(summary: dict) -> list[dict]:
    """The finished cells (each with its ``overrides`` and ``results``)."""
    return [c for c in summary["cells"] if c["status"] == "done"]


def group(cells: Iterable[dict], keys: Sequence[str]) -> dict[tuple, list[dict]]:
    """Finished cells grouped by the values of ``keys`` (the seeds of one setting together)."""
    groups: dict[tuple, list[dict]] = {}
    for cell in cells:
        groups.setdefault(tuple(cell["overrides"].get(k) for k in keys), []).append(cell)
    return groups


def values(cells: Sequence[dict], metric: str, scale: float = 100.0) -> list[float]:
    return [scale * c["results"][metric] for c in cells if metric in c.get("results", {})]


def mean_spread(xs: Sequence[float], digits: int = 1) -> str:
    """``'91.2 ± 0.4'`` (mean ± sample standard deviation over seeds); one value alone, '–' for none."""
    if not xs:
        return "–"
    if len(xs) == 1:
        return f"{xs[0]:.{digits}f}"
    return f"{statistics.mean(xs):.{digits}f} ± {statistics.stdev(xs):.{digits}f}"


def curve(workdir: str, metric: str) -> tuple[list[int], list[float]]:
    """``(steps, values)`` of ``metric`` in a run's ``metrics.jsonl`` (the monitor's and the loop's lines)."""
    steps, found = [], []
    path = os.path.join(workdir, "metrics.jsonl")
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                record = json.loads(line)
                if metric in record:
                    steps.append(record["step"])
                    found.append(record[metric])
    return steps, found


def machine_note(minutes: float, summary: dict | None = None) -> str:
    """Where and how long the study ran (the load average is the machine's, shared with other jobs)."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    trained = ""
    if summary is not None:
        seconds = sum(c["results"].get("train_seconds", 0.0) for c in done_cells(summary))
        trained = f"; the training loops of its {len(done_cells(summary))} runs took {seconds / 60:.1f} min in all"
    return (f"Ran on a {os.cpu_count()}-core CPU ({platform.machine()}) shared with other jobs (load average "
            f"{load:.1f} when this table was written){trained}; the last call of the script took {minutes:.1f} min.")


def write_results(out_dir: str, data: dict[str, Any], markdown: str, figure) -> list[str]:
    """Writes ``results.json``, ``table.md`` and ``plot.png`` (a matplotlib figure) under ``out_dir``."""
    os.makedirs(out_dir, exist_ok=True)
    paths = [write_json(os.path.join(out_dir, "results.json"), data), os.path.join(out_dir, "table.md"),
             os.path.join(out_dir, "plot.png")]
    with atomic_open(paths[1]) as f:
        f.write(markdown.rstrip() + "\n")
    figure.tight_layout()
    figure.savefig(paths[2], dpi=110)
    return paths


def pyplot():
    """matplotlib's pyplot with the file-only backend."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return plt
