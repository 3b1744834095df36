"""Label smoothing x label noise: test accuracy and calibration (Müller et al. 2019; Lukasik et al. 2020).

    nice -n 10 python experiments/study_label_smoothing.py   # ~10 min on a busy 2-core CPU; resumable

Trains ``configs/studies/label_smoothing.py`` (eps in {0, 0.05, 0.1, 0.2} x noise in {0, 20%, 40%}
x 3 seeds, MLP on digits) and writes ``experiments/results/label_smoothing/``: test accuracy
and expected calibration error (15 bins) per cell, mean ± std over seeds, and a plot of both.
"""
from __future__ import annotations

import study_report as sr

NAME = "label_smoothing"


def main() -> None:
    args = sr.parse_arguments(NAME, __doc__.splitlines()[0])
    _, summary, minutes = sr.run_study(NAME, args)
    groups = sr.group(sr.done_cells(summary), ("label_noise", "label_smoothing"))
    noises = sorted({k[0] for k in groups})
    epsilons = sorted({k[1] for k in groups})
    table = {f"noise={n:g},eps={e:g}": {"test_accuracy": sr.values(groups[(n, e)], "test_accuracy"),
                                         "ece": sr.values(groups[(n, e)], "expected_calibration_error"),
                                         "confidence": sr.values(groups[(n, e)], "test_confidence"),
                                         "noisy_label_fit": sr.values(groups[(n, e)], "noisy_label_fit")}
             for n in noises for e in epsilons if (n, e) in groups}
    seeds = max((len(v["test_accuracy"]) for v in table.values()), default=0)
    lines = ["**Label smoothing under label noise** (digits, MLP 256-256, Adam, 60 epochs; test accuracy % / "
             "expected calibration error % (15 bins) / mean confidence % (the top softmax probability); "
             f"mean ± std over the seeds run, up to {seeds})", "",
             "| smoothing eps | " + " | ".join(f"noise {100 * n:.0f}%: accuracy / ECE / confidence" for n in noises)
             + " |", "|---" * (len(noises) + 1) + "|"]
    for e in epsilons:
        marks = [" / ".join(sr.mean_spread(table[f"noise={n:g},eps={e:g}"][m]) for m in ("test_accuracy", "ece", "confidence"))
                 if f"noise={n:g},eps={e:g}" in table else "–" for n in noises]
        lines.append(f"| {e:g} | " + " | ".join(marks) + " |")
    verdict = _verdict(table, noises, epsilons)
    lines += ["", verdict, "", sr.machine_note(minutes, summary)]
    plt = sr.pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for n in noises:
        xs = [e for e in epsilons if f"noise={n:g},eps={e:g}" in table]
        for ax, metric in zip(axes, ("test_accuracy", "ece")):
            means = [sum(v) / len(v) for v in (table[f"noise={n:g},eps={e:g}"][metric] for e in xs)]
            ax.plot(xs, means, marker="o", label=f"label noise {100 * n:.0f}%")
    axes[0].set_ylabel("test accuracy (%)")
    axes[1].set_ylabel("expected calibration error (%)")
    for ax in axes:
        ax.set_xlabel("label smoothing eps")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    paths = sr.write_results(args.out, {"study": NAME, "cells": summary["cells"], "by_setting": table,
                                        "verdict": verdict, "minutes": minutes}, "\n".join(lines), figure)
    print("\n".join(lines))
    print("wrote", paths)


def _verdict(table: dict, noises, epsilons) -> str:
    def mean(n, e, metric):
        xs = table.get(f"noise={n:g},eps={e:g}", {}).get(metric) or []
        return sum(xs) / len(xs) if xs else None
    parts = []
    for n in noises:
        base_acc, base_ece = mean(n, 0.0, "test_accuracy"), mean(n, 0.0, "ece")
        best_e = max(epsilons, key=lambda e: mean(n, e, "test_accuracy") or -1)
        if base_acc is None:
            continue
        parts.append(f"noise {100 * n:.0f}%: eps=0 {base_acc:.1f}% (ECE {base_ece:.1f}), best eps={best_e:g} "
                     f"{mean(n, best_e, 'test_accuracy'):.1f}% (ECE {mean(n, best_e, 'ece'):.1f})")
    under = all(mean(n, e, "confidence") < mean(n, e, "test_accuracy") for n in noises for e in epsilons
                if mean(n, e, "confidence") is not None)
    why = (" Every network here is underconfident (mean confidence below accuracy), so smoothing, which lowers "
           "confidence, raises the calibration error; Müller et al.'s networks were overconfident." if under else "")
    return "Verdict (means): " + "; ".join(parts) + "." + why


if __name__ == "__main__":
    main()
