"""Word-vector benchmarks, ours next to gensim's, in one run: which implementation to keep.

    python benchmarks/word_eval.py [--vocabulary 30000] [--dim 100] [--repeats 3]

Scores the same vectors (random, over a vocabulary holding every benchmark word plus filler
words up to ``--vocabulary``) with ``rl_repr.word2vec.evaluation`` and with gensim's
``KeyedVectors.evaluate_word_pairs`` (WordSim-353) / ``evaluate_word_analogies`` (Google
analogies, restricted to the vocabulary like ours), and prints JSON: seconds (median of
``--repeats``), the ratio, and whether the numbers agree. rl_repr keeps its own code only where
this shows it faster with the same numbers.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from rl_repr.data.text.vocab import gensim_datapath  # noqa: E402
from rl_repr.word2vec import evaluation  # noqa: E402
from rl_repr.word2vec.export import keyed_vectors  # noqa: E402


def _timed(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocabulary", type=int, default=30000)
    parser.add_argument("--dim", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    analogies = evaluation.load_analogies(gensim_datapath(evaluation.GOOGLE_ANALOGIES))
    pairs_path = gensim_datapath(evaluation.WORDSIM353)
    benchmark_words = sorted({w.lower() for qs in analogies.values() for q in qs for w in q}
                             | {w.lower() for a, b, _ in evaluation.load_word_pairs(pairs_path) for w in (a, b)})
    words = benchmark_words + [f"filler{i}" for i in range(max(0, args.vocabulary - len(benchmark_words)))]
    vectors = np.random.default_rng(0).normal(size=(len(words), args.dim)).astype(np.float32)
    keyed = keyed_vectors(words, vectors)
    report = {"vocabulary": len(words), "dim": args.dim, "repeats": args.repeats}

    ours_s, ours = _timed(lambda: evaluation.word_similarity(vectors, words, evaluation.load_word_pairs(pairs_path)),
                          args.repeats)
    peer_s, peer = _timed(lambda: keyed.evaluate_word_pairs(pairs_path), args.repeats)
    report["wordsim353"] = {"rl_repr_seconds": ours_s, "gensim_seconds": peer_s, "gensim_over_rl_repr": peer_s / ours_s,
                            "same_spearman": bool(np.isclose(ours["spearman"], peer[1].statistic, rtol=1e-6))}
    ours_s, ours = _timed(lambda: evaluation.analogy_accuracy(vectors, words, analogies), args.repeats)
    peer_s, peer = _timed(lambda: keyed.evaluate_word_analogies(gensim_datapath(evaluation.GOOGLE_ANALOGIES),
                                                                restrict_vocab=len(words)), args.repeats)
    report["analogies"] = {"rl_repr_seconds": ours_s, "gensim_seconds": peer_s, "gensim_over_rl_repr": peer_s / ours_s,
                           "same_accuracy": bool(np.isclose(ours["accuracy"], peer[0], rtol=1e-6))}
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
