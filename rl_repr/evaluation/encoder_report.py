"""The evaluation every self-supervised image method reports, written once.

For an encoder f (a module returning the pooled representation h, with batch norm in eval mode):

* linear probe and kNN of h = f(x) (``rl_repr.evaluation.frozen.linear_and_knn``);
* optionally the same for another representation (SimCLR's head output g(h));
* the same protocol on raw pixels and on f at its random initialisation (``baselines``);
* fine-tuning f on ``finetune_fractions`` of the labels, and the same recipe from scratch
  (``rl_repr.evaluation.finetune``, SimCLR Table 7).

SimCLR, MoCo and the pretext tasks call :func:`encoder_report` with their own feature
extractor, so their numbers are comparable row by row.
"""
from __future__ import annotations

import functools
import os
from typing import Any, Callable, Mapping

import flax.linen as nn
import numpy as np

from rl_repr.core.log import logger
from rl_repr.data.images.augment import AugmentConfig
from rl_repr.data.images.digits import ImageDataset
from rl_repr.evaluation import finetune, frozen, label_subsets

# (train_set, test_set) -> {name: (train_features [N, d], test_features [M, d])}
Extract = Callable[[ImageDataset, ImageDataset], Mapping[str, tuple[np.ndarray, np.ndarray]]]


def encoder_report(*, extract: Extract, random_extract: Extract, train_set: ImageDataset,
                   test_set: ImageDataset, knn_k: int, baselines: bool, prefixes: Mapping[str, str],
                   encoder: nn.Module | None = None, pretrained: dict | None = None,
                   finetune_fractions: tuple[float, ...] = (), finetune_steps: int = 300,
                   augment_config: AugmentConfig | None = None, seed: int = 0,
                   subsets_dir: str | None = None) -> dict[str, Any]:
    """Scores a pretrained encoder next to its baselines; returns flat ``results.json`` keys.

    Args:
      extract: features of the trained model; ``prefixes`` maps its representation names to
        result-key prefixes (``{'h': '', 'z': 'head_'}``); ``'h'`` is required.
      random_extract: the same extractor at the model's random initialisation (only ``'h'``
        is used, under ``random_init_``).
      train_set, test_set: labelled images; labels only ever train the probes.
      knn_k: neighbours of the kNN classifier.
      baselines: also score raw pixels (``raw_pixels_``) and the random-init encoder.
      encoder, pretrained: the encoder module and its ``{'params', 'batch_stats'}`` for
        fine-tuning (needed when ``finetune_fractions`` is not empty).
      finetune_fractions: e.g. ``(0.01, 0.1)``: ``finetune_<p>pct_accuracy`` (and with
        ``baselines``, ``supervised_<p>pct_accuracy`` from scratch).
      augment_config: the pretraining augmentation (fine-tuning keeps its crops only).
      subsets_dir: where the labelled subsets are listed (``<p>percent.txt``, one training-row
        number per line; drawn class-balanced with ``seed`` and written there when missing:
        ``rl_repr.evaluation.label_subsets``); None draws them without saving.

    Returns:
      ``{prefix}linear_probe_accuracy`` and ``{prefix}knn_accuracy`` per representation,
      and the fine-tuning accuracies; all test top-1 in [0, 1].
    """
    probe = functools.partial(frozen.linear_and_knn, train_labels=train_set.labels, test_labels=test_set.labels,
                              k=knn_k, num_classes=train_set.num_classes)
    results: dict[str, Any] = {}
    logger.info(f"Evaluation: features of {train_set.num_examples} + {test_set.num_examples} images.")
    for name, (train_x, test_x) in extract(train_set, test_set).items():
        if name in prefixes:
            logger.info(f"Evaluation: linear probe (L-BFGS) and kNN of {name}.")
            results.update(probe(prefixes[name], train_x, test_features=test_x))
    if baselines:
        logger.info("Evaluation: the same on raw pixels and on the encoder at its random initialisation.")
        results.update(probe("raw_pixels_", frozen.raw_pixels(train_set.images),
                             test_features=frozen.raw_pixels(test_set.images)))
        random_train, random_test = random_extract(train_set, test_set)["h"]
        results.update(probe("random_init_", random_train, test_features=random_test))
    for fraction in finetune_fractions:
        rows = None if subsets_dir is None else label_subsets.label_subset_rows(
            os.path.join(subsets_dir, f"{100 * fraction:g}percent.txt"), np.arange(train_set.num_examples),
            train_set.labels, fraction, seed=seed)
        tune = functools.partial(finetune.finetune_accuracy, encoder, train_set=train_set, test_set=test_set,
                                 fraction=fraction, augment_config=augment_config or AugmentConfig(),
                                 steps=finetune_steps, seed=seed, rows=rows)
        tag = f"{round(100 * fraction):d}pct"
        logger.info(f"Evaluation: fine-tuning on {100 * fraction:g}% of the labels ({finetune_steps} steps"
                    f"{', then from scratch' if baselines else ''}).")
        results[f"finetune_{tag}_accuracy"] = tune(pretrained)
        if baselines:
            results[f"supervised_{tag}_accuracy"] = tune(None)
    return results
