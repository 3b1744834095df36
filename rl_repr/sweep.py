"""Sweeps as data: a base recipe plus a list of overrides, each cell an ordinary run.

    python -m rl_repr.sweep --sweep=configs/ablations/batch_size.py:digits --dir=workdirs/sweeps/bs \
        [--publish=experiments/results/batch_size-digits] [--devices=N] [--retry_failed] [--list]

A sweep file defines ``get_sweep(arg) -> Sweep``. Each cell trains in ``<dir>/<cell name>``
through the trainer ``rl_repr.main`` dispatches to (``config.method``), exactly as
``python -m rl_repr.main --config=... --workdir=<dir>/<cell>`` would, so:

* a cell whose ``results.json`` exists is finished and is skipped;
* an interrupted cell resumes from its latest checkpoint (the trainer's own resume);
* a cell that diverged (NaN loss) or failed is recorded in ``<cell>/sweep_status.json``
  and skipped on the next run unless ``--retry_failed``; the other cells still run;
* a workdir whose ``config.json`` differs from the cell's config is refused (never mixed);
* every override key of every cell is checked before the first cell trains.

After each cell the sweep's ``results.json`` (every cell's overrides, status and results),
``table.md`` (laid out like SimCLR Table B.1) and ``plot.png`` (like Figure 9) are rewritten,
so a partial sweep always has an up-to-date summary.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import itertools
import json
import os
import re
import shutil
import sys
import time
import traceback
from typing import Any, Callable, Mapping, Sequence

from rl_repr import config_utils
from rl_repr.sweep_report import TableLayout, bar_chart, markdown_table

Overrides = Mapping[str, Any]
SUMMARY_FILES = ("results.json", "table.md", "plot.png")
STATUS_FILE = "sweep_status.json"


# ============================================================================ definition
@dataclasses.dataclass(frozen=True)
class Cell:
    """One run of a sweep: a name (its workdir) and the dotted config keys it overrides."""

    name: str
    overrides: Overrides


@dataclasses.dataclass(frozen=True)
class Sweep:
    """A base config and the cells that override it.

    Attributes:
      name: short name, used in titles.
      base: the base recipe (an ``ml_collections.ConfigDict``, ideally locked so that a
        misspelt override key is an error).
      cells: the runs, in the order they are trained.
      layout: how the table and chart arrange the cells (its keys must be set by every cell).
      description: one paragraph for the table's heading (budget, what to look for).
      validate: ``config -> None`` raising on an invalid cell config (the trainer's rules),
        run on every cell before the first one trains.
    """

    name: str
    base: Any
    cells: tuple[Cell, ...]
    layout: TableLayout
    description: str = ""
    validate: Callable[[Any], None] | None = None

    def __post_init__(self):
        names = [c.name for c in self.cells]
        if len(set(names)) != len(names):
            duplicates = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"sweep {self.name!r} has duplicate cell names {duplicates}; give the cells "
                             "distinct overrides or pass name_keys that tell them apart.")
        for cell in self.cells:
            missing = [k for k in self.layout.keys() if k not in cell.overrides]
            if missing:
                raise ValueError(f"cell {cell.name!r} of sweep {self.name!r} does not set {missing}, which "
                                 "its table layout uses; add them to every cell's overrides.")


def axis(key: str, values: Sequence[Any]) -> list[dict[str, Any]]:
    """One override per value of a dotted config key: ``axis('batch_size', [32, 64])``."""
    return [{key: v} for v in values]


def product(*axes: Sequence[Overrides]) -> list[dict[str, Any]]:
    """The Cartesian product of axes, each a list of override dicts, merged left to right.

    An axis may set several keys per value (``[{'lr_scaling': 'linear', 'base_lr': 4.8}, ...]``).
    The first axis varies slowest: ``product(axis('a', [1, 2]), axis('b', [3, 4]))`` is
    ``[{a:1,b:3}, {a:1,b:4}, {a:2,b:3}, {a:2,b:4}]``.
    """
    return [{k: v for part in combo for k, v in part.items()} for combo in itertools.product(*axes)]


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (tuple, list)):
        return "x".join(_format(v) for v in value)
    return str(value)


def cell_name(overrides: Overrides, keys: Sequence[str] | None = None) -> str:
    """A directory name from the overrides: ``batch_size=32,epochs=10,lr_scaling=sqrt``.

    ``keys`` picks (and orders) the keys named; each is shortened to its last dotted part.
    """
    keys = list(overrides) if keys is None else keys
    name = ",".join(f"{k.split('.')[-1]}={_format(overrides[k])}" for k in keys)
    return re.sub(r"[^A-Za-z0-9._=,+-]", "-", name)


def cells(overrides: Sequence[Overrides], name_keys: Sequence[str] | None = None) -> tuple[Cell, ...]:
    """Cells named by :func:`cell_name` from a list of override dicts (e.g. :func:`product`)."""
    return tuple(Cell(cell_name(o, name_keys), dict(o)) for o in overrides)


def cell_config(base: Any, overrides: Overrides) -> Any:
    """A copy of ``base`` with the dotted ``overrides`` set; a key the base lacks (or a value of
    the wrong type) raises ``ConfigError`` naming it."""
    config = copy.deepcopy(base)
    for key, value in overrides.items():
        *parents, leaf = key.split(".")
        target = config_utils.get_dotted(config, ".".join(parents)) if parents else config
        try:
            if target is config_utils._MISSING or leaf not in target:  # noqa: SLF001
                raise KeyError(key)
            target[leaf] = value
        except (KeyError, AttributeError, TypeError) as error:
            raise config_utils.ConfigError(
                f"sweep override {key}={value!r} does not fit the base config ({error!r}); use a key the "
                "recipe defines, with a value of its type.") from None
    return config


def ablation_base(recipe_path: str, *, quick: bool = False, **overrides: Any) -> Any:
    """A recipe as an ablation's base config: evaluated once at the end, with no baselines
    and no fine-tuning (each cell measures only its own change); ``quick`` cuts the budget to
    30 epochs with 3 of warmup, a first look. ``overrides`` are applied on top."""
    base = config_utils.load_config_file(recipe_path)
    base.update(eval_every_steps=0, baselines=False, finetune_fractions=(), log_every_steps=50, **overrides)
    if quick:
        base.update(epochs=30.0, warmup_epochs=3.0)
    return base


def load_sweep_file(spec: str) -> Sweep:
    """``get_sweep(arg)`` of ``path[:arg]``, e.g. ``configs/ablations/batch_size.py:digits``."""
    module, arg = config_utils.import_recipe_file(spec, None, "sweep", "configs/ablations/batch_size.py:digits")
    return module.get_sweep(arg)


# ============================================================================ running
def _json_normalised(config: Any) -> Any:
    """The config as ``config_utils.config_to_json`` writes it, read back."""
    data = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    return json.loads(json.dumps(data, sort_keys=True, default=repr))


def _differing_keys(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in _differing_keys(a.get(k), b.get(k), f"{prefix}{k}.")]
    return [] if a == b else [prefix.rstrip(".")]


def _check_workdir_config(workdir: str, config: Any) -> None:
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        return
    with open(path) as f:
        existing = json.load(f)
    differing = _differing_keys(existing, _json_normalised(config))
    if differing:
        raise config_utils.ConfigError(
            f"{workdir} holds a run of a different config (keys {differing[:5]} differ); delete that "
            "directory to rerun the cell, or pass a new --dir for the changed sweep.")


def cell_status(workdir: str) -> str:
    """'done' (results.json written), 'diverged' / 'failed' (recorded by the sweep) or 'pending'."""
    if os.path.exists(os.path.join(workdir, "results.json")):
        return "done"
    status_path = os.path.join(workdir, STATUS_FILE)
    if os.path.exists(status_path):
        with open(status_path) as f:
            return json.load(f)["status"]
    return "pending"


def _write_json(path: str, data: Any) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True, default=str)
        f.write("\n")
    os.replace(tmp, path)


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
    _write_json(os.path.join(sweep_dir, "results.json"), summary)
    title = f"{sweep.name} ({summary['done']}/{summary['total']} cells done)"
    table = markdown_table(entries, sweep.layout, title)
    if sweep.description:
        table = f"{table}\n{sweep.description}\n"
    with open(os.path.join(sweep_dir, "table.md"), "w") as f:
        f.write(table)
    if plot:
        bar_chart(entries, sweep.layout, os.path.join(sweep_dir, "plot.png"), title)
    return summary


def _default_train(config: Any, workdir: str) -> dict:
    from rl_repr import main  # noqa: PLC0415 (imports JAX; keeps --devices effective)

    return main.run(config, workdir)


def run_sweep(sweep: Sweep, sweep_dir: str, *, train_fn: Callable[[Any, str], dict] | None = None,
              retry_failed: bool = False, plot: bool = True, log: Callable[[str], None] = print) -> dict:
    """Trains every unfinished cell in ``<sweep_dir>/<cell name>``; returns :func:`collect`'s summary.

    Args:
      sweep: the sweep definition.
      sweep_dir: where the cells' workdirs and the summary files go.
      train_fn: ``(config, workdir) -> results``; default ``rl_repr.main.run`` (dispatch on
        ``config.method``). It must write ``<workdir>/results.json`` when the run finishes and
        return without it when stopped early (preemption): the sweep then stops, to resume.
      retry_failed: rerun cells recorded as diverged or failed.
      plot: write plot.png after each cell.
      log: where progress lines go.
    """
    train_fn = train_fn or _default_train
    configs = {}
    for cell in sweep.cells:  # every cell's config is checked before anything trains
        try:
            configs[cell.name] = cell_config(sweep.base, cell.overrides)
            if sweep.validate is not None:
                sweep.validate(configs[cell.name])
        except config_utils.ConfigError as error:
            raise config_utils.ConfigError(f"sweep cell {cell.name!r}: {error}") from None
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
            traceback.print_exc()
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
                f"{left * trained_seconds / trained / 60:.0f} min at this session's pace")
        collect(sweep, sweep_dir, plot=plot)
    summary = collect(sweep, sweep_dir, plot=plot)
    log(f"sweep {sweep.name}: {summary['done']}/{total} cells done; summary in "
        f"{os.path.join(sweep_dir, 'results.json')}, table.md, plot.png")
    return summary


def _record(workdir: str, status: str, error: BaseException, log, prefix: str) -> None:
    os.makedirs(workdir, exist_ok=True)
    message = f"{type(error).__name__}: {error}"
    _write_json(os.path.join(workdir, STATUS_FILE), {"status": status, "error": message})
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


# ============================================================================ command line
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", required=True, help="path[:arg] of a sweep file defining get_sweep(arg)")
    parser.add_argument("--dir", required=True, help="the sweep's directory (one workdir per cell)")
    parser.add_argument("--publish", default="", help="also copy results.json, table.md, plot.png here")
    parser.add_argument("--devices", type=int, default=0, help="simulated CPU devices (0 = JAX's default)")
    parser.add_argument("--retry_failed", action="store_true", help="rerun diverged or failed cells")
    parser.add_argument("--list", action="store_true", help="print the cells and exit")
    args = parser.parse_args(argv)
    if args.devices:  # must happen before JAX initialises its backends
        flags = os.environ.get("XLA_FLAGS", "")
        if "xla_force_host_platform_device_count" not in flags:
            os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={args.devices}".strip()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sweep = load_sweep_file(args.sweep)
    if args.list:
        for cell in sweep.cells:
            print(f"{cell.name}: {json.dumps(dict(cell.overrides), default=str)}")
        print(f"{len(sweep.cells)} cells. {sweep.description}")
        return 0
    try:
        summary = run_sweep(sweep, args.dir, retry_failed=args.retry_failed)
    except config_utils.ConfigError as error:
        print(f"Invalid sweep: {error}", file=sys.stderr)
        return 1
    if args.publish:
        publish(args.dir, args.publish)
        print(f"summary copied to {args.publish}")
    return 1 if any(e["status"] == "failed" for e in summary["cells"]) else 0


if __name__ == "__main__":
    sys.exit(main())
