"""Mean ± spread over seeds of a study run as one sweep per seed: one table and chart for all.

Each study (``configs/ablations/moco_*.py:seed=N``) is an ordinary resumable sweep per seed
(``rl_repr.sweeps``), whose cells have the same names in every seed. This gathers the sweeps'
``results.json`` and writes, for the cells named (all by default, in order of first appearance):

* ``results.json``: per cell, every seed's metrics and their mean, standard deviation (over
  seeds, ddof=0) and min/max, with the mean training time;
* ``table.md``: ``mean ± std`` in percent per metric, each seed's value beside it;
* ``plot.png``: grouped bars of the means with the standard deviation as error bars.

    python -m rl_repr.sweeps.seed_summary --sweeps DIR0 DIR1 DIR2 --out experiments/results/moco-table1-digits \\
        --title "MoCo v2 Table 1 on digits"
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Sequence

import numpy as np

from rl_repr.core.extras import require
from rl_repr.core.files import atomic_open, write_json

METRICS = ("linear_probe_accuracy", "knn_accuracy")
LABELS = {"linear_probe_accuracy": "linear probe", "knn_accuracy": "kNN",
          "key_encoder_linear_probe_accuracy": "f_k linear probe", "key_encoder_knn_accuracy": "f_k kNN"}


def gather(sweep_dirs: Sequence[str], cells: Sequence[str] = (),
           metrics: Sequence[str] = METRICS) -> dict[str, dict]:
    """``{cell: {'seeds': [...], metric: {'values', 'mean', 'std', 'min', 'max'}, 'train_seconds'}}``
    over the finished cells of the sweeps (a cell missing in a sweep simply has fewer seeds)."""
    runs: dict[str, list[dict]] = {}
    for sweep_dir in sweep_dirs:
        if not os.path.isfile(os.path.join(sweep_dir, "results.json")):
            raise ValueError(f"{sweep_dir} holds no sweep summary (results.json); give the --dir of a sweep that has "
                             "run (python -m rl_repr.sweep --sweep=... --dir=DIR).")
        with open(os.path.join(sweep_dir, "results.json")) as f:
            for entry in json.load(f)["cells"]:
                if entry["status"] == "done" and (not cells or entry["name"] in cells):
                    runs.setdefault(entry["name"], []).append(
                        dict(entry["results"], seed=entry["overrides"].get("seed", 0)))
    order = list(cells) if cells else list(runs)
    summary = {}
    for name in [n for n in order if n in runs]:
        results = runs[name]
        summary[name] = {"seeds": [r["seed"] for r in results],
                         "train_seconds": float(np.mean([r.get("train_seconds", np.nan) for r in results]))}
        for metric in metrics:
            lacking = [r for r in results if metric not in r]
            if lacking:
                has = ", ".join(sorted(key for key in lacking[0] if "accuracy" in key))
                raise ValueError(f"cell {name!r} (seed {lacking[0]['seed']}) has no {metric!r} in its results; "
                                 f"choose --metrics among {has}.")
            values = [float(r[metric]) for r in results]
            summary[name][metric] = {"values": values, "mean": float(np.mean(values)), "std": float(np.std(values)),
                                     "min": min(values), "max": max(values)}
    return summary


def markdown(summary: dict, title: str, note: str = "", metrics: Sequence[str] = METRICS) -> str:
    """The summary as a Markdown table: mean ± std (%), then each seed's value."""
    lines = [f"**{title}**", "", "Test accuracy (%), mean ± std over seeds (each seed's value in brackets).", "",
             "| run | " + " | ".join(LABELS.get(m, m) for m in metrics) + " | seeds | train s (mean) |",
             "|---|" + "---|" * (len(metrics) + 2)]
    for name, row in summary.items():
        cells = [f"{100 * row[m]['mean']:.1f} ± {100 * row[m]['std']:.1f} "
                 f"({' / '.join(f'{100 * v:.1f}' for v in row[m]['values'])})" for m in metrics]
        seeds = ", ".join(str(s) for s in row["seeds"])
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {seeds} | {row['train_seconds']:.0f} |")
    return "\n".join(lines) + "\n" + (f"\n{note}\n" if note else "")


def bar_chart(summary: dict, path: str, title: str, metrics: Sequence[str] = METRICS) -> str:
    """Grouped bars (one group per run, one bar per metric) of the means, std as error bars."""
    matplotlib = require("matplotlib")  # only needed when a chart is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    names = list(summary)
    fig, ax = plt.subplots(figsize=(max(5.5, 1.3 * len(names) + 2), 4))
    width = 0.8 / len(metrics)
    lows = []
    for j, metric in enumerate(metrics):
        means = np.array([100 * summary[n][metric]["mean"] for n in names])
        stds = np.array([100 * summary[n][metric]["std"] for n in names])
        xs = np.arange(len(names)) + (j - (len(metrics) - 1) / 2) * width
        ax.bar(xs, means, width, yerr=stds, capsize=3, label=LABELS.get(metric, metric))
        lows.append(float(np.min(means - stds)))
    ax.set_xticks(range(len(names)), names, rotation=15 if len(names) > 4 else 0, fontsize="small")
    ax.set_ylabel("test accuracy (%), mean ± std over seeds")
    ax.set_ylim(max(0.0, min(lows) - 3.0), 100.0)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(title, fontsize="medium")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def summarize(sweep_dirs: Sequence[str], out_dir: str, *, title: str, note: str = "",
              cells: Sequence[str] = (), metrics: Sequence[str] = METRICS) -> dict:
    """Writes ``results.json``, ``table.md`` and ``plot.png`` for the sweeps into ``out_dir``."""
    summary = gather(sweep_dirs, cells, metrics)
    if not summary:
        raise ValueError(f"no finished cells in {list(sweep_dirs)}; run the sweeps first (python -m rl_repr.sweep).")
    os.makedirs(out_dir, exist_ok=True)
    write_json(os.path.join(out_dir, "results.json"), {"title": title, "note": note, "sweeps": list(sweep_dirs),
                                                        "cells": summary})
    with atomic_open(os.path.join(out_dir, "table.md")) as f:
        f.write(markdown(summary, title, note, metrics))
    bar_chart(summary, os.path.join(out_dir, "plot.png"), title, metrics)
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweeps", nargs="+", required=True, help="sweep directories (one per seed)")
    parser.add_argument("--out", required=True, help="where results.json, table.md and plot.png go")
    parser.add_argument("--title", required=True)
    parser.add_argument("--note", default="", help="a paragraph under the table (budget, machine)")
    parser.add_argument("--cells", nargs="*", default=(), help="cell names to keep, in this order (default all)")
    parser.add_argument("--metrics", nargs="+", default=METRICS, help="result keys to summarise, in this order")
    args = parser.parse_args(argv)
    try:
        summary = summarize(args.sweeps, args.out, title=args.title, note=args.note, cells=args.cells,
                            metrics=args.metrics)
    except ValueError as error:
        print(error, file=sys.stderr)
        return 1
    print(markdown(summary, args.title, args.note, args.metrics))
    return 0


if __name__ == "__main__":
    sys.exit(main())
