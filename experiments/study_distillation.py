"""Knowledge distillation: a small student alone vs distilled from a wide teacher (Hinton et al. 2015).

    nice -n 10 python experiments/study_distillation.py      # ~8 min on a busy 2-core CPU; resumable

Trains the teacher (``configs/supervised_digits.py:teacher``) into ``<dir>/teacher``, then the
cells of ``configs/studies/distillation.py`` (student alone; T in {1, 4, 8} x alpha in {0.5, 0.9};
3 seeds) and writes ``experiments/results/distillation/``: test accuracy and test errors (of 360)
of each, with the teacher's beside them.
"""
from __future__ import annotations

import os

import study_report as sr
from rl_repr.core import runner
from rl_repr.core.recipes import load_config_file

NAME = "distillation"


def main() -> None:
    args = sr.parse_arguments(NAME, __doc__.splitlines()[0])
    teacher_dir = os.path.join(args.dir, "teacher")
    if not os.path.exists(os.path.join(teacher_dir, "results.json")):
        runner.run("supervised", load_config_file(os.path.join(sr.ROOT, "configs", "supervised_digits.py"), "teacher"),
                   teacher_dir)
    args.arg = ",".join(filter(None, [args.arg, f"teacher={teacher_dir}"]))
    _, summary, minutes = sr.run_study(NAME, args)
    groups = sr.group(sr.done_cells(summary), ("teacher.workdir", "teacher.temperature", "teacher.alpha"))
    rows, teacher_accuracy = [], []
    for (workdir, temperature, alpha), group in sorted(groups.items(), key=lambda kv: (bool(kv[0][0]), kv[0][1:])):
        label = f"student distilled, T={temperature:g}, alpha={alpha:g}" if workdir else "student alone (hard labels)"
        accuracy = sr.values(group, "test_accuracy")
        errors = [round((100 - a) * 3.6) for a in accuracy]  # of the 360 test digits
        rows.append({"setting": label, "accuracy": accuracy, "errors": errors})
        teacher_accuracy += sr.values(group, "teacher_test_accuracy")
    teacher = teacher_accuracy[:1]
    lines = ["**Distillation** (digits; teacher: MLP 1200-1200 with 1-pixel translations; student: MLP 32, no "
             "augmentation, Adam 60 epochs; mean ± std over the seeds run)", "",
             "| model | test accuracy (%) | test errors (of 360) |", "|---|---|---|",
             f"| teacher | {sr.mean_spread(teacher)} | {sr.mean_spread([(100 - a) * 3.6 for a in teacher], 0)} |"]
    lines += [f"| {r['setting']} | {sr.mean_spread(r['accuracy'])} | {sr.mean_spread(r['errors'], 0)} |" for r in rows]
    verdict = _verdict(rows, teacher)
    lines += ["", verdict, "", sr.machine_note(minutes, summary)]
    plt = sr.pyplot()
    figure, ax = plt.subplots(figsize=(8, 4))
    labels = ["teacher"] + [r["setting"].replace("student distilled, ", "") for r in rows]
    means = [sum(x) / len(x) if x else 0 for x in [teacher] + [r["accuracy"] for r in rows]]
    ax.barh(range(len(labels)), means, color=["grey"] + ["tab:blue"] * len(rows))
    ax.set_yticks(range(len(labels)), labels, fontsize="small")
    ax.set_xlim(min(means) - 3, 100)
    ax.set_xlabel("test accuracy (%)")
    ax.invert_yaxis()
    ax.grid(axis="x", alpha=0.3)
    paths = sr.write_results(args.out, {"study": NAME, "cells": summary["cells"], "rows": rows,
                                        "teacher_test_accuracy": teacher, "verdict": verdict, "minutes": minutes},
                             "\n".join(lines), figure)
    print("\n".join(lines))
    print("wrote", paths)


def _verdict(rows: list[dict], teacher: list[float]) -> str:
    alone = next((r for r in rows if r["setting"].startswith("student alone")), None)
    distilled = [r for r in rows if r is not alone and r["accuracy"]]
    if alone is None or not distilled or not teacher:
        return "Verdict: not all cells have finished."
    best = max(distilled, key=lambda r: sum(r["accuracy"]) / len(r["accuracy"]))
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    return (f"Verdict: teacher {mean(teacher):.1f}%, student alone {mean(alone['accuracy']):.1f}%, best distilled "
            f"({best['setting'].replace('student distilled, ', '')}) {mean(best['accuracy']):.1f}%: distillation "
            f"closes {100 * (mean(best['accuracy']) - mean(alone['accuracy'])) / max(1e-9, mean(teacher) - mean(alone['accuracy'])):.0f}% "
            "of the gap between the student and the teacher (Hinton et al.'s MNIST: 146 -> 74 errors, teacher 67, 91%).")


if __name__ == "__main__":
    main()
