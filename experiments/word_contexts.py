"""Which context should predict a word? The lecture's choices on one corpus, scored the same way.

    nice -n 10 python experiments/word_contexts.py                  # 4 rows x 3 seeds
    python experiments/word_contexts.py --seeds 0 --epochs 1 --out /tmp/quick

Rows (gensim's Wikipedia excerpt, 452,944 tokens, vocabulary 9,002; dim 100, 5 negatives,
sample 1e-3, min_count 5, 5 epochs, the same vocabulary, batches of positions and evaluation):

* a nearby word -- skip-gram, ``configs/word2vec_wiki.py`` (window up to 4 on each side);
* 4 words on each side -- CBOW, ``configs/word2vec_cbow_wiki.py`` (their mean predicts the word);
* the last 4 words -- the next-word language model, ``configs/word2vec_language_model_wiki.py``
  (Bengio et al. 2003: concatenated, tanh hidden layer of 100, negative sampling);
* the last word -- the same model with ``window=1``.

The window is 4 everywhere (the lecture's numbers; skip-gram and CBOW draw each position's
window uniformly in 1..4, as word2vec does). Quality: Spearman on WordSim-353 and SimLex-999,
Google-analogy accuracy (``rl_repr.word2vec.evaluation``); time: the training loop's wall time
(compilation included) and raw words per second. Writes ``results.json``, ``table.md`` and
``plot.png`` under ``--out``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from rl_repr.core import runner  # noqa: E402
from rl_repr.core.log import show_messages  # noqa: E402
from rl_repr.core.recipes import load_config_file  # noqa: E402

# row -> (recipe, window, label, short label)
ROWS = {
    "skipgram": ("word2vec_wiki.py", 4, "a nearby word: skip-gram", "skip-gram"),
    "cbow": ("word2vec_cbow_wiki.py", 4, "4 words on each side: CBOW", "CBOW"),
    "language_model_4": ("word2vec_language_model_wiki.py", 4, "the last 4 words: language model", "LM, last 4"),
    "language_model_1": ("word2vec_language_model_wiki.py", 1, "the last word: language model", "LM, last 1"),
}
QUALITY = ("wordsim353_spearman", "simlex999_spearman", "analogy_accuracy")
TIME = ("train_seconds", "raw_words_per_second")


def run_row(row: str, seed: int, epochs: int) -> dict:
    recipe, window, _, _ = ROWS[row]
    config = load_config_file(os.path.join(ROOT, "configs", recipe))
    config.seed, config.window, config.epochs = seed, window, epochs
    config.export.update(word2vec_text=False, word2vec_binary=False, projector=False)
    config.log_every_steps, config.checkpoint_every_steps = 10_000, 1_000_000
    with tempfile.TemporaryDirectory() as workdir:
        results = runner.run("word2vec", config, workdir)
    return {key: results[key] for key in (*QUALITY, *TIME, "vocabulary_size", "devices")}


def markdown_table(summary: dict, meta: dict) -> str:
    lines = [f"gensim's Wikipedia excerpt ({meta['raw_words']:,} tokens, vocabulary {meta['vocabulary_size']:,}), "
             f"dim 100, {meta['epochs']} epochs, mean ± std over seeds {meta['seeds']}; ran on {meta['machine']}.",
             "", "| context (what predicts the word) | WS-353 ρ | SimLex-999 ρ | analogy | train time (s) | words/s |",
             "|---|---|---|---|---|---|"]
    for row, entry in summary.items():
        cells = [f"{entry[k]['mean']:.3f} ± {entry[k]['std']:.3f}" for k in QUALITY]
        cells += [f"{entry['train_seconds']['mean']:.0f}", f"{entry['raw_words_per_second']['mean']:,.0f}"]
        lines.append(f"| {ROWS[row][2]} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def bar_chart(summary: dict, path: str) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    rows = list(summary)
    fig, (quality, speed) = plt.subplots(1, 2, figsize=(12.0, 4.5), gridspec_kw={"width_ratios": [3, 1]})
    x = np.arange(len(rows))
    for offset, key, label in zip((-0.27, 0.0, 0.27), QUALITY, ("WS-353 ρ", "SimLex-999 ρ", "analogy accuracy")):
        quality.bar(x + offset, [summary[r][key]["mean"] for r in rows], 0.27,
                    yerr=[summary[r][key]["std"] for r in rows], capsize=3, label=label)
    labels = [ROWS[r][2].replace(": ", ":\n") for r in rows]
    quality.set_xticks(x, labels, fontsize=8)
    quality.set_title("quality (mean ± std over seeds)")
    quality.axhline(0, color="grey", lw=0.8)
    quality.legend(fontsize=8)
    speed.bar(x, [summary[r]["train_seconds"]["mean"] for r in rows], 0.6, color="C4")
    speed.set_xticks(x, [ROWS[r][3] for r in rows], fontsize=8, rotation=30, ha="right")
    speed.set_title("training time (s)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default=",".join(ROWS))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--out", default=os.path.join(ROOT, "experiments", "results", "word_contexts"))
    parser.add_argument("--replot", action="store_true", help="redraw table and plot from --out's results.json")
    args = parser.parse_args()
    show_messages()  # the runs' progress lines
    if args.replot:
        with open(os.path.join(args.out, "results.json")) as f:
            saved = json.load(f)
        write_report(saved["summary"], saved["meta"], saved["runs"], args.out)
        return
    seeds = [int(s) for s in args.seeds.split(",")]
    runs = {}
    for row in args.rows.split(","):
        runs[row] = []
        for seed in seeds:
            runs[row].append(run_row(row, seed, args.epochs))
            print(row, seed, {k: round(v, 4) for k, v in runs[row][-1].items()}, flush=True)
    summary = {row: {k: {"mean": float(np.mean([r[k] for r in rs])), "std": float(np.std([r[k] for r in rs])),
                         "per_seed": [r[k] for r in rs]} for k in (*QUALITY, *TIME)} for row, rs in runs.items()}
    first = next(iter(runs.values()))[0]
    meta = {"epochs": args.epochs, "seeds": seeds, "raw_words": 452_944, "vocabulary_size": first["vocabulary_size"],
            "machine": f"{platform.machine()} CPU, {os.cpu_count()} cores shared with other jobs (load average "
                       f"{os.getloadavg()[0]:.1f} at the end); skip-gram and CBOW on one device per core "
                       "(Hogwild), the language model on one device"}
    write_report(summary, meta, runs, args.out)


def write_report(summary: dict, meta: dict, runs: dict, out: str) -> None:
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump({"meta": meta, "summary": summary, "runs": runs}, f, indent=2)
    with open(os.path.join(out, "table.md"), "w") as f:
        f.write(markdown_table(summary, meta))
    bar_chart(summary, os.path.join(out, "plot.png"))
    print(markdown_table(summary, meta))


if __name__ == "__main__":
    main()
