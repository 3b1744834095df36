"""Adversarial examples: accuracy against eps under FGSM and PGD for a standard, an FGSM-trained
and a PGD-trained network (Goodfellow et al. 2015; Madry et al. 2018).

    nice -n 10 python experiments/study_adversarial.py       # ~8 min on a busy 2-core CPU; resumable

Trains ``configs/studies/adversarial.py`` (MLP on digits, 3 seeds each) and writes
``experiments/results/adversarial/``: clean accuracy and accuracy under FGSM / PGD-20 at each
eps, as a table and as accuracy-vs-eps curves.
"""
from __future__ import annotations

import study_report as sr

NAME = "adversarial"
TRAINING_LABELS = {"none": "standard training", "fgsm": "FGSM adversarial training (eps 0.1, half clean)",
                   "pgd": "PGD adversarial training (eps 0.1, 7 steps)"}


def main() -> None:
    args = sr.parse_arguments(NAME, __doc__.splitlines()[0])
    sweep, summary, minutes = sr.run_study(NAME, args)
    epsilons = list(sweep.base.eval_epsilons)
    groups = sr.group(sr.done_cells(summary), ("adversarial.attack",))
    curves = {}
    for (training,), group in groups.items():
        curves[training] = {attack: {eps: sr.values(group, f"{attack}_accuracy_eps{eps:g}") for eps in epsilons}
                            for attack in ("fgsm", "pgd")}
    lines = ["**Accuracy (%) under attack** (360 test digits, pixels in [0, 1]; MLP 256-256, Adam 60 epochs; "
             "PGD-20 with step 2.5 eps / 20 and a random start; mean ± std over 3 seeds)", "",
             "| training | attack | " + " | ".join(f"eps {e:g}" for e in epsilons) + " |",
             "|---|---" + "|---" * len(epsilons) + "|"]
    for training, label in TRAINING_LABELS.items():
        for attack in ("fgsm", "pgd"):
            if training in curves:
                lines.append(f"| {label} | {attack.upper()} | " +
                             " | ".join(sr.mean_spread(curves[training][attack][e]) for e in epsilons) + " |")
    verdict = _verdict(curves)
    lines += ["", verdict, "", sr.machine_note(minutes, summary)]
    plt = sr.pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, attack in zip(axes, ("fgsm", "pgd")):
        for training, label in TRAINING_LABELS.items():
            if training in curves:
                ys = [sum(v) / len(v) for v in (curves[training][attack][e] for e in epsilons)]
                ax.plot(epsilons, ys, marker="o", label=label)
        ax.set_title(f"{attack.upper()} attack")
        ax.set_xlabel("eps (pixel range [0, 1])")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    axes[0].set_ylabel("test accuracy (%)")
    paths = sr.write_results(args.out, {"study": NAME, "cells": summary["cells"], "curves": curves,
                                        "verdict": verdict, "minutes": minutes}, "\n".join(lines), figure)
    print("\n".join(lines))
    print("wrote", paths)


def _verdict(curves: dict) -> str:
    def mean(training, attack, eps):
        xs = curves.get(training, {}).get(attack, {}).get(eps) or []
        return sum(xs) / len(xs) if xs else float("nan")
    if len(curves) < 3:
        return "Verdict: not all cells have finished."
    return ("Verdict: at eps 0.1 the standard network keeps "
            f"{mean('none', 'fgsm', 0.1):.1f}% under FGSM and {mean('none', 'pgd', 0.1):.1f}% under PGD; FGSM training "
            f"{mean('fgsm', 'fgsm', 0.1):.1f}% / {mean('fgsm', 'pgd', 0.1):.1f}%; PGD training "
            f"{mean('pgd', 'fgsm', 0.1):.1f}% / {mean('pgd', 'pgd', 0.1):.1f}%. Clean accuracy: standard "
            f"{mean('none', 'fgsm', 0.0):.1f}%, FGSM-trained {mean('fgsm', 'fgsm', 0.0):.1f}%, PGD-trained "
            f"{mean('pgd', 'fgsm', 0.0):.1f}%.")


if __name__ == "__main__":
    main()
