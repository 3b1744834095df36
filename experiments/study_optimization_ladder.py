"""The optimisation ladder of the slides: a linear classifier fitted by random search, random local
search and gradient descent (1,000 tries or steps each, the same multiclass SVM loss), with SGD,
momentum and Adam curves beside them (``rl_repr.supervised.ladder``).

    nice -n 10 python experiments/study_optimization_ladder.py [--data_dir=~/tensorflow_datasets]

Datasets: the bundled digits (64 pixels + 1), 10 made-up character classes at 32x32 (1,024 + 1,
closer to CIFAR-10's 3,072 + 1), and CIFAR-10 itself when it is prepared in ``--data_dir``
(never downloaded; the slides' 15.5% / 21.4% are for CIFAR-10). Random search and random local
search take 3 seeds; the gradient methods' learning rate is the best final training loss of
two rates (reported). Writes ``experiments/results/optimization_ladder/``.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import ml_collections
import numpy as np
import optax

import study_report as sr
from rl_repr.data.images import sources
from rl_repr.supervised import ladder

NAME = "optimization_ladder"
SEEDS = (0, 1, 2)
GRADIENT_METHODS = {  # name -> (optimizer of a learning rate, learning rates tried, batch size; 0 = full batch)
    "gradient descent (full batch)": (optax.sgd, (1e-6, 1e-5), 0),
    "SGD (batch 64)": (optax.sgd, (1e-6, 1e-5), 64),
    "SGD + momentum 0.9 (batch 64)": (lambda lr: optax.sgd(lr, momentum=0.9), (1e-7, 1e-6), 64),
    "Adam (batch 64)": (optax.adam, (1e-4, 1e-3), 64),
}


def datasets(data_dir: str) -> dict:
    """``name -> (train, test)`` ImageDatasets (CIFAR-10 only when prepared in ``data_dir``)."""
    found = {}
    for name in ("digits", "characters:classes=10,images=200,size=32"):
        found[name] = sources.load_train_test(ml_collections.ConfigDict(dict(dataset=name, seed=0)))
    if data_dir:
        try:
            config = ml_collections.ConfigDict(dict(dataset="cifar10", data_dir=os.path.expanduser(data_dir),
                                                    image_size=0, seed=0))
            found["cifar10"] = sources.load_train_test(config)
        except Exception as error:  # noqa: BLE001 - absent data is reported, not fatal
            print(f"CIFAR-10 not used: {type(error).__name__}: {str(error).splitlines()[0]}")
    return found


def ladder_on(train, test) -> dict:
    x, y, xt, yt = ladder.with_bias(train.images), train.labels, ladder.with_bias(test.images), test.labels
    k, out = train.num_classes, {}
    for name, search in (("random search", ladder.random_search), ("random local search", ladder.random_local_search)):
        runs = [search(x, y, k, seed=s) for s in SEEDS]
        out[name] = {"test_accuracy": [100 * ladder.accuracy(w, xt, yt) for w, _ in runs],
                     "loss": np.mean([h for _, h in runs], axis=0).tolist()}
        print(f"{name}: {out[name]['test_accuracy']}", flush=True)
    for name, (make, rates, batch) in GRADIENT_METHODS.items():
        trials = {lr: ladder.gradient_training(x, y, k, make(lr), batch_size=batch) for lr in rates}
        lr = min(rates, key=lambda r: trials[r][1][-1] if np.isfinite(trials[r][1][-1]) else np.inf)
        weights, history = trials[lr]
        out[name] = {"test_accuracy": [100 * ladder.accuracy(weights, xt, yt)], "loss": history, "learning_rate": lr}
        print(f"{name} (lr {lr:g}): {out[name]['test_accuracy']}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", default="")
    parser.add_argument("--out", default=os.path.join(sr.ROOT, "experiments", "results", NAME))
    args = parser.parse_args()
    start = time.perf_counter()
    results = {name: ladder_on(*splits) for name, splits in datasets(args.data_dir).items()}
    minutes = (time.perf_counter() - start) / 60
    methods = list(next(iter(results.values())))
    lines = ["**The optimisation ladder** (a linear classifier on raw pixels + bias, multiclass SVM loss, 1,000 "
             "tries or steps each; test accuracy %, mean ± std over 3 seeds for the searches)", "",
             "| method | " + " | ".join(results) + " | slides (CIFAR-10) |", "|---" * (len(results) + 2) + "|"]
    slides = {"random search": "15.5", "random local search": "21.4"}
    for method in methods:
        marks = []
        for r in results.values():
            text = sr.mean_spread(r[method]["test_accuracy"])
            marks.append(text + (f" (lr {r[method]['learning_rate']:g})" if "learning_rate" in r[method] else ""))
        lines.append(f"| {method} | " + " | ".join(marks) + f" | {slides.get(method, 'far above')} |")
    mean = statistics.mean
    order = all(mean(r["random search"]["test_accuracy"]) < mean(r["random local search"]["test_accuracy"]) <
                mean(r["gradient descent (full batch)"]["test_accuracy"]) for r in results.values())
    verdict = ("Verdict: the ladder's order reproduces on every dataset (random search < random local search < "
               "gradient descent)." if order else "Verdict: the ladder's order does NOT hold on every dataset.")
    lines += ["", verdict, "", sr.machine_note(minutes)]
    plt = sr.pyplot()
    figure, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 4), squeeze=False)
    for ax, (name, r) in zip(axes[0], results.items()):
        for method in methods:
            ax.plot(range(1, len(r[method]["loss"]) + 1), r[method]["loss"], label=method)
        ax.set_yscale("log")
        ax.set_title(name.split(":")[0] if name != "characters:classes=10,images=200,size=32" else "made-up characters 32x32")
        ax.set_xlabel("try / step")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("training SVM loss")
    axes[0][-1].legend(fontsize="small")
    paths = sr.write_results(args.out, {"study": NAME, "results": results, "verdict": verdict, "minutes": minutes},
                             "\n".join(lines), figure)
    print("\n".join(lines))
    print("wrote", paths)


if __name__ == "__main__":
    main()
