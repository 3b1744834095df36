"""Word-vector evaluation: similarity (Spearman), analogies (3CosAdd), nearest neighbours.

The benchmarks and their protocol follow gensim's ``KeyedVectors.evaluate_word_pairs``
and ``evaluate_word_analogies`` (the numbers people compare against; ``tests/test_word_eval.py``
checks ours give the same), re-implemented vectorised in NumPy because that is faster:
``benchmarks/word_eval.py`` (30,000 words, d = 100; ``benchmarks/results/word_eval-cpu.json``)
measured the Google analogies 34x faster than gensim's question-by-question loop (36 s
against 1,218 s on a loaded 2-core CPU) and WordSim-353 1.7x faster, with equal numbers.

* **Word similarity** (WordSim-353, Finkelstein et al. 2002; SimLex-999, Hill et al.
  2015): the Spearman rank correlation between human scores and the cosine similarity
  ``v_a . v_b / (|v_a| |v_b|)`` over the pairs whose two words are known; unknown pairs
  are skipped and reported as ``oov_fraction``.
* **Analogies** (Mikolov et al. 2013's Google questions, "a is to b as c is to d"): the
  prediction is ``argmax_w cos(w, unit(b) - unit(a) + unit(c))`` over all words except
  ``a, b, c`` (3CosAdd); accuracy over the questions whose four words are known.

Both look words up case-insensitively (a word's most frequent casing wins) within the
``restrict_vocab`` most frequent words, as gensim does. The benchmark files ship inside
gensim's test data (:func:`rl_repr.data.text.vocab.gensim_datapath`); gensim itself is
optional.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from scipy import stats

from rl_repr.core.extras import require
from rl_repr.data.text.vocab import gensim_datapath

ml_collections = require("ml_collections")

WORDSIM353 = "wordsim353.tsv"
SIMLEX999 = "simlex999.txt"
GOOGLE_ANALOGIES = "questions-words.txt"


# ------------------------------------------------------------------------- files
def load_word_pairs(path: str) -> list[tuple[str, str, float]]:
    """``(word_a, word_b, human_score)`` per line of a tab-separated file; ``#`` lines skipped."""
    pairs = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip() or line.startswith("#"):
                continue
            fields = line.rstrip("\n").split("\t")
            try:
                pairs.append((fields[0], fields[1], float(fields[2])))
            except (IndexError, ValueError):
                continue  # a malformed line, skipped as gensim does
    return pairs


def load_analogies(path: str) -> dict[str, list[tuple[str, str, str, str]]]:
    """Sections (``': name'`` lines) of ``a b c d`` questions, in file order."""
    sections: dict[str, list[tuple[str, str, str, str]]] = {}
    current = None
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith(": "):
                current = sections.setdefault(line[2:].strip(), [])
            elif line.strip():
                words = line.split()
                if current is None:
                    raise ValueError(f"{path}: questions before the first ': section' line.")
                if len(words) == 4:
                    current.append(tuple(words))
    return sections


# ------------------------------------------------------------------------- helpers
def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero), float32 ``[V, d]``."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2:
        raise ValueError(f"vectors has shape {vectors.shape}; pass a [V, d] matrix.")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


def _lookup(words: Sequence[str], restrict_vocab: int, case_insensitive: bool) -> dict[str, int]:
    """``key -> row`` over the first ``restrict_vocab`` words; the most frequent casing wins."""
    keys = words[:restrict_vocab]
    fold = str.upper if case_insensitive else (lambda w: w)
    return {fold(word): row for row, word in reversed(list(enumerate(keys)))}


def _check(vectors: np.ndarray, words: Sequence[str]) -> None:
    if np.ndim(vectors) != 2 or len(words) != np.shape(vectors)[0]:
        raise ValueError(f"vectors has shape {np.shape(vectors)} for {len(words)} words; pass one "
                         "row per word.")


