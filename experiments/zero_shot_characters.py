"""Zero-shot recognition of 20 unseen made-up characters from their attributes, over seeds.

    nice -n 10 python experiments/zero_shot_characters.py                 # seeds 0, 1, 2
    python experiments/zero_shot_characters.py --arg jigsaw --out experiments/results/pretext-zero_shot-jigsaw

Runs ``configs/zero_shot_characters.py`` (a pretext encoder trained on the images of 80 of the 100
character classes; the last 20 held out) once per seed and collects, for the trained h, the same
encoder at random initialisation and raw pixels: direct attribute prediction on the 20 unseen
classes (``zero_shot_accuracy``; chance 1/20), 20-way 1-shot nearest neighbour on the same unseen
images (``one_shot_accuracy``) and how often each attribute is predicted right on unseen images.
Writes ``results.json``, ``table.md`` and ``plot.png`` under ``--out``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from rl_repr.core import runner  # noqa: E402
from rl_repr.core.log import show_messages  # noqa: E402
from rl_repr.core.recipes import load_config_file  # noqa: E402

REPRESENTATIONS = {"": "pretext encoder h", "random_init_": "same encoder, random init", "raw_pixels_": "raw pixels"}
METRICS = {"zero_shot_accuracy": "zero-shot (DAP, attributes only)", "one_shot_accuracy": "1-shot (one image per class)",
           "attribute_accuracy": "attributes right (unseen images)"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arg", default="inpainting,random_region",
                        help="launch argument of the recipe (pretext tasks)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--dir", default=os.path.join(ROOT, "workdirs", "zero_shot"))
    parser.add_argument("--out", default=os.path.join(ROOT, "experiments", "results", "pretext-zero_shot"))
    args = parser.parse_args()
    show_messages()
    runs = []
    for seed in (int(s) for s in args.seeds.split(",")):
        workdir = os.path.join(args.dir, f"{args.arg.replace(',', '+')}-seed{seed}")
        if os.path.isfile(os.path.join(workdir, "results.json")):
            with open(os.path.join(workdir, "results.json")) as f:
                runs.append(json.load(f))
            continue
        config = load_config_file(os.path.join(ROOT, "configs", "zero_shot_characters.py"), args.arg)
        config.seed = seed
        runs.append(runner.run("pretext", config, workdir))
    summary = {prefix: {metric: {"mean": float(np.mean([r[prefix + metric] for r in runs])),
                                 "std": float(np.std([r[prefix + metric] for r in runs])),
                                 "per_seed": [r[prefix + metric] for r in runs]} for metric in METRICS}
               for prefix in REPRESENTATIONS}
    meta = {"recipe": f"configs/zero_shot_characters.py:{args.arg}", "seeds": args.seeds,
            "chance": runs[0]["zero_shot_chance"], "distinct_unseen_descriptions": runs[0]["distinct_unseen_descriptions"],
            "pretext_linear_probe_accuracy_seen_classes": [r["linear_probe_accuracy"] for r in runs],
            "machine": f"{platform.machine()} CPU, {os.cpu_count()} cores shared with other jobs"}
    lines = [f"20 unseen made-up character classes (chance {100 * meta['chance']:.0f}%; "
             f"{meta['distinct_unseen_descriptions']} distinct descriptions among them), encoder from "
             f"`{meta['recipe']}` trained on the 80 others; mean ± std over seeds {args.seeds} (%).", "",
             "| representation | " + " | ".join(METRICS.values()) + " |", "|---|" + "---|" * len(METRICS)]
    for prefix, label in REPRESENTATIONS.items():
        cells = [f"{100 * summary[prefix][m]['mean']:.1f} ± {100 * summary[prefix][m]['std']:.1f}" for m in METRICS]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    table = "\n".join(lines) + "\n"
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"meta": meta, "summary": summary, "runs": runs}, f, indent=2)
    with open(os.path.join(args.out, "table.md"), "w") as f:
        f.write(table)
    _plot(summary, meta["chance"], os.path.join(args.out, "plot.png"))
    print(table)


def _plot(summary: dict, chance: float, path: str) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(8.0, 4.5))
    x = np.arange(len(REPRESENTATIONS))
    for offset, metric in zip((-0.2, 0.2), ("zero_shot_accuracy", "one_shot_accuracy")):
        ax.bar(x + offset, [100 * summary[p][metric]["mean"] for p in REPRESENTATIONS], 0.4,
               yerr=[100 * summary[p][metric]["std"] for p in REPRESENTATIONS], capsize=3, label=METRICS[metric])
    ax.axhline(100 * chance, color="grey", ls=":", label="chance (1/20)")
    ax.set_xticks(x, list(REPRESENTATIONS.values()))
    ax.set_ylabel("20-way accuracy on unseen classes (%)")
    ax.set_title("Zero-shot from attributes vs one labelled image per class")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
