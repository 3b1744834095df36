"""Label noise for studies: symmetric noise at an exact, seeded rate.

Symmetric (uniform) noise, as in the label-smoothing-under-noise studies (Lukasik et al.
2020, arXiv:2003.02819): a chosen share of the training labels is replaced, each by one of the
*other* ``k - 1`` classes drawn uniformly. The rows are drawn without replacement, so the
injected rate is ``round(rate * N) / N`` exactly, not only in expectation.
"""
from __future__ import annotations

import numpy as np


def symmetric_label_noise(labels: np.ndarray, num_classes: int, rate: float, *, seed: int) -> np.ndarray:
    """A copy of ``labels`` [N] with ``round(rate * N)`` of them flipped to another class.

    Which rows flip and to which class are drawn from ``numpy.random.default_rng([seed, 15])``:
    the same seed gives the same noisy labels. A flipped label never equals its original
    (``(y + U{1..k-1}) mod k``), so ``rate`` is the share of wrong labels.

    Raises:
      ValueError: ``rate`` outside [0, 1), or fewer than 2 classes.
    """
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"label noise rate {rate} must be in [0, 1), e.g. 0.2 for 20% wrong labels.")
    if num_classes < 2:
        raise ValueError(f"label noise needs at least 2 classes, got num_classes={num_classes}.")
    labels = np.asarray(labels)
    rng = np.random.default_rng([seed, 15])
    rows = rng.choice(len(labels), size=int(round(rate * len(labels))), replace=False)
    noisy = labels.copy()
    noisy[rows] = (labels[rows] + rng.integers(1, num_classes, size=len(rows))) % num_classes
    return noisy.astype(labels.dtype)