# ------------------------------------------------------------------------- benchmarks
def word_similarity(vectors: np.ndarray, words: Sequence[str], pairs: Sequence[tuple[str, str, float]], *,
                    restrict_vocab: int = 300_000, case_insensitive: bool = True) -> dict[str, float]:
    """Spearman (and Pearson) correlation of cosine similarity with human scores.

    Args:
      vectors: ``[V, d]``, row ``i`` for ``words[i]`` (most frequent first).
      words: the vocabulary.
      pairs: ``(a, b, score)``, e.g. from :func:`load_word_pairs`.

    Returns:
      ``spearman``, ``pearson``, ``pairs`` (used) and ``oov_fraction`` (skipped / all).
    """
    _check(vectors, words)
    index = _lookup(words, restrict_vocab, case_insensitive)
    fold = str.upper if case_insensitive else (lambda w: w)
    rows = [(index.get(fold(a)), index.get(fold(b)), score) for a, b, score in pairs]
    known = [(i, j, s) for i, j, s in rows if i is not None and j is not None]
    if len(known) < 2:
        return {"spearman": float("nan"), "pearson": float("nan"), "pairs": len(known),
                "oov_fraction": 1.0 - len(known) / max(len(pairs), 1)}
    unit = unit_rows(vectors)
    first, second, human = (np.array(column) for column in zip(*known))
    model = np.sum(unit[first] * unit[second], axis=1)
    return {"spearman": float(stats.spearmanr(human, model).statistic),
            "pearson": float(stats.pearsonr(human, model).statistic),
            "pairs": len(known), "oov_fraction": 1.0 - len(known) / len(pairs)}


