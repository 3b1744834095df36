"""Depth: plain vs residual networks at 20 and 56 layers (He et al. 2016, Figure 6), offline.

    nice -n 10 python experiments/study_depth.py            # ~10 min on a busy 2-core CPU; resumable

Trains ``configs/studies/depth.py`` (half-width CIFAR-style ResNets on 20 made-up character
classes at 16x16, 8 epochs) and writes ``experiments/results/depth/``: the final training and
test error of each network, and training / test error curves like Figure 6 (the monitor scores
the 800 training images and the 200 test images in evaluation mode every epoch).
"""
from __future__ import annotations

import os

import study_report as sr

NAME = "depth"


def main() -> None:
    args = sr.parse_arguments(NAME, __doc__.splitlines()[0])
    _, summary, minutes = sr.run_study(NAME, args)
    cells = sr.done_cells(summary)
    rows, curves = [], {}
    for (depth, residual), group in sorted(sr.group(cells, ("model.depth", "model.residual")).items()):
        label = f"{'residual' if residual else 'plain'}-{depth}"
        train_error = [100 - v for v in sr.values(group, "train_accuracy")]
        test_error = [100 - v for v in sr.values(group, "test_accuracy")]
        rows.append((label, sr.mean_spread(train_error), sr.mean_spread(test_error), len(group)))
        steps, train = sr.curve(os.path.join(args.dir, group[0]["name"]), "eval_train_accuracy")
        _, test = sr.curve(os.path.join(args.dir, group[0]["name"]), "test_accuracy")
        test = test[:len(steps)]  # the last line holds the final report, added next
        final = group[0]["results"]
        steps, train, test = steps + [final["steps"]], train + [final["train_accuracy"]], test + [final["test_accuracy"]]
        curves[label] = {"step": steps, "train_error": [100 * (1 - a) for a in train],
                         "test_error": [100 * (1 - a) for a in test]}
    final = {label: (train, test) for label, train, test, _ in rows}
    verdict = _verdict(final)
    lines = ["**Depth: plain vs residual** (made-up characters, 20 classes, 16x16; final error in %, "
             "evaluation mode; mean ± std over seeds where there are several)", "",
             "| network | training error | test error | seeds |", "|---|---|---|---|"]
    lines += [f"| {label} | {train} | {test} | {n} |" for label, train, test, n in rows]
    lines += ["", verdict, "", sr.machine_note(minutes, summary)]
    plt = sr.pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, prefix in zip(axes, ("plain", "residual")):
        for label, c in curves.items():
            if label.startswith(prefix):
                line, = ax.plot(c["step"], c["train_error"], label=f"{label} train")
                ax.plot(c["step"], c["test_error"], "--", color=line.get_color(), label=f"{label} test")
        ax.set_title(f"{prefix} networks")
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    axes[0].set_ylabel("error (%)")
    paths = sr.write_results(args.out, {"study": NAME, "cells": summary["cells"], "curves": curves,
                                        "verdict": verdict, "minutes": minutes}, "\n".join(lines), figure)
    print("\n".join(lines))
    print("wrote", paths)


def _verdict(final: dict) -> str:
    def error(label):
        text = final.get(label, ("–",))[0]
        return float(text.split(" ")[0]) if text != "–" else None
    p20, p56, r20, r56 = (error(k) for k in ("plain-20", "plain-56", "residual-20", "residual-56"))
    if None in (p20, p56, r20, r56):
        return "Verdict: not all four networks have finished."
    plain = "plain-56 trains to a higher error than plain-20" if p56 > p20 else "plain-56 does NOT train worse than plain-20"
    residual = ("residual-56 to a lower error than residual-20" if r56 < r20 else
                "residual-56 does NOT train better than residual-20")
    return (f"Verdict: {plain} ({p56:.1f}% vs {p20:.1f}%); {residual} ({r56:.1f}% vs {r20:.1f}%).")


if __name__ == "__main__":
    main()
