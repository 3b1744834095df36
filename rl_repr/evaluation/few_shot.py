"""Benchmarks of a learned similarity d(x1, x2) = ||f(x1) - f(x2)||^2 on classes it never saw.

Three protocols, all on a frozen feature matrix ``features [M, d]`` with ``labels [M]``:

* **N-way K-shot episodes** (Vinyals et al. 2016, "Matching Networks for One Shot
  Learning", arXiv:1606.04080; Koch et al. 2015, "Siamese Neural Networks for One-shot
  Image Recognition"): draw N classes, K support and Q query examples of each; a query
  takes the class of its nearest support example (or nearest class mean, Snell et al.
  2017, "Prototypical Networks", arXiv:1703.05175). The score is the mean accuracy over
  E episodes with its 95% interval ``1.96 * s / sqrt(E)`` (s: sample standard deviation
  of the per-episode accuracies), the convention of the few-shot literature (E >= 600).
* **Pair verification** (Huang et al. 2007, "Labeled Faces in the Wild"; FaceNet,
  Schroff et al. 2015, arXiv:1503.03832): "same" iff ``d < threshold``; the threshold is
  chosen on 9 folds of the pairs and scored on the 10th, for each fold in turn
  (contiguous folds, as sklearn's ``KFold(10, shuffle=False)`` in the FaceNet code).
* **Retrieval recall@k** (Song et al. 2016, "Deep Metric Learning via Lifted Structured
  Feature Embedding", arXiv:1511.06452): the fraction of items whose k nearest other
  items include one of the same class.

Episodes and pairs are index arrays drawn from a seed, so every representation of the
same set (trained, raw pixels, random init) is scored on exactly the same tasks.
Distances are squared Euclidean (Siamese networks' d) or cosine; everything is numpy.
"""
from __future__ import annotations

import dataclasses
from typing import Literal, Sequence

import numpy as np

__all__ = [
    "CLASSIFIERS",
    "FEATURE_TRANSFORMS",
    "Episodes",
    "sample_episodes",
    "episode_accuracies",
    "few_shot_accuracy",
    "sample_verification_pairs",
    "pair_distances",
    "verification_accuracy",
    "recall_at_k",
    "benchmark_embeddings",
    "center_and_normalize",
]

Distance = Literal["squared_euclidean", "cosine"]
Classifier = Literal["nearest_neighbor", "prototype"]
CLASSIFIERS = ("nearest_neighbor", "prototype")
# What is applied to every representation before it is scored (``center_and_normalize``).
FEATURE_TRANSFORMS = ("none", "center_and_normalize")
_CHUNK_ELEMENTS = 2 ** 24  # floats per temporary block (64 MB): bounds memory for wide raw pixels


def _check_features(features: np.ndarray, labels: np.ndarray) -> None:
    if np.ndim(features) != 2 or np.shape(labels) != (np.shape(features)[0],):
        raise ValueError(f"features has shape {np.shape(features)} and labels {np.shape(labels)}; "
                         "pass features [M, d] and one integer label per row, labels [M].")


