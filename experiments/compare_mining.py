"""Which triplets to train on? Every mining strategy on the held-out digits, next to baselines.

    nice -n 5 python experiments/compare_mining.py                   # ~20 min on 2 busy CPU cores
    python experiments/compare_mining.py --merge --strategies semi_hard+glyphs  # add a row, keep the rest
    python experiments/compare_mining.py --seeds 0 --steps 100       # a quick look

Trains ``configs/metric_digits.py:<recipe>`` (digits 0-4, PK batches of 5 x 16, the small
conv net, 64-d unit embeddings) once per recipe and seed: each mining strategy alone, then
semi-hard plus the instance (NT-Xent) term and the instance term alone (``semi_hard+instance``
and ``instance_only``: ``+`` joins launch tokens), then semi-hard with more training classes
(``CLASS_RECIPES``: rotated / mirrored 0-4 as new classes, rendered letters as new classes,
made-up handwritten characters as new classes). Each network is scored on the
held-out digits 5-9 with the same 600 5-way 1-shot and 5-shot episodes, the same 3000
verification pairs (10-fold thresholds) and recall@k. Two baselines come from the same
runs: nearest neighbour on raw pixels, and the same network at random initialisation.
Writes ``mining_comparison.json`` (every number, per seed), ``mining_comparison.md`` (a
table) and ``mining_comparison.png`` (a bar chart) under ``--out``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from rl_repr.core import recipes as config_utils  # noqa: E402
from rl_repr.core import runner  # noqa: E402
from rl_repr.metric_learning.config import FEATURE_TRANSFORMS, LOSSES  # noqa: E402

# More training classes (digits 5-9 stay held out): rotations / mirror images of 0-4 as new
# classes, rendered letters as new classes, both, and both with the instance term.
CLASS_RECIPES = ("semi_hard+rotations_flips", "semi_hard+glyphs", "semi_hard+rotations_flips+glyphs",
                 "semi_hard+instance+rotations_flips+glyphs", "semi_hard+rotations_flips+glyphs+flat",
                 "semi_hard+rotations_flips+strokes+flat")
RECIPES = (*LOSSES, "semi_hard+instance", "instance_only", *CLASS_RECIPES)
TRANSFORM_NOTE = {"none": "they come (squared Euclidean nearest neighbour)",
                  "center_and_normalize": "(x - mu) / |x - mu| with mu the mean feature of the training "
                                          "images of 0-4 (SimpleShot's CL2N), for every row"}

METRICS = ("5way_1shot_accuracy", "5way_5shot_accuracy", "verification_accuracy", "recall_at_1",
           "trunk_5way_1shot_accuracy", "seen_classes_5way_1shot_accuracy")
EPISODE_CI = ("5way_1shot_ci95", "5way_5shot_ci95")
LABELS = {"random_triplets": "random triplets (no mining)", "batch_all": "batch-all",
          "batch_hard": "batch-hard", "batch_hard_soft": "batch-hard, soft margin",
          "semi_hard": "semi-hard (FaceNet)", "siamese_pairs": "Siamese pairs (contrastive)",
          "semi_hard+instance": "semi-hard x 0.1 + instance term (NT-Xent)",
          "instance_only": "instance term alone (no labels)",
          "semi_hard+rotations_flips": "semi-hard, + rotated/mirrored 0-4 as classes (40)",
          "semi_hard+glyphs": "semi-hard, + rendered letters as classes (5 + 39)",
          "semi_hard+rotations_flips+glyphs": "semi-hard, + both (40 + 39 classes)",
          "semi_hard+instance+rotations_flips+glyphs": "semi-hard x 0.1 + instance term, + both (79 classes)",
          "semi_hard+rotations_flips+glyphs+flat": "semi-hard, + both, flattened trunk, 128-d embedding",
          "semi_hard+rotations_flips+strokes+flat": "semi-hard, + rotated/mirrored 0-4, + 3000 made-up "
                                                    "characters, wide flattened trunk, 2000 steps, no augmentation",
          "raw_pixels": "baseline: raw pixels, nearest neighbour",
          "random_init": "baseline: same network, random init"}


def run_one(strategy: str, seed: int, steps: int | None, workdir: str, baselines: bool,
            feature_transform: str) -> dict:
    """Trains and evaluates one recipe with one seed; returns its results.json."""
    config = config_utils.load_config_file(os.path.join(ROOT, "configs", "metric_digits.py"),
                                           strategy.replace("+", ","))
    with config.unlocked():
        config.eval.feature_transform = feature_transform
        config.seed = seed                 # network init, PK batches, augmentation, random pairs
        config.eval.seed = 0               # the same episodes and pairs for every run
        config.baselines = baselines
        config.checkpoint_every_steps = 10 ** 6  # the final step is always saved
        if steps:
            config.num_steps = steps
            config.warmup_steps = min(config.warmup_steps, steps)
    return runner.run("metric_learning", config, os.path.join(workdir, f"{strategy}_seed{seed}"))


def summarise(per_seed: dict[str, list[dict]]) -> dict:
    """Mean and standard deviation over seeds of each metric (and the mean episode interval)."""
    summary = {}
    for name, runs in per_seed.items():
        entry = {}
        for key in METRICS + EPISODE_CI:
            values = [r[key] for r in runs if key in r]
            if values:
                entry[key] = {"mean": float(np.mean(values)), "std": float(np.std(values)),
                              "per_seed": values}
        summary[name] = entry
    return summary


def markdown_table(summary: dict, meta: dict) -> str:
    def cell(entry, key):
        if key not in entry:
            return "–"
        value = entry[key]
        if len(value["per_seed"]) == 1:  # raw pixels: no training seed
            return f"{100 * value['mean']:.1f}"
        return f"{100 * value['mean']:.1f} ± {100 * value['std']:.1f}"

    merged = sorted((n for n in meta.get("merged_rows_from_previous_run", []) if n not in ("raw_pixels", "random_init")),
                    key=lambda n: list(LABELS).index(n) if n in LABELS else len(LABELS))
    merge_note = (" Rows " + "; ".join(LABELS.get(n, n) for n in merged) + ", and the random-init baseline, come from "
                  "earlier runs of this script (same seeds, steps, episodes and code path; kept with "
                  "`--merge`, after checking that the raw-pixel baseline is identical)." if merged else "")
    lines = [
        f"Held-out digits 5-9 ({meta['num_heldout_images']} images), network trained on digits 0-4 "
        f"for {meta['steps']} steps of PK batches ({meta['batch_size']} = 5 classes x 16; 16 classes x 5 "
        "for the rows with more training classes, whose extra classes are the digits 0-4 turned by "
        "90/180/270 degrees and mirrored (each a class: 40 in all) and/or 39 printed letters rendered "
        "from matplotlib's fonts the way the digits were made (32x32 bitmap -> 4x4 ink counts), 100 "
        "images each, or 3000 made-up handwritten characters (random pen trajectories drawn by bending, "
        "jittered hands and reduced the same way, `rl_repr.data.images.stroke_characters`), 10 images each; "
        "no image of 5-9, labelled or not, is ever trained on). "
        f"Mean ± std over seeds {meta['seeds']} (%); the 600-episode 95% interval of one run is "
        f"about ±{100 * meta['episode_ci95']:.1f}. Trunk h = the conv features under the "
        "embedding layer (globally pooled, 128-d; flattened, 512-d, for the instance-term recipes, "
        "which also add shifts and rotations to the augmentation, and for the flattened-trunk row: "
        "`configs/metric_digits.py`). "
        "Seen classes = the same 5-way 1-shot protocol on the test-split images "
        "of the training digits 0-4 (images not trained on, classes trained on). Features scored "
        f"as {TRANSFORM_NOTE[meta.get('feature_transform', 'none')]}." + merge_note,
        "",
        "| representation | 5-way 1-shot | 5-way 5-shot | verification (10-fold) | recall@1 "
        "| trunk h: 5-way 1-shot | seen classes: 5-way 1-shot |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, entry in summary.items():
        lines.append(f"| {LABELS.get(name, name)} | " + " | ".join(cell(entry, k) for k in METRICS) + " |")
    return "\n".join(lines) + "\n"


def bar_chart(summary: dict, path: str) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    names = list(summary)
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(14.0, 1.1 * len(names)), 6.0))  # room for the rotated labels
    for offset, (key, label) in zip((-0.2, 0.2), (("5way_1shot_accuracy", "5-way 1-shot"),
                                                  ("5way_5shot_accuracy", "5-way 5-shot"))):
        means = [100 * summary[n][key]["mean"] for n in names]
        stds = [100 * summary[n][key]["std"] for n in names]
        ax.bar(x + offset, means, 0.4, yerr=stds, capsize=3, label=label)
    ax.set_xticks(x, [LABELS.get(n, n).replace("baseline: ", "").replace(", ", ",\n") for n in names],
                  fontsize=8, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_ylabel("accuracy on held-out digits 5-9 (%)")
    ax.set_title("Mining strategies vs baselines (trained on digits 0-4; mean ± std over seeds)")
    ax.set_ylim(0, 100)
    ax.axhline(100 / 5, color="grey", lw=0.8, ls=":")
    if "raw_pixels" in summary:  # the target: 10 points above raw pixels, 5-way 1-shot
        target = 100 * summary["raw_pixels"]["5way_1shot_accuracy"]["mean"] + 10
        ax.axhline(target, color="C3", lw=0.8, ls="--", label="target: raw-pixel 1-shot + 10")
    ax.legend(loc="upper left", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated training seeds")
    parser.add_argument("--steps", type=int, default=0, help="override num_steps (0 = the recipe's)")
    parser.add_argument("--strategies", default=",".join(RECIPES))
    parser.add_argument("--feature-transform", default="center_and_normalize", choices=FEATURE_TRANSFORMS,
                        help="applied to every representation before scoring (config.eval.feature_transform)")
    parser.add_argument("--workdir", default="", help="run directories (default: a temporary dir)")
    parser.add_argument("--out", default=os.path.join(ROOT, "experiments", "results"))
    parser.add_argument("--merge", action="store_true",
                        help="keep the rows of the existing mining_comparison.json that this run does not "
                             "train (same seeds and steps required): add recipes without re-running the rest")
    parser.add_argument("--replot", action="store_true",
                        help="only rewrite the table and chart from an existing mining_comparison.json")
    args = parser.parse_args()
    if args.replot:
        with open(os.path.join(args.out, "mining_comparison.json")) as f:
            saved = json.load(f)
        write_report(saved["summary"], saved["meta"], args.out)
        return
    seeds = [int(s) for s in args.seeds.split(",")]
    strategies = args.strategies.split(",")
    workdir = args.workdir or tempfile.mkdtemp(prefix="compare_mining_")

    start = time.time()
    per_seed: dict[str, list[dict]] = {s: [] for s in strategies}
    per_seed.update(raw_pixels=[], random_init=[])
    meta = {}
    for seed in seeds:
        for index, strategy in enumerate(strategies):
            results = run_one(strategy, seed, args.steps, workdir, baselines=index == 0,
                              feature_transform=args.feature_transform)
            per_seed[strategy].append(results)
            for baseline in ("raw_pixels", "random_init"):
                prefix = f"{baseline}_"
                if any(k.startswith(prefix) for k in results):
                    per_seed[baseline].append({k[len(prefix):]: v for k, v in results.items() if k.startswith(prefix)})
            meta = {k: results[k] for k in ("steps", "batch_size", "num_heldout_images", "num_train_images",
                                            "train_classes", "heldout_classes")}
            print(f"[{time.time() - start:6.0f}s] {strategy} seed {seed}: 1-shot "
                  f"{results['5way_1shot_accuracy']:.3f}, 5-shot {results['5way_5shot_accuracy']:.3f}", flush=True)
    if len(seeds) > 0:
        per_seed["raw_pixels"] = per_seed["raw_pixels"][:1]  # identical for every seed
    # The comparison's step budget: --steps, or the plain recipe's (a recipe that sets its own,
    # as 'strokes' does, says so in its row's label).
    meta["steps"] = args.steps or config_utils.load_config_file(
        os.path.join(ROOT, "configs", "metric_digits.py"), "semi_hard").num_steps
    summary = summarise(per_seed)
    meta.update(seeds=seeds, recipe="configs/metric_digits.py:<recipe>", feature_transform=args.feature_transform,
                runtime_seconds=round(time.time() - start),
                episode_ci95=float(np.mean([r["5way_1shot_ci95"] for runs in per_seed.values() for r in runs])))

    if args.merge:
        summary, meta = merge_with_saved(summary, meta, os.path.join(args.out, "mining_comparison.json"))
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "mining_comparison.json"), "w") as f:
        json.dump({"meta": meta, "summary": summary}, f, indent=2, sort_keys=True)
        f.write("\n")
    write_report(summary, meta, args.out)
    print(f"Wrote {args.out}/mining_comparison.{{json,md,png}} in {time.time() - start:.0f}s.")


def merge_with_saved(summary: dict, meta: dict, path: str) -> tuple[dict, dict]:
    """``summary`` plus the rows of the saved comparison at ``path`` that it lacks.

    The saved rows must come from the same seeds and steps, and this run's raw-pixel baseline
    must equal the saved one (the evaluation is unchanged). The random-init baseline is the
    saved one: it is the default network's, and this run's first recipe may use another.
    """
    with open(path) as f:
        saved = json.load(f)
    for key in ("seeds", "steps"):
        if saved["meta"][key] != meta[key]:
            raise ValueError(f"--merge: the saved comparison has {key}={saved['meta'][key]} but this run "
                             f"{meta[key]}; re-run every recipe instead.")
    ours, theirs = (summary["raw_pixels"]["5way_1shot_accuracy"]["per_seed"],
                    saved["summary"]["raw_pixels"]["5way_1shot_accuracy"]["per_seed"])
    if not np.allclose(ours, theirs):
        raise ValueError(f"--merge: the raw-pixel baseline differs from the saved run ({ours} vs {theirs}); "
                         "the evaluation changed, so re-run every recipe.")
    summary = {name: entry for name, entry in summary.items() if name != "random_init"}
    kept = [name for name in saved["summary"] if name not in summary]
    merged = {**{name: saved["summary"][name] for name in kept}, **summary}
    meta = {**meta, "merged_rows_from_previous_run": kept,
            "runtime_seconds": meta["runtime_seconds"] + saved["meta"].get("runtime_seconds", 0)}
    return merged, meta


def write_report(summary: dict, meta: dict, out: str) -> None:
    """The Markdown table and the bar chart, rows in ``LABELS`` order (unmined first, baselines last)."""
    summary = {name: summary[name] for name in sorted(summary, key=lambda n: list(LABELS).index(n))}
    table = markdown_table(summary, meta)
    with open(os.path.join(out, "mining_comparison.md"), "w") as f:
        f.write("# Mining strategies on held-out digits\n\n" + table)
    bar_chart(summary, os.path.join(out, "mining_comparison.png"))
    print(table)


if __name__ == "__main__":
    main()
