"""The frozen-representation protocol every self-supervised method reports (SimCLR, Sec. 4).

Train nothing but a classifier on top of frozen features: a linear probe
(:mod:`rl_repr.evaluation.linear_probe`) and a weighted kNN (:mod:`rl_repr.evaluation.knn`),
both on the same ``[N, d]`` feature matrices; next to the same protocol on raw pixels and on
the encoder at its random initialisation, so a number always comes with its baselines.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from rl_repr.evaluation.knn import knn_accuracy
from rl_repr.evaluation.linear_probe import linear_probe


def linear_and_knn(prefix: str, train_features: np.ndarray, train_labels: np.ndarray,
                   test_features: np.ndarray, test_labels: np.ndarray, *, k: int,
                   num_classes: int | None = None) -> dict[str, float]:
    """``{prefix}linear_probe_accuracy`` and ``{prefix}knn_accuracy`` (test top-1 in [0, 1]).

    Shapes: train_features ``[N, d]``, train_labels ``[N]``, test_features ``[M, d]``,
    test_labels ``[M]``.
    """
    probe = linear_probe(train_features, train_labels, test_features, test_labels)
    knn = knn_accuracy(train_features, train_labels, test_features, test_labels, k=k, num_classes=num_classes)
    return {f"{prefix}linear_probe_accuracy": probe["accuracy"], f"{prefix}knn_accuracy": knn}


def raw_pixels(images: np.ndarray) -> np.ndarray:
    """``[N, H, W, C]`` uint8 images -> ``[N, H * W * C]`` float32 in [0, 1] (the pixel baseline)."""
    return images.reshape(images.shape[0], -1).astype(np.float32) / 255.0


def accuracy_table(results: Mapping, rows: Sequence[tuple[str, str]]) -> str:
    """A Markdown table of linear-probe and kNN accuracy, one row per ``(label, prefix)``."""
    lines = ["| representation | linear probe | kNN |", "|---|---|---|"]
    for label, prefix in rows:
        probe = results.get(f"{prefix}linear_probe_accuracy")
        knn = results.get(f"{prefix}knn_accuracy")
        if probe is None:
            continue
        lines.append(f"| {label} | {100 * probe:.2f}% | {100 * knn:.2f}% |")
    return "\n".join(lines)
