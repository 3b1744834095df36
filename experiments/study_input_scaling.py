"""Input standardisation: an MLP with Adam on raw vs standardised features (slides 003).

    nice -n 10 python experiments/study_input_scaling.py     # ~3 min on a busy 2-core CPU; resumable

Trains ``configs/studies/input_scaling.py`` (breast-cancer table, 3 seeds each) and writes
``experiments/results/input_scaling/``: final training / validation accuracy and loss, and the
curves (mean over seeds) like the slides' TensorBoard plot.
"""
from __future__ import annotations

import os

import numpy as np

import study_report as sr

NAME = "input_scaling"


def main() -> None:
    args = sr.parse_arguments(NAME, __doc__.splitlines()[0])
    _, summary, minutes = sr.run_study(NAME, args)
    groups = sr.group(sr.done_cells(summary), ("standardize_inputs",))
    lines = ["**Raw vs standardised inputs** (breast-cancer table, 456 training / 113 validation rows; MLP "
             "64-64 ReLU, Adam 1e-3, batch 32, 100 epochs; mean ± std over seeds)", "",
             "| inputs | train accuracy | validation accuracy | train loss | validation loss | seeds |",
             "|---|---|---|---|---|---|"]
    curves = {}
    for (standardized,), group in sorted(groups.items()):
        label = "standardised" if standardized else "raw"
        lines.append(f"| {label} | {sr.mean_spread(sr.values(group, 'train_accuracy'))} | "
                     f"{sr.mean_spread(sr.values(group, 'test_accuracy'))} | "
                     f"{sr.mean_spread(sr.values(group, 'train_loss', 1.0), 3)} | "
                     f"{sr.mean_spread(sr.values(group, 'test_loss', 1.0), 3)} | {len(group)} |")
        curves[label] = {}
        for metric in ("eval_train_loss", "test_loss", "eval_train_accuracy", "test_accuracy"):
            runs = [sr.curve(os.path.join(args.dir, c["name"]), metric) for c in group]
            length = min(len(r[1]) for r in runs)
            curves[label][metric] = {"step": runs[0][0][:length],
                                     "mean": np.mean([r[1][:length] for r in runs], axis=0).tolist()}
    raw, std = (sr.values(groups.get((k,), []), "test_accuracy") for k in (False, True))
    verdict = "Verdict: not all cells have finished."
    if raw and std:
        better = "higher" if min(std) > max(raw) else "not clearly higher"
        verdict = (f"Verdict: standardised inputs reach a {better} validation accuracy than raw ones "
                   f"({sr.mean_spread(std)} vs {sr.mean_spread(raw)}%, every seed of one against every seed of "
                   "the other), the shape of the slides.")
    lines += ["", verdict, "", sr.machine_note(minutes, summary)]
    plt = sr.pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for label, c in curves.items():
        for ax, (metric_train, metric_val, name) in zip(axes, (("eval_train_loss", "test_loss", "loss"),
                                                              ("eval_train_accuracy", "test_accuracy", "accuracy"))):
            line, = ax.plot(c[metric_train]["step"], c[metric_train]["mean"], label=f"{label}/train")
            ax.plot(c[metric_val]["step"], c[metric_val]["mean"], "--", color=line.get_color(),
                    label=f"{label}/validation")
            ax.set_ylabel(name)
    axes[0].set_yscale("log")
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    paths = sr.write_results(args.out, {"study": NAME, "cells": summary["cells"], "curves": curves,
                                        "verdict": verdict, "minutes": minutes}, "\n".join(lines), figure)
    print("\n".join(lines))
    print("wrote", paths)


if __name__ == "__main__":
    main()
