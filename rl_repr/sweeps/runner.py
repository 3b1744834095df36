"""Running a sweep: every cell an ordinary run of its method, resumable, summarised as it goes.

* a cell whose ``results.json`` exists is finished and is skipped;
* an interrupted cell resumes from its latest checkpoint (the runner's own resume);
* a cell that diverged (NaN loss) or failed is recorded in ``<cell>/sweep_status.json`` and
  skipped on the next run unless ``retry_failed``; the other cells still run;
* a workdir whose ``config.json`` differs from the cell's config is refused (never mixed);
* every cell's config is checked by its method's rules before the first cell trains.

After each cell the sweep's ``results.json`` (every cell's overrides, status and results),
``table.md`` (laid out like SimCLR Table B.1) and ``plot.png`` (like Figure 9) are rewritten,
so a partial sweep always has an up-to-date summary.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import time
import traceback
from typing import Any, Callable

from rl_repr.core import runner
from rl_repr.core import workdir as workdir_lib
from rl_repr.core.config import ConfigError
from rl_repr.core.files import atomic_open, write_json
from rl_repr.core.log import logger
from rl_repr.sweeps.definition import Sweep, cell_config
from rl_repr.sweeps.report import bar_chart, markdown_table

SUMMARY_FILES = ("results.json", "table.md", "plot.png")
STATUS_FILE = "sweep_status.json"


def _check_workdir_config(workdir: str, config: Any) -> None:
    changes = workdir_lib.config_changes(workdir, config)
    if changes:
        raise ConfigError(
            f"{workdir} holds a run of a different config (keys {[c.split(':')[0] for c in changes[:5]]} differ); "
            "delete that directory to rerun the cell, or pass a new --dir for the changed sweep.")


def cell_status(workdir: str) -> str:
    """'done' (results.json written), 'diverged' / 'failed' (recorded by the sweep) or 'pending'."""
    if os.path.exists(os.path.join(workdir, "results.json")):
        return "done"
    status_path = os.path.join(workdir, STATUS_FILE)
    if os.path.exists(status_path):
        with open(status_path) as f:
            return json.load(f)["status"]
    return "pending"


def collect(sweep: Sweep, sweep_dir: str, *, plot: bool = True) -> dict:
    """Gathers every cell's status and results; writes the sweep's results.json, table.md and
    (with ``plot``) plot.png in ``sweep_dir``; returns the results.json content."""
    entries = []
    for cell in sweep.cells:
        workdir = os.path.join(sweep_dir, cell.name)
        entry = {"name": cell.name, "overrides": dict(cell.overrides), "status": cell_status(workdir)}
        if entry["status"] == "done":
            with open(os.path.join(workdir, "results.json")) as f:
                entry["results"] = json.load(f)
        elif entry["status"] != "pending":
            with open(os.path.join(workdir, STATUS_FILE)) as f:
                entry["error"] = json.load(f).get("error", "")
        entries.append(entry)
    summary = {"sweep": sweep.name, "description": sweep.description,
               "layout": dataclasses.asdict(sweep.layout), "cells": entries,
               "done": sum(e["status"] == "done" for e in entries), "total": len(entries)}
    os.makedirs(sweep_dir, exist_ok=True)
    write_json(os.path.join(sweep_dir, "results.json"), summary)
    title = f"{sweep.name} ({summary['done']}/{summary['total']} cells done)"
    table = markdown_table(entries, sweep.layout, title)
    if sweep.description:
        table = f"{table}\n{sweep.description}\n"
    with atomic_open(os.path.join(sweep_dir, "table.md")) as f:
        f.write(table)
    if plot:
        bar_chart(entries, sweep.layout, os.path.join(sweep_dir, "plot.png"), title)
    return summary


def _train_registered_method(config: Any, workdir: str) -> dict:
    return runner.run(config.method, config, workdir)


def run_sweep(sweep: Sweep, sweep_dir: str, *, train_fn: Callable[[Any, str], dict] | None = None,
              retry_failed: bool = False, plot: bool = True, log: Callable[[str], None] = logger.info) -> dict:
    """Trains every unfinished cell in ``<sweep_dir>/<cell name>``; returns :func:`collect`'s summary.

    Args:
      sweep: the sweep definition.
      sweep_dir: where the cells' workdirs and the summary files go.
      train_fn: ``(config, workdir) -> results``; default ``rl_repr.core.runner.run`` of the
        cell's ``config.method``. It must write ``<workdir>/results.json`` when the run finishes and
        return without it when stopped early (preemption): the sweep then stops, to resume.
      retry_failed: rerun cells recorded as diverged or failed.
      plot: write plot.png after each cell.
      log: where progress lines go (default: the ``rl_repr`` logger).
    """
    train_fn = train_fn or _train_registered_method
    configs = {}
    for cell in sweep.cells:  # every cell's config is checked before anything trains
        try:
            configs[cell.name] = cell_config(sweep.base, cell.overrides)
            runner.validate(configs[cell.name])
        except ConfigError as error:
            raise ConfigError(f"sweep cell {cell.name!r}: {error}") from None
        _check_workdir_config(os.path.join(sweep_dir, cell.name), configs[cell.name])
    os.makedirs(sweep_dir, exist_ok=True)
    total, trained_seconds, trained = len(sweep.cells), 0.0, 0
    for index, cell in enumerate(sweep.cells, 1):
        workdir = os.path.join(sweep_dir, cell.name)
        status = cell_status(workdir)
        prefix = f"[{index}/{total}] {cell.name}:"
        if status == "done" or (status in ("diverged", "failed") and not retry_failed):
            log(f"{prefix} {status} earlier, skipped")
            continue
        log(f"{prefix} training" + (" (resuming)" if os.path.isdir(os.path.join(workdir, "checkpoints")) else ""))
        if os.path.exists(os.path.join(workdir, STATUS_FILE)):
            os.remove(os.path.join(workdir, STATUS_FILE))
        start = time.perf_counter()
        try:
            results = train_fn(configs[cell.name], workdir)
        except FloatingPointError as error:  # the loop's NaN stop: a result of the grid, not a bug
            _record(workdir, "diverged", error, log, prefix)
            results = None
        except Exception as error:  # noqa: BLE001 - one bad cell must not lose the others
            logger.error(traceback.format_exc())
            _record(workdir, "failed", error, log, prefix)
            results = None
        seconds = time.perf_counter() - start
        _release_compiled_programs()
        if results is not None and cell_status(workdir) != "done":
            log(f"{prefix} stopped before the end; rerun the same command to resume it.")
            return collect(sweep, sweep_dir, plot=plot)
        trained, trained_seconds = trained + 1, trained_seconds + seconds
        if results is not None:
            left = sum(cell_status(os.path.join(sweep_dir, c.name)) == "pending" for c in sweep.cells)
            metric = sweep.layout.metrics[0]
            score = f", {metric} {100 * results[metric]:.1f}%" if metric in results else ""
            log(f"{prefix} done in {seconds:.0f}s{score}; {left} cells left, about "
                f"{left * trained_seconds / trained / 60:.0f} min at this sweep's pace")
        collect(sweep, sweep_dir, plot=plot)
    summary = collect(sweep, sweep_dir, plot=plot)
    log(f"sweep {sweep.name}: {summary['done']}/{total} cells done; summary in "
        f"{os.path.join(sweep_dir, 'results.json')}, table.md, plot.png")
    return summary


def _record(workdir: str, status: str, error: BaseException, log, prefix: str) -> None:
    os.makedirs(workdir, exist_ok=True)
    message = f"{type(error).__name__}: {error}"
    write_json(os.path.join(workdir, STATUS_FILE), {"status": status, "error": message})
    log(f"{prefix} {status}: {message.splitlines()[0]}")


def _release_compiled_programs() -> None:
    """Each cell compiles its own step; drop them so a long sweep's memory stays flat."""
    if "jax" in sys.modules:
        sys.modules["jax"].clear_caches()


def publish(sweep_dir: str, destination: str) -> list[str]:
    """Copies the summary files (results.json, table.md, plot.png), not the workdirs, to
    ``destination`` (e.g. ``experiments/results/<sweep>``); returns the copied paths."""
    os.makedirs(destination, exist_ok=True)
    copied = []
    for name in SUMMARY_FILES:
        source = os.path.join(sweep_dir, name)
        if os.path.exists(source):
            copied.append(shutil.copy(source, os.path.join(destination, name)))
    return copied