def _distance_matrix(x: np.ndarray, y: np.ndarray, distance: Distance) -> np.ndarray:
    """``[..., n, d] x [..., m, d] -> [..., n, m]`` with one (batched) matrix product."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if distance == "cosine":
        x = x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
        y = y / np.maximum(np.linalg.norm(y, axis=-1, keepdims=True), 1e-12)
        return 1.0 - x @ np.swapaxes(y, -1, -2)
    if distance != "squared_euclidean":
        raise ValueError(f"distance={distance!r} is unknown; use 'squared_euclidean' or 'cosine'.")
    sq = (np.sum(x * x, -1)[..., :, None] + np.sum(y * y, -1)[..., None, :]
          - 2.0 * x @ np.swapaxes(y, -1, -2))
    return np.maximum(sq, 0.0)


# ============================================================================ episodes
@dataclasses.dataclass(frozen=True)
class Episodes:
    """Row indices of E episodes: ``support [E, N, K]`` and ``query [E, N, Q]``.

    Class ``n`` of episode ``e`` is ``classes[e, n]``; its episode label is ``n``.
    """

    support: np.ndarray
    query: np.ndarray
    classes: np.ndarray


def sample_episodes(labels: np.ndarray, *, n_way: int, k_shot: int, num_queries: int,
                    num_episodes: int, seed: int = 0) -> Episodes:
    """Draws ``num_episodes`` N-way K-shot episodes with Q queries per class.

    Each episode takes ``n_way`` distinct classes uniformly from those with at least
    ``k_shot + num_queries`` examples, then ``k_shot + num_queries`` distinct examples
    of each (the first K are the support set, the rest the queries).

    Raises:
      ValueError: fewer than ``n_way`` classes have enough examples.
    """
    labels = np.asarray(labels)
    per_class = k_shot + num_queries
    if min(n_way, k_shot, num_queries, num_episodes) < 1:
        raise ValueError(f"n_way={n_way}, k_shot={k_shot}, num_queries={num_queries} and "
                         f"num_episodes={num_episodes} must all be >= 1.")
    classes, counts = np.unique(labels, return_counts=True)
    eligible = classes[counts >= per_class]
    if len(eligible) < n_way:
        raise ValueError(f"only {len(eligible)} classes have the {per_class} examples a "
                         f"{n_way}-way {k_shot}-shot episode with {num_queries} queries needs; "
                         "lower num_queries or n_way, or evaluate on more classes.")
    members = {c: np.flatnonzero(labels == c) for c in eligible}
    rng = np.random.default_rng(seed)
    chosen_classes = np.stack([rng.choice(eligible, n_way, replace=False) for _ in range(num_episodes)])
    rows = np.stack([[rng.choice(members[c], per_class, replace=False) for c in episode]
                     for episode in chosen_classes])          # [E, N, K + Q]
    return Episodes(support=rows[..., :k_shot], query=rows[..., k_shot:], classes=chosen_classes)


def episode_accuracies(features: np.ndarray, episodes: Episodes, *,
                       classifier: Classifier = "nearest_neighbor",
                       distance: Distance = "squared_euclidean") -> np.ndarray:
    """``[E]`` fraction of each episode's queries given their own class.

    ``nearest_neighbor``: ``y(q) = argmin_n min_k d(q, s_{n,k})`` (Koch et al.; the
    one-shot recogniser of Koch et al.). ``prototype``: ``y(q) = argmin_n d(q, mean_k s_{n,k})``
    (Snell et al.). The two agree when K = 1. Ties go to the lower episode label.
    """
    features = np.asarray(features)
    if classifier not in CLASSIFIERS:
        raise ValueError(f"classifier={classifier!r} is unknown; use 'nearest_neighbor' or 'prototype'.")
    num_episodes, n_way, k_shot = episodes.support.shape
    num_queries = episodes.query.shape[2]
    per_episode = n_way * (k_shot + num_queries) * (n_way * k_shot + features.shape[1])
    chunk = max(1, _CHUNK_ELEMENTS // per_episode)
    truth = np.repeat(np.arange(n_way), num_queries)           # [N*Q], class-major like the rows
    out = []
    for start in range(0, num_episodes, chunk):
        support = features[episodes.support[start:start + chunk]]   # [e, N, K, d]
        query = features[episodes.query[start:start + chunk]]       # [e, N, Q, d]
        e = support.shape[0]
        query = query.reshape(e, n_way * num_queries, -1)
        if classifier == "prototype":
            dist = _distance_matrix(query, support.mean(axis=2), distance)          # [e, NQ, N]
        else:
            dist = _distance_matrix(query, support.reshape(e, n_way * k_shot, -1), distance)
            dist = dist.reshape(e, n_way * num_queries, n_way, k_shot).min(axis=-1)  # [e, NQ, N]
        out.append(np.mean(np.argmin(dist, axis=-1) == truth, axis=-1))
    return np.concatenate(out)


def few_shot_accuracy(features: np.ndarray, labels: np.ndarray, *, n_way: int = 5, k_shot: int = 1,
                      num_queries: int = 15, num_episodes: int = 600, seed: int = 0,
                      classifier: Classifier = "nearest_neighbor",
                      distance: Distance = "squared_euclidean") -> dict[str, float]:
    """Mean N-way K-shot accuracy over ``num_episodes`` and its 95% interval.

    Returns ``{'accuracy': mean, 'ci95': 1.96 * std(ddof=1) / sqrt(E), 'std': std}``.

    Example::

      few_shot_accuracy(f_heldout, y_heldout, n_way=5, k_shot=1)   # {'accuracy': 0.93, ...}
    """
    _check_features(features, labels)
    episodes = sample_episodes(labels, n_way=n_way, k_shot=k_shot, num_queries=num_queries,
                               num_episodes=num_episodes, seed=seed)
    accuracies = episode_accuracies(features, episodes, classifier=classifier, distance=distance)
    std = float(np.std(accuracies, ddof=1)) if len(accuracies) > 1 else 0.0
    return {"accuracy": float(np.mean(accuracies)), "ci95": 1.96 * std / np.sqrt(len(accuracies)),
            "std": std}


# ============================================================================ verification
def sample_verification_pairs(labels: np.ndarray, num_pairs: int, *, seed: int = 0
                              ) -> tuple[np.ndarray, np.ndarray]:
    """``(pairs [P, 2], same [P] bool)``: half matching pairs, half non-matching, shuffled.

    A matching pair is two distinct examples of one class (the class drawn uniformly among
    classes with >= 2 examples, as LFW's pairs are per person); a non-matching pair is one
    example each of two distinct classes (also drawn uniformly by class).
    """
    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    repeated = classes[counts >= 2]
    if num_pairs < 2 or len(repeated) < 1 or len(classes) < 2:
        raise ValueError(f"verification needs num_pairs >= 2 (got {num_pairs}), a class with two "
                         "examples and two classes; evaluate on more data.")
    members = {c: np.flatnonzero(labels == c) for c in classes}
    rng = np.random.default_rng(seed)
    num_same = num_pairs // 2
    same_pairs = [rng.choice(members[c], 2, replace=False) for c in rng.choice(repeated, num_same)]
    diff_pairs = [[rng.choice(members[a]), rng.choice(members[b])]
                  for a, b in (rng.choice(classes, 2, replace=False) for _ in range(num_pairs - num_same))]
    pairs = np.concatenate([np.array(same_pairs).reshape(-1, 2), np.array(diff_pairs).reshape(-1, 2)])
    same = np.arange(num_pairs) < num_same
    order = rng.permutation(num_pairs)
    return pairs[order], same[order]


def pair_distances(features: np.ndarray, pairs: np.ndarray,
                   distance: Distance = "squared_euclidean") -> np.ndarray:
    """``[P]``: ``d(features[pairs[:, 0]], features[pairs[:, 1]])`` row by row."""
    a, b = np.asarray(features, np.float64)[pairs[:, 0]], np.asarray(features, np.float64)[pairs[:, 1]]
    if distance == "cosine":
        a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
        b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
        return 1.0 - np.sum(a * b, axis=1)
    return np.sum((a - b) ** 2, axis=1)


def _best_threshold(distances: np.ndarray, same: np.ndarray) -> float:
    """The threshold t maximising accuracy of ``same <=> d < t`` (smallest t among ties).

    Every distinct rule is one cut of the sorted distances between two distinct values,
    so scoring the midpoints (and the two ends) with running counts is exact.
    """
    values = np.unique(distances)
    cuts = np.concatenate([[values[0] - 1.0], (values[:-1] + values[1:]) / 2, [values[-1] + 1.0]])
    below = np.searchsorted(np.sort(distances), cuts, side="left")  # pairs with d < cut
    same_sorted = same[np.argsort(distances, kind="stable")]
    same_below = np.concatenate([[0], np.cumsum(same_sorted)])[below]
    correct = same_below + (len(same) - below) - (np.sum(same) - same_below)
    return float(cuts[int(np.argmax(correct))])


def verification_accuracy(distances: np.ndarray, same: np.ndarray, *, num_folds: int = 10
                          ) -> dict[str, float]:
    """LFW's protocol: k-fold cross-validated accuracy of ``same <=> d < threshold``.

    The pairs are split into ``num_folds`` contiguous folds (sizes differ by at most one);
    for each fold the threshold is the best on the other folds, and accuracy is measured
    on the fold. Returns ``{'accuracy': mean over folds, 'std': std over folds (ddof=0,
    as LFW reports), 'threshold': mean chosen threshold}``.
    """
    distances, same = np.asarray(distances, np.float64), np.asarray(same, bool)
    if distances.ndim != 1 or same.shape != distances.shape or len(distances) < num_folds or num_folds < 2:
        raise ValueError(f"distances {distances.shape} and same {same.shape} must be equal-length "
                         f"vectors with at least num_folds={num_folds} >= 2 pairs.")
    folds = np.array_split(np.arange(len(distances)), num_folds)
    accuracies, thresholds = [], []
    for test in folds:
        train = np.setdiff1d(np.arange(len(distances)), test)
        threshold = _best_threshold(distances[train], same[train])
        accuracies.append(np.mean((distances[test] < threshold) == same[test]))
        thresholds.append(threshold)
    return {"accuracy": float(np.mean(accuracies)), "std": float(np.std(accuracies)),
            "threshold": float(np.mean(thresholds))}


# ============================================================================ retrieval
def recall_at_k(features: np.ndarray, labels: np.ndarray, ks: Sequence[int] = (1, 2, 4, 8), *,
                distance: Distance = "squared_euclidean") -> dict[int, float]:
    """Leave-one-out retrieval: ``{k: fraction of items with a same-class item among their
    k nearest other items}`` (the item itself is excluded; ties broken by index)."""
    _check_features(features, labels)
    labels = np.asarray(labels)
    num_items, max_k = len(labels), max(ks)
    if min(ks) < 1 or max_k >= num_items:
        raise ValueError(f"recall ks={tuple(ks)} must lie in [1, {num_items - 1}] for {num_items} items.")
    chunk = max(1, _CHUNK_ELEMENTS // num_items)
    hits = []
    for start in range(0, num_items, chunk):
        dist = _distance_matrix(features[start:start + chunk], features, distance)
        rows = np.arange(dist.shape[0])
        dist[rows, start + rows] = np.inf
        nearest = np.argsort(dist, axis=1, kind="stable")[:, :max_k]       # [c, max_k]
        match = labels[nearest] == labels[start:start + chunk, None]
        hits.append(np.logical_or.accumulate(match, axis=1))                 # hit within first j+1
    hits = np.concatenate(hits)
    return {int(k): float(np.mean(hits[:, k - 1])) for k in ks}


# ============================================================================ feature transform
def center_and_normalize(features: np.ndarray, base_mean: np.ndarray) -> np.ndarray:
    """SimpleShot's CL2N (Wang et al. 2019, "SimpleShot: Revisiting Nearest-Neighbor
    Classification for Few-Shot Learning", arXiv:1911.04623): ``(x - mu) / ||x - mu||``.

    ``features [M, d]``; ``base_mean [d]`` is the mean feature of the *training* classes'
    images (never of the evaluated classes), so the transform uses nothing of the episodes.
    Returns ``[M, d]`` float64 unit rows (a zero row stays zero).
    """
    features, base_mean = np.asarray(features, np.float64), np.asarray(base_mean, np.float64)
    if features.ndim != 2 or base_mean.shape != features.shape[1:]:
        raise ValueError(f"center_and_normalize: features {features.shape} and base_mean {base_mean.shape}; "
                         "pass features [M, d] and the training classes' mean feature [d].")
    centred = features - base_mean
    return centred / np.maximum(np.linalg.norm(centred, axis=1, keepdims=True), 1e-12)


# ============================================================================ all of them
def benchmark_embeddings(features: np.ndarray, labels: np.ndarray, *, n_way: int = 5,
                         shots: Sequence[int] = (1, 5), num_queries: int = 15, num_episodes: int = 600,
                         num_pairs: int = 3000, num_folds: int = 10,
                         recall_ks: Sequence[int] = (1, 2, 4, 8), seed: int = 0,
                         classifier: Classifier = "nearest_neighbor",
                         distance: Distance = "squared_euclidean") -> dict[str, float]:
    """Every benchmark above on one feature matrix, as flat result keys.

    Keys: ``{n}way_{k}shot_accuracy`` and ``..._ci95`` per shot, ``verification_accuracy``
    and ``verification_std``, ``recall_at_{k}``. The same ``seed`` gives the same episodes
    and pairs for any features of the same rows.
    """
    results: dict[str, float] = {}
    for k_shot in shots:
        score = few_shot_accuracy(features, labels, n_way=n_way, k_shot=k_shot, num_queries=num_queries,
                                  num_episodes=num_episodes, seed=seed, classifier=classifier,
                                  distance=distance)
        results[f"{n_way}way_{k_shot}shot_accuracy"] = score["accuracy"]
        results[f"{n_way}way_{k_shot}shot_ci95"] = score["ci95"]
    pairs, same = sample_verification_pairs(labels, num_pairs, seed=seed)
    verification = verification_accuracy(pair_distances(features, pairs, distance), same,
                                         num_folds=num_folds)
    results["verification_accuracy"] = verification["accuracy"]
    results["verification_std"] = verification["std"]
    for k, value in recall_at_k(features, labels, recall_ks, distance=distance).items():
        results[f"recall_at_{k}"] = value
    return results
