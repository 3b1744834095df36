"""rl_repr word2vec next to gensim, skip-gram or CBOW: same corpus, settings, epochs and machine.

    python benchmarks/word2vec_vs_gensim.py --output benchmarks/results/word2vec_vs_gensim-cpu.json
    python benchmarks/word2vec_vs_gensim.py --context cbow --output benchmarks/results/word2vec_cbow_vs_gensim-cpu.json
    nice -n 10 python benchmarks/word2vec_vs_gensim.py --repeats 3 ...    # on a shared machine

Corpus: gensim's Wikipedia excerpt (106 articles, 452,944 tokens), cut into pieces of
10,000 tokens (gensim's sentence limit) and fed identically to both. Settings: gensim's
``Word2Vec(sg=1)`` defaults -- dim 100, window 5, 5 negatives, sample 1e-3, min_count 5,
alpha 0.025 -> 0.0001 -- and the same epochs; ``--context cbow`` compares CBOW instead, gensim's
``Word2Vec(sg=0)`` (``cbow_mean=1``, the same defaults) against ``configs/word2vec_cbow_wiki.py``.
gensim gets ``--workers`` threads (default: every core); rl_repr runs its recipe unchanged: on a CPU that splits
the host into one JAX device per core, each a Hogwild worker whose replica of the tables
merges with the others every 64 updates (``table_sync='step'``), as gensim's threads
share theirs; on a GPU, the GPU(s).

Throughput is gensim's "raw words": every corpus token (out-of-vocabulary ones included)
times epochs, divided by the training time -- vocabulary building excluded for both,
rl_repr's compilation included (``steady_*`` excludes its first, compiling step), and
again with the compiled step loaded from JAX's persistent compilation cache, as on any
rerun (``rl_repr_compiled_step_cached``; the step depends only on shapes, so one untimed
run fills the cache). On a shared machine wall time depends on the neighbours' load, so
the runs alternate (each rl_repr run is followed by a gensim run; ``ratios.paired_*`` is
the median of those per-pair ratios) and the CPU time of each training (all threads) is
reported too (``raw_words_per_cpu_second``).

Quality: Spearman on WordSim-353 and SimLex-999 and Google-analogy accuracy, computed for
both models by ``rl_repr.word2vec.evaluation`` (gensim's protocol). gensim is optional:
without it only rl_repr's speed is reported (the corpus and the benchmark files ship with
gensim: extract the excerpt where gensim is installed, copy ``<cache>/text/enwiki-excerpt.txt``
and pass ``--cache-dir``). Prints JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time


RECIPES = {"skipgram": "word2vec_wiki.py", "cbow": "word2vec_cbow_wiki.py"}


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--context", choices=tuple(RECIPES), default="skipgram",
                        help="skip-gram (gensim sg=1) or CBOW (gensim sg=0)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="gensim worker threads (default: every core)")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each; medians are reported")
    parser.add_argument("--skip-gensim", action="store_true")
    parser.add_argument("--cache-dir", default="", help="where the extracted excerpt is cached")
    parser.add_argument("--output", default="", help="also write the JSON here")
    return parser.parse_args()


ARGS = _parse() if __name__ == "__main__" else None
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


import jax  # noqa: E402
import numpy as np  # noqa: E402

from rl_repr.core import runner  # noqa: E402
from rl_repr.core.recipes import load_config_file  # noqa: E402
from rl_repr.data.text import vocab as text_vocab  # noqa: E402
from rl_repr.word2vec import evaluation as evaluate_words  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUALITY = ("wordsim353_spearman", "simlex999_spearman", "analogy_accuracy")


def _recipe(context: str):
    return load_config_file(os.path.join(ROOT, "configs", RECIPES[context]))


def run_rl_repr(epochs: int, cache_dir: str, seed: int, compilation_cache_dir: str = "",
                context: str = "skipgram") -> dict:
    """One training run of the context's recipe (``RECIPES``); timings from the trainer."""
    config = _recipe(context)
    config.epochs, config.seed, config.data.cache_dir = epochs, seed, cache_dir
    config.compilation_cache_dir = compilation_cache_dir
    config.export.update(word2vec_text=False, word2vec_binary=False, projector=False)
    config.log_every_steps = 10_000
    config.checkpoint_every_steps = 1_000_000
    with tempfile.TemporaryDirectory() as workdir:
        results = runner.run("word2vec", config, workdir)
    keep = ("train_seconds", "train_cpu_seconds", "raw_words_per_second", "first_step_seconds",
            "steady_raw_words_per_second", "vocabulary_size", "devices", "backend") + QUALITY
    summary = {key: results[key] for key in keep if key in results}  # no benchmarks without gensim
    summary["raw_words_per_cpu_second"] = results["raw_words"] * epochs / results["train_cpu_seconds"]
    return summary | {"settings": {
        key: config[key] for key in ("context", "positions_per_row", "updates_per_step", "negative_sharing",
                                     "loss_impl", "parallel", "table_sync", "cpu_devices")}}


def run_gensim(pieces: list[list[str]], raw_words: int, epochs: int, workers: int, seed: int,
               context: str = "skipgram") -> dict:
    """gensim ``Word2Vec(sg=1)`` (``sg=0``: CBOW) with its defaults, timed around ``train`` only."""
    from gensim.models import Word2Vec  # noqa: PLC0415 (optional)

    model = Word2Vec(vector_size=100, window=5, negative=5, sample=1e-3, min_count=5, alpha=0.025,
                     min_alpha=0.0001, sg=int(context == "skipgram"), hs=0, workers=workers, epochs=epochs, seed=seed)
    model.build_vocab(pieces)
    start, cpu_start = time.perf_counter(), time.process_time()
    model.train(pieces, total_examples=model.corpus_count, epochs=epochs)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    words = list(model.wv.index_to_key)
    quality = evaluate_words.evaluate_word_vectors(np.asarray(model.wv.vectors), words)
    return {"train_seconds": seconds, "train_cpu_seconds": cpu_seconds,
            "raw_words_per_second": raw_words * epochs / seconds,
            "raw_words_per_cpu_second": raw_words * epochs / cpu_seconds,
            "vocabulary_size": len(words), **{key: quality[key] for key in QUALITY}}


