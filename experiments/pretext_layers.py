"""Layer by layer: how much each stage of every compared encoder knows about the character classes.

    python experiments/pretext_layers.py                          # after experiments/compare_pretext.py (seed 0)
    python experiments/pretext_layers.py --rows simclr,moco --merge   # add rows, keep the others

The comparison's probe reads only h, the pooled output of the last stage. Pretext encoders are
known to specialise their last layers to the task (Gidaris et al. 2018 and Noroozi & Favaro 2016
probe every layer; their best is a middle one), so this script probes every stage of each
trained encoder of ``experiments/compare_pretext.py`` and of the same encoder at random
initialisation. Each stage's output ``[N, s, s, c]`` is average-pooled to a 4x4 grid (``16 c``
features: enough to keep where the ink is, as the layer-wise probes of those papers keep a small
spatial grid) and to 1x1 (``c`` features, the pooling that gives h at the last stage); the same
L-BFGS linear probe as the comparison (``rl_repr.evaluation.linear_probe``) is fitted on the
3,200 training images and scored on the 800 test images, 100-way. Raw pixels for scale.

Reads the finished workdirs under ``--dir``; writes ``layers.json``, ``layers.md`` and
``layers.png`` under ``--out``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import jax
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from compare_pretext import ROWS, row_config  # noqa: E402
from rl_repr.core import runner  # noqa: E402
from rl_repr.core.checkpoint import Checkpointer  # noqa: E402
from rl_repr.core.drivers import local_copy  # noqa: E402
from rl_repr.data.images import sources  # noqa: E402
from rl_repr.data.images.augment import to_float_images  # noqa: E402
from rl_repr.evaluation.frozen import raw_pixels  # noqa: E402
from rl_repr.evaluation.linear_probe import linear_probe  # noqa: E402
from rl_repr.simclr.model import build_encoder  # noqa: E402

POOLINGS = {"grid": 4, "pooled": 1}  # output side of the average pooling


def stage_features(config, encoder_variables, images: np.ndarray, batch_size: int = 400) -> dict[str, np.ndarray]:
    """``{'stage<k>/<pooling>': [N, features]}``: every stage's last block output, pooled (eval-mode BN)."""
    encoder = build_encoder(config, bn_axis_name=None)

    @jax.jit
    def stages(x):
        _, captured = encoder.apply(encoder_variables, to_float_images(x), train=False,
                                    capture_intermediates=True, mutable=["intermediates"])
        blocks = {name: value["__call__"][0] for name, value in captured["intermediates"].items()
                  if name.startswith("stage")}
        out = {}
        for stage in sorted({name.split("_")[0] for name in blocks}):
            last = max((name for name in blocks if name.startswith(stage + "_")), key=lambda n: int(n.split("block")[1]))
            value = blocks[last]
            n, height, width, channels = value.shape
            for pooling, side in POOLINGS.items():
                grid = value.reshape(n, side, height // side, side, width // side, channels).mean(axis=(2, 4))
                out[f"{stage}/{pooling}"] = grid.reshape(n, -1)
        return out

    parts = [jax.device_get(stages(images[i:i + batch_size])) for i in range(0, len(images), batch_size)]
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def restore_encoder(config, workdir: str):
    """``(trained, random_init)`` encoder variables of the run in ``workdir`` (its newest checkpoint)
    and of the same run at step 0."""
    plan = runner.build(config).plan
    with Checkpointer(os.path.join(workdir, "checkpoints"), save_every_steps=1) as checkpointer:
        state, step = checkpointer.restore_latest(plan.state)
    if not step:
        raise SystemExit(f"{workdir} has no checkpoint; run experiments/compare_pretext.py first.")

    def encoder_of(s):
        return local_copy({"params": s.params["encoder"], "batch_stats": s.batch_stats.get("encoder", {})})

    return encoder_of(state), encoder_of(plan.state)


def probe_all(config, variables, train_set, test_set) -> dict[str, float]:
    train, test = (stage_features(config, variables, d.images) for d in (train_set, test_set))
    return {key: linear_probe(train[key], train_set.labels, test[key], test_set.labels)["accuracy"] for key in train}


def markdown(results: dict) -> str:
    keys = list(results["random_init"])
    lines = ["Linear probe (100-way test accuracy, %) of each stage's output, average-pooled to a 4x4 grid / "
             "to 1x1 (the last stage's 1x1 is h). Raw pixels: "
             f"{100 * results['raw_pixels']:.1f}.", "",
             "| encoder | " + " | ".join(k.replace("/", " ") for k in keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for row, scores in results.items():
        if row != "raw_pixels":
            label = ROWS[row][2] if row in ROWS else "same encoder, random init"
            lines.append(f"| {label} | " + " | ".join(f"{100 * scores[k]:.1f}" for k in keys) + " |")
    return "\n".join(lines) + "\n"


def plot(results: dict, path: str) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for ax, pooling in zip(axes, POOLINGS):
        for row, scores in results.items():
            if row == "raw_pixels":
                continue
            keys = [k for k in scores if k.endswith(pooling)]
            style = dict(color="black", ls=":", lw=2) if row == "random_init" else {}
            ax.plot(range(1, len(keys) + 1), [100 * scores[k] for k in keys], marker="o", label=row, **style)
        ax.axhline(100 * results["raw_pixels"], color="grey", ls="--", lw=1, label="raw pixels")
        ax.set_xticks(range(1, len(keys) + 1))
        ax.set_xlabel("ResNet stage")
        ax.set_title(f"stage output pooled to {POOLINGS[pooling]}x{POOLINGS[pooling]}")
    axes[0].set_ylabel("linear probe, 100-way test accuracy (%)")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default=",".join(ROWS))
    parser.add_argument("--epochs", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dir", default=os.path.join(ROOT, "workdirs", "compare_pretext"))
    parser.add_argument("--out", default=os.path.join(ROOT, "experiments", "results", "pretext-characters"))
    parser.add_argument("--merge", action="store_true", help="keep the rows of an earlier layers.json in --out")
    args = parser.parse_args()
    results: dict = {}
    data = None
    saved_path = os.path.join(args.out, "layers.json")
    if args.merge and os.path.isfile(saved_path):
        with open(saved_path) as f:
            results = json.load(f)
    for row in args.rows.split(","):
        if row in results:
            continue
        workdir = os.path.join(args.dir, f"{row}-epochs{args.epochs:g}-seed{args.seed}")
        if not os.path.isfile(os.path.join(workdir, "results.json")):
            print(f"{row}: not finished in {workdir}; skipped", flush=True)
            continue
        config = row_config(row, args.seed, args.epochs, baselines=False)
        trained, random_init = restore_encoder(config, workdir)
        if data is None:  # every row trains on the same images (compare_pretext.DATASET)
            data = sources.load_train_test(config)
        train_set, test_set = data
        if "random_init" not in results:  # the same encoder architecture and init for every row
            results["random_init"] = probe_all(config, random_init, train_set, test_set)
            results["raw_pixels"] = linear_probe(raw_pixels(train_set.images), train_set.labels,
                                                 raw_pixels(test_set.images), test_set.labels)["accuracy"]
        results[row] = probe_all(config, trained, train_set, test_set)
        print(row, {k: round(v, 3) for k, v in results[row].items()}, flush=True)
    if "random_init" not in results:
        raise SystemExit(f"no finished row of {args.rows} under {args.dir}; run experiments/compare_pretext.py "
                         "first (or pass --dir where its workdirs are).")
    results = {"raw_pixels": results.pop("raw_pixels"), "random_init": results.pop("random_init"),
               **{row: results[row] for row in ROWS if row in results}}
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "layers.json"), "w") as f:
        json.dump(results, f, indent=2)
    with open(os.path.join(args.out, "layers.md"), "w") as f:
        f.write(markdown(results))
    plot(results, os.path.join(args.out, "layers.png"))
    print(markdown(results))


if __name__ == "__main__":
    main()
