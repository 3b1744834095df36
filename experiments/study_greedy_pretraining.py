"""Greedy layer-wise pretraining vs random initialisation with 1%, 10% and 100% of the labels,
with sigmoid units (no norm) and with ReLU + batch norm (Bengio et al. 2007; the slides' point).

    nice -n 10 python experiments/study_greedy_pretraining.py   # ~10 min on a busy 2-core CPU; resumable

Trains ``configs/studies/greedy_pretraining.py`` (3-layer MLP on digits, 3 seeds) and writes
``experiments/results/greedy_pretraining/``: test accuracy per units x labels x initialisation.
"""
from __future__ import annotations

import study_report as sr

NAME = "greedy_pretraining"
UNITS = {("sigmoid", "none"): "sigmoid, no norm", ("relu", "batch"): "ReLU + batch norm"}


def main() -> None:
    args = sr.parse_arguments(NAME, __doc__.splitlines()[0])
    _, summary, minutes = sr.run_study(NAME, args)
    groups = sr.group(sr.done_cells(summary), ("model.activation", "model.norm", "label_fraction",
                                               "greedy_pretraining.enabled"))
    fractions = sorted({k[2] for k in groups})
    table = {f"{a},{n},{f:g},{g}": sr.values(cells, "test_accuracy") for (a, n, f, g), cells in groups.items()}
    lines = ["**Greedy layer-wise pretraining** (digits, MLP 256-256-256; each layer pretrained as an autoencoder "
             "on all 1,437 training images, then ~600 fine-tuning steps with the labelled share; test accuracy %, "
             "mean ± std over the seeds run; random init / greedy pretraining)", "",
             "| units | " + " | ".join(f"{100 * f:g}% labels" for f in fractions) + " |",
             "|---" * (len(fractions) + 1) + "|"]
    for (activation, norm), label in UNITS.items():
        marks = [f"{sr.mean_spread(table.get(f'{activation},{norm},{f:g},False', []))} / "
                 f"{sr.mean_spread(table.get(f'{activation},{norm},{f:g},True', []))}" for f in fractions]
        lines.append(f"| {label} | " + " | ".join(marks) + " |")
    verdict = _verdict(table, fractions)
    lines += ["", verdict, "", sr.machine_note(minutes, summary)]
    plt = sr.pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, ((activation, norm), label) in zip(axes, UNITS.items()):
        for greedy, name in ((False, "random init"), (True, "greedy pretraining")):
            xs = [f for f in fractions if table.get(f"{activation},{norm},{f:g},{greedy}")]
            ys = [sum(v) / len(v) for v in (table[f"{activation},{norm},{f:g},{greedy}"] for f in xs)]
            ax.plot([100 * f for f in xs], ys, marker="o", label=name)
        ax.set_xscale("log")
        ax.set_title(label)
        ax.set_xlabel("labelled training images (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    axes[0].set_ylabel("test accuracy (%)")
    paths = sr.write_results(args.out, {"study": NAME, "cells": summary["cells"], "test_accuracy": table,
                                        "verdict": verdict, "minutes": minutes}, "\n".join(lines), figure)
    print("\n".join(lines))
    print("wrote", paths)


def _verdict(table: dict, fractions) -> str:
    parts = []
    for (activation, norm), label in UNITS.items():
        gains = []
        for f in fractions:
            random, greedy = table.get(f"{activation},{norm},{f:g},False"), table.get(f"{activation},{norm},{f:g},True")
            if random and greedy:
                gains.append(f"{100 * f:g}%: {sum(greedy) / len(greedy) - sum(random) / len(random):+.1f}")
        parts.append(f"{label}: pretraining minus random init {', '.join(gains)} points")
    return "Verdict: " + "; ".join(parts) + "."


if __name__ == "__main__":
    main()