def analogy_accuracy(vectors: np.ndarray, words: Sequence[str],
                     sections: dict[str, Sequence[tuple[str, str, str, str]]], *,
                     restrict_vocab: int = 300_000, case_insensitive: bool = True,
                     chunk_size: int = 1024) -> dict[str, float]:
    """3CosAdd accuracy on analogy questions ``a : b :: c : d``.

    ``d_hat = argmax_{w not in {a, b, c}} cos(w, unit(b) - unit(a) + unit(c))`` among the
    first ``restrict_vocab`` words; questions with an unknown word are skipped.

    Returns:
      ``accuracy`` (over all answered questions), ``correct``, ``questions`` (answered),
      ``oov_fraction``, and ``accuracy/<section>`` for each section with questions.
    """
    _check(vectors, words)
    index = _lookup(words, restrict_vocab, case_insensitive)
    fold = str.upper if case_insensitive else (lambda w: w)
    unit = unit_rows(vectors)[:restrict_vocab]
    # A casing of an input word is the input word (gensim skips it as a prediction too).
    canonical = np.array([index.get(fold(w), -1) for w in words[:restrict_vocab]])
    variants = np.nonzero(canonical != np.arange(len(canonical)))[0]  # other casings, usually none
    chunk_size = max(1, min(chunk_size, (1 << 25) // max(len(canonical), 1)))  # [Q, V] stays < 128 MiB
    results: dict[str, float] = {}
    total_correct = total_answered = total_questions = 0
    for name, questions in sections.items():
        ids = [[index.get(fold(w)) for w in q] for q in questions]
        known = np.array([q for q in ids if None not in q], dtype=np.int64).reshape(-1, 4)
        total_questions += len(questions)
        correct = 0
        for start in range(0, len(known), chunk_size):
            a, b, c, expected = known[start:start + chunk_size].T
            target = unit_rows(unit[b] - unit[a] + unit[c])
            scores = target @ unit.T  # [Q, V]
            rows = np.arange(len(a))
            for excluded in (a, b, c):
                scores[rows, excluded] = -np.inf
                if len(variants):
                    hit = canonical[variants][None, :] == excluded[:, None]
                    scores[:, variants] = np.where(hit, -np.inf, scores[:, variants])
            correct += int(np.sum(canonical[np.argmax(scores, axis=1)] == expected))
        if len(known):
            results[f"accuracy/{name}"] = correct / len(known)
        total_correct += correct
        total_answered += len(known)
    results.update(accuracy=total_correct / total_answered if total_answered else float("nan"),
                   correct=total_correct, questions=total_answered,
                   oov_fraction=1.0 - total_answered / max(total_questions, 1))
    return results


def nearest_neighbours(vectors: np.ndarray, words: Sequence[str], queries: Sequence[str], *,
                       k: int = 10) -> dict[str, list[tuple[str, float]]]:
    """The ``k`` words of highest cosine similarity to each known query word (itself excluded)."""
    _check(vectors, words)
    index = {w: i for i, w in enumerate(words)}
    known = [q for q in queries if q in index]
    if not known:
        return {}
    unit = unit_rows(vectors)
    rows = np.array([index[q] for q in known])
    scores = unit[rows] @ unit.T
    scores[np.arange(len(rows)), rows] = -np.inf
    k = min(k, len(words) - 1)
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return {q: [(words[j], float(scores[r, j])) for j in top[r]] for r, q in enumerate(known)}


def evaluate_word_vectors(vectors: np.ndarray, words: Sequence[str], *, wordsim: bool = True,
                          simlex: bool = True, analogies: bool = True,
                          restrict_vocab: int = 300_000) -> dict[str, float]:
    """WordSim-353 / SimLex-999 Spearman and Google-analogy accuracy from gensim's bundled files.

    Returns flat keys: ``wordsim353_spearman``, ``wordsim353_oov_fraction``,
    ``simlex999_spearman``, ``simlex999_oov_fraction``, ``analogy_accuracy``,
    ``analogy_questions``, ``analogy_oov_fraction``.
    """
    results: dict[str, float] = {}
    for enabled, name, filename in ((wordsim, "wordsim353", WORDSIM353), (simlex, "simlex999", SIMLEX999)):
        if enabled:
            scores = word_similarity(vectors, words, load_word_pairs(gensim_datapath(filename)),
                                     restrict_vocab=restrict_vocab)
            results[f"{name}_spearman"] = scores["spearman"]
            results[f"{name}_oov_fraction"] = scores["oov_fraction"]
    if analogies:
        scores = analogy_accuracy(vectors, words, load_analogies(gensim_datapath(GOOGLE_ANALOGIES)),
                                  restrict_vocab=restrict_vocab)
        results.update(analogy_accuracy=scores["accuracy"], analogy_questions=scores["questions"],
                       analogy_oov_fraction=scores["oov_fraction"])
    return results


def cluster_neighbour_accuracy(vectors: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of rows whose nearest other row (by cosine) has the same label.

    For generated corpora with planted clusters: 1.0 means every word sits nearest a
    word of its own cluster; chance is about ``1 / number of clusters``.
    """
    labels = np.asarray(labels)
    if np.ndim(vectors) != 2 or labels.shape != (np.shape(vectors)[0],):
        raise ValueError(f"vectors {np.shape(vectors)} and labels {labels.shape} disagree; pass one "
                         "label per row.")
    unit = unit_rows(vectors)
    scores = unit @ unit.T
    np.fill_diagonal(scores, -np.inf)
    return float(np.mean(labels[np.argmax(scores, axis=1)] == labels))


def evaluate_embeddings(config: ml_collections.ConfigDict, vectors: np.ndarray, words: Sequence[str],
                        topic_of_word: dict[str, int] | None) -> dict[str, Any]:
    """Word benchmarks (or planted-topic recovery for ``'topics'``) and nearest neighbours."""
    results: dict[str, Any] = {}
    if topic_of_word is not None:
        labels = np.array([topic_of_word[w] for w in words])
        results["topic_neighbour_accuracy"] = cluster_neighbour_accuracy(vectors, labels)
        queries = list(words[:3])
    else:
        try:
            results.update(evaluate_word_vectors(
                vectors, words, wordsim=config.eval.wordsim, simlex=config.eval.simlex,
                analogies=config.eval.analogies, restrict_vocab=config.eval.restrict_vocab))
        except ImportError as error:  # gensim (which ships the benchmark files) is optional
            results["word_benchmarks_skipped"] = str(error)
        queries = list(config.eval.neighbours)
    results["nearest_neighbours"] = {
        query: [word for word, _ in neighbours] for query, neighbours in nearest_neighbours(
            vectors, words, queries, k=config.eval.num_neighbours).items()}
    return results