def _median(runs: list[dict]) -> dict:
    """Per-key median of the runs' numbers (a value every run shares is kept as is)."""
    summary = {}
    for key, first in runs[0].items():
        values = [run[key] for run in runs]
        if isinstance(first, (int, float)) and len(set(values)) > 1:
            summary[key] = statistics.median(values)
        else:
            summary[key] = first
    return summary


def _paired(mine: list[dict], peers: list[dict]) -> dict:
    """Per-repeat words-per-second ratios of interleaved runs, and their median."""
    ratios = [a["raw_words_per_second"] / b["raw_words_per_second"] for a, b in zip(mine, peers)]
    return {"median": statistics.median(ratios), "per_repeat": ratios}


def main(args: argparse.Namespace) -> dict:
    load_at_start = os.getloadavg()
    cache_dir = args.cache_dir or None
    sentences = text_vocab.corpus_sentences("wiki_excerpt", cache_dir=cache_dir)
    limit = text_vocab.GENSIM_MAX_SENTENCE_LENGTH
    pieces = [s[i:i + limit] for s in sentences for i in range(0, len(s), limit)]
    raw_words = sum(len(p) for p in pieces)
    try:
        import gensim  # noqa: F401, PLC0415
        have_gensim = not args.skip_gensim
    except ImportError:
        have_gensim = False
    # Phase 1: rl_repr compiling from scratch, alternating with gensim (same machine load).
    ours, theirs = [], []
    for repeat in range(args.repeats):
        ours.append(run_rl_repr(args.epochs, args.cache_dir, seed=repeat, context=args.context))
        if have_gensim:
            theirs.append(run_gensim(pieces, raw_words, args.epochs, args.workers, seed=repeat, context=args.context))
    # Phase 2: the compiled step reused from JAX's persistent cache (filled by one untimed run),
    # as on any rerun of a recipe; last because the cache setting is process-wide.
    cached = []
    with tempfile.TemporaryDirectory() as compilation_cache:
        run_rl_repr(1, args.cache_dir, seed=0, compilation_cache_dir=compilation_cache, context=args.context)
        for repeat in range(args.repeats):
            cached.append(run_rl_repr(args.epochs, args.cache_dir, seed=repeat,
                                      compilation_cache_dir=compilation_cache, context=args.context))
            if have_gensim:
                theirs.append(run_gensim(pieces, raw_words, args.epochs, args.workers, seed=repeat,
                                         context=args.context))
    report = {
        "corpus": {"name": "gensim enwiki excerpt", "raw_words": raw_words, "pieces": len(pieces),
                   "vocabulary_size": ours[0]["vocabulary_size"]},
        "settings": {"context": args.context, "dim": 100, "window": 5, "negative": 5, "sample": 1e-3, "min_count": 5,
                     "alpha": 0.025, "min_alpha": 0.0001, "epochs": args.epochs, "workers": args.workers,
                     "repeats": args.repeats},
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                    "jax_backend": jax.default_backend(), "jax_devices": jax.device_count(),
                    "device_kind": jax.devices()[0].device_kind, "niceness": os.nice(0),
                    "load_average_at_start": load_at_start, "load_average_at_end": os.getloadavg()},
        "rl_repr": _median(ours) | {"runs": ours},
        "rl_repr_compiled_step_cached": _median(cached) | {"runs": cached},
    }
    if theirs:
        report["gensim"] = _median(theirs) | {"runs": theirs}
        ours_summary, theirs_summary = report["rl_repr"], report["gensim"]
        report["ratios"] = {
            "words_per_second_rl_repr_over_gensim":
                ours_summary["raw_words_per_second"] / theirs_summary["raw_words_per_second"],
            "words_per_second_rl_repr_cached_compile_over_gensim":
                report["rl_repr_compiled_step_cached"]["raw_words_per_second"] / theirs_summary["raw_words_per_second"],
            "steady_words_per_second_rl_repr_over_gensim":
                ours_summary.get("steady_raw_words_per_second", float("nan")) / theirs_summary["raw_words_per_second"],
            "words_per_cpu_second_rl_repr_over_gensim":
                ours_summary["raw_words_per_cpu_second"] / theirs_summary["raw_words_per_cpu_second"],
            **{f"{key}_rl_repr_minus_gensim": ours_summary[key] - theirs_summary[key] for key in QUALITY}}
        # Each rl_repr run against the gensim run right after it (the same stretch of machine
        # load): the median of these ratios is the least sensitive to load that drifts.
        phases = {"compilation_included": (ours, theirs[:len(ours)]),
                  "compiled_step_cached": (cached, theirs[len(ours):])}
        report["ratios"]["paired_words_per_second_rl_repr_over_gensim"] = {
            name: _paired(mine, peers) for name, (mine, peers) in phases.items() if len(peers) == len(mine)}
    else:
        report["gensim"] = "not installed (or --skip-gensim): rl_repr only"
    return report


if __name__ == "__main__":
    result = main(ARGS)
    text = json.dumps(result, indent=2, sort_keys=True)
    print(text)
    if ARGS.output:
        with open(ARGS.output, "w") as f:
            f.write(text + "\n")
    sys.exit(0)
