"""Pretext tasks, alone and together, next to SimCLR and MoCo v2: same data, encoder and budget.

    nice -n 10 python experiments/compare_pretext.py                       # every row, seed 0
    python experiments/compare_pretext.py --rows rotation,multi --seeds 0,1 --merge   # add runs, keep the rest
    python experiments/compare_pretext.py --epochs 2 --out /tmp/quick      # a quick look

Each row trains one encoder -- ResNet-18 at 1/8 width with the small-image stem (h: 64-d) -- for
the same number of epochs at batch 128 on the same images: 100 made-up handwritten character
classes x 40 images at 32x32 (``'characters:classes=100,images=40,size=32'``, generated offline),
3,200 training images (labels unused) and 800 test images. Rows: rotation prediction, relative
patch position, jigsaw (100 permutations), inpainting with each of the three masks, the four
tasks together (one shared encoder, one head each, the losses summed with weight 1;
``configs/pretext_characters.py``), SimCLR (``configs/simclr_digits.py``'s recipe for small grey
images: LARS, temperature 0.5, crops, small rotations and shifts, cutout) and MoCo v2
(``configs/moco_digits.py``'s: queue of 1,024 keys, momentum 0.99, shuffled batch norm) on the
same data. Every encoder is scored by the same code (``rl_repr.evaluation.encoder_report``):
linear probe and kNN (k = 20) on the frozen h of the 3,200 -> 800 images, 100-way; next to raw
pixels and the encoder at random initialisation (computed once, by the rotation row's run: the
same for every row). ``experiments/pretext_layers.py`` then probes every stage of each encoder. Each
workdir is kept under ``--dir``: a rerun skips finished rows.

Writes ``results.json`` (every number, per seed), ``table.md`` and ``plot.png`` under ``--out``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from rl_repr.core import runner  # noqa: E402
from rl_repr.core.log import show_messages  # noqa: E402
from rl_repr.core.recipes import load_config_file  # noqa: E402

DATASET = "characters:classes=100,images=40,size=32"
# row -> (recipe, launch argument, label)
ROWS = {
    "rotation": ("pretext_characters.py", "rotation", "rotation (Gidaris et al. 2018)"),
    "relative_position": ("pretext_characters.py", "relative_position", "relative position (Doersch et al. 2015)"),
    "jigsaw": ("pretext_characters.py", "jigsaw", "jigsaw, 100 permutations (Noroozi & Favaro 2016)"),
    "inpainting_central": ("pretext_characters.py", "inpainting,central", "inpainting, central mask (Pathak et al.)"),
    "inpainting_random_block": ("pretext_characters.py", "inpainting,random_block", "inpainting, random blocks"),
    "inpainting_random_region": ("pretext_characters.py", "inpainting,random_region", "inpainting, random region"),
    "multi": ("pretext_characters.py", "multi", "multi-task: all four, one encoder (Doersch & Zisserman)"),
    "simclr": ("simclr_digits.py", "", "SimCLR"),
    "moco": ("moco_digits.py", "v2", "MoCo v2"),
}
METRICS = ("linear_probe_accuracy", "knn_accuracy")
BASELINE_ROW = "rotation"  # its run also scores raw pixels and the random-init encoder (the same for every row)


def row_config(row: str, seed: int, epochs: float, baselines: bool):
    recipe, arg, _ = ROWS[row]
    config = load_config_file(os.path.join(ROOT, "configs", recipe), arg or None)
    config.seed = seed
    config.dataset = DATASET
    config.model.update(depth=18, width_multiplier=0.125, small_image_stem=True)
    config.batch_size = 128
    config.epochs = float(epochs)
    config.warmup_epochs = min(1.0, float(epochs))
    config.baselines = baselines
    config.finetune_fractions = ()
    config.eval_every_steps = 0
    config.checkpoint_every_steps = 250
    config.log_every_steps = 50
    if row == "moco":
        config.queue_size = 1024       # 8 batches; at most the 3,200 training images
        config.key_bn_groups = 8       # shuffled batch norm in groups of 16
        config.lr_decay_epochs = (0.6 * epochs, 0.8 * epochs)
    return config


def run_row(row: str, seed: int, epochs: float, baselines: bool, workdir: str) -> dict:
    path = os.path.join(workdir, "results.json")
    if os.path.isfile(path):
        with open(path) as f:
            return json.load(f)
    config = row_config(row, seed, epochs, baselines)
    return runner.run(config.method, config, workdir)


def _baselines(results: dict) -> dict:
    return {k: v for k, v in results.items() if k.startswith(("raw_pixels_", "random_init_"))}


def summarise(per_seed: dict[str, list[dict]]) -> dict:
    """Mean and std (ddof=0) over seeds of each metric, per row; baselines once."""
    summary = {}
    for row, runs in per_seed.items():
        keys = [k for k in runs[0] if isinstance(runs[0][k], (int, float)) and not isinstance(runs[0][k], bool)]
        summary[row] = {k: {"mean": float(np.mean([r[k] for r in runs if k in r])),
                            "std": float(np.std([r[k] for r in runs if k in r])),
                            "per_seed": [r.get(k) for r in runs]} for k in keys}
    return summary


def _pretext_cell(entry: dict) -> str:
    """Each task's score on the test images: accuracy (and chance), or the hole's MSE."""
    parts = []
    for task in ("rotation", "relative_position", "jigsaw"):
        if f"pretext_{task}_accuracy" in entry:
            parts.append(f"{task.replace('_', ' ')} {100 * entry[f'pretext_{task}_accuracy']['mean']:.1f} "
                         f"(chance {100 * entry[f'pretext_{task}_chance']['mean']:.0f})")
    if "pretext_inpainting_mse" in entry:
        parts.append(f"hole MSE {entry['pretext_inpainting_mse']['mean']:.3f} "
                     f"(left at fill: {entry['pretext_inpainting_fill_mse']['mean']:.3f})")
    return "; ".join(parts) or "–"


def markdown_table(summary: dict, baselines: dict, meta: dict) -> str:
    def cell(entry, key):
        value = entry[key]
        spread = f" ± {100 * value['std']:.1f}" if len(value["per_seed"]) > 1 else ""
        return f"{100 * value['mean']:.1f}{spread}"

    lines = [f"Made-up characters, 100 classes, 32x32 ({meta['train_images']} training images, labels unused; "
             f"{meta['test_images']} test images). ResNet-18 x1/8, small-image stem, h 64-d; batch 128, "
             f"{meta['epochs']:g} epochs ({meta['steps']} steps) for every row; seeds {meta['seeds']} "
             "(mean ± std where more than one). Linear probe and kNN (k = 20) on the frozen h, 100-way test "
             f"accuracy (%); chance 1.0. Ran on {meta['machine']}.", "",
             "| representation | linear probe | kNN | own task on test images | train time (s) |",
             "|---|---|---|---|---|"]
    for row, entry in summary.items():
        seconds = entry.get("train_seconds", {}).get("mean", float("nan"))
        lines.append(f"| {ROWS[row][2]} | {cell(entry, METRICS[0])} | {cell(entry, METRICS[1])} | "
                     f"{_pretext_cell(entry)} | {seconds:.0f} |")
    for label, prefix in (("baseline: raw pixels", "raw_pixels_"), ("baseline: same encoder, random init",
                                                                      "random_init_")):
        if f"{prefix}linear_probe_accuracy" in baselines:
            lines.append(f"| {label} | {100 * baselines[prefix + 'linear_probe_accuracy']:.1f} | "
                         f"{100 * baselines[prefix + 'knn_accuracy']:.1f} | – | – |")
    return "\n".join(lines) + "\n"


def bar_chart(summary: dict, baselines: dict, path: str) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    rows = list(summary)
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(12.0, 5.5))
    for offset, key, label in ((-0.2, METRICS[0], "linear probe"), (0.2, METRICS[1], "kNN (k = 20)")):
        ax.bar(x + offset, [100 * summary[r][key]["mean"] for r in rows], 0.4,
               yerr=[100 * summary[r][key]["std"] for r in rows], capsize=3, label=label)
    for prefix, style, label in (("raw_pixels_", "--", "raw pixels (linear)"), ("random_init_", ":", "random init (linear)")):
        if f"{prefix}linear_probe_accuracy" in baselines:
            ax.axhline(100 * baselines[f"{prefix}linear_probe_accuracy"], color="grey", ls=style, lw=1, label=label)
    ax.set_xticks(x, [ROWS[r][2].split(" (")[0].replace(", ", ",\n") for r in rows], fontsize=8, rotation=30,
                  ha="right", rotation_mode="anchor")
    ax.set_ylabel("100-way test accuracy on frozen h (%)")
    ax.set_title("Pretext tasks vs contrastive learning, made-up characters 32x32 (same encoder, data, epochs)")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated, from {tuple(ROWS)}")
    parser.add_argument("--seeds", default="0", help="comma-separated training seeds")
    parser.add_argument("--epochs", type=float, default=20.0)
    parser.add_argument("--dir", default=os.path.join(ROOT, "workdirs", "compare_pretext"), help="workdirs")
    parser.add_argument("--out", default=os.path.join(ROOT, "experiments", "results", "pretext-characters"))
    parser.add_argument("--merge", action="store_true", help="keep rows of an earlier results.json in --out")
    args = parser.parse_args()
    show_messages()  # the runs' progress lines
    rows, seeds = args.rows.split(","), [int(s) for s in args.seeds.split(",")]
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        parser.error(f"unknown rows {unknown}; choose from {tuple(ROWS)}")
    started = time.time()
    per_seed: dict[str, list[dict]] = {}
    baselines: dict = {}
    for row in rows:
        for seed in seeds:
            first = row == BASELINE_ROW and seed == seeds[0]
            workdir = os.path.join(args.dir, f"{row}-epochs{args.epochs:g}-seed{seed}")
            results = run_row(row, seed, args.epochs, first, workdir)
            if first:
                baselines = _baselines(results)
            per_seed.setdefault(row, []).append(results)
            print(f"{row} seed {seed}: linear {results['linear_probe_accuracy']:.3f} kNN {results['knn_accuracy']:.3f} "
                  f"({time.time() - started:.0f} s so far)", flush=True)
    if not baselines:  # computed by the baseline row's run, whichever rows run now
        path = os.path.join(args.dir, f"{BASELINE_ROW}-epochs{args.epochs:g}-seed{seeds[0]}", "results.json")
        if os.path.isfile(path):
            with open(path) as f:
                baselines = _baselines(json.load(f))
    summary = summarise(per_seed)
    os.makedirs(args.out, exist_ok=True)
    json_path = os.path.join(args.out, "results.json")
    if args.merge and os.path.isfile(json_path):
        with open(json_path) as f:
            saved = json.load(f)
        summary = {**{r: v for r, v in saved["summary"].items() if r not in summary}, **summary}
        baselines = baselines or saved["baselines"]
        summary = {r: summary[r] for r in ROWS if r in summary}
    any_run = per_seed[rows[0]][0]
    meta = {"epochs": args.epochs, "steps": any_run["steps"], "seeds": seeds, "train_images": 3200,
            "test_images": 800, "dataset": DATASET, "wall_seconds": round(time.time() - started),
            "machine": f"{platform.machine()} CPU, {os.cpu_count()} cores shared with other jobs "
                       f"(load average {os.getloadavg()[0]:.1f} at the end)"}
    with open(json_path, "w") as f:
        json.dump({"meta": meta, "summary": summary, "baselines": baselines, "runs": per_seed}, f, indent=2)
    with open(os.path.join(args.out, "table.md"), "w") as f:
        f.write(markdown_table(summary, baselines, meta))
    bar_chart(summary, baselines, os.path.join(args.out, "plot.png"))
    print(markdown_table(summary, baselines, meta))


if __name__ == "__main__":
    main()
