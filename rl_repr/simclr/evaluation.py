"""Evaluating a SimCLR encoder: the kNN monitor and the final frozen-representation report.

The representation is h = f(x), the encoder's pooled output (the paper's Section 4.2: h beats
g(h) for a linear probe). ``final_evaluation`` scores h with a linear probe and kNN
(``rl_repr.evaluation.frozen``), optionally g(h), next to raw pixels and the encoder at its
random initialisation, and fine-tunes on 1% / 10% of the labels when asked
(``rl_repr.evaluation.finetune``, SimCLR Table 7).
"""
from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rl_repr.core.drivers import local_copy
from rl_repr.core.state import TrainState
from rl_repr.data.images import augment
from rl_repr.evaluation import finetune, frozen
from rl_repr.evaluation.features import embed
from rl_repr.evaluation.knn import knn_accuracy
from rl_repr.simclr.model import build_model


def features(config, state: TrainState, datasets) -> list[dict[str, np.ndarray]]:
    """``{'h': [N, feature_dim], 'z': [N, output_dim]}`` of each dataset, eval-mode batch norm."""
    model = build_model(config, bn_axis_name=None)
    variables = local_copy({"params": state.params, "batch_stats": state.batch_stats})

    @jax.jit
    def apply(images):
        h, z, _ = model.apply(variables, images.astype(jnp.float32) / 255.0, train=False)
        return jnp.concatenate([h, z], axis=-1).astype(jnp.float32)

    out = []
    for dataset in datasets:
        hz = embed(apply, dataset.images, batch_size=config.eval_batch_size)
        # with no head (num_layers=0) z = h, as wide as h, not head.output_dim
        feature_dim = hz.shape[1] - (config.head.output_dim if config.head.num_layers else hz.shape[1] // 2)
        out.append({"h": hz[:, :feature_dim], "z": hz[:, feature_dim:]})
    return out


def knn_monitor(config, state: TrainState, train_set, test_set) -> float:
    """kNN accuracy of h on the test set (the monitor logged during training)."""
    train_f, test_f = features(config, state, (train_set, test_set))
    return knn_accuracy(train_f["h"], train_set.labels, test_f["h"], test_set.labels, k=config.knn_k)


def final_evaluation(config, state: TrainState, random_state: TrainState, train_set, test_set) -> dict:
    """Linear probe and kNN of h (and g(h)), next to raw-pixel and random-init baselines, and
    fine-tuning with ``config.finetune_fractions`` of the labels."""
    probe = functools.partial(frozen.linear_and_knn, train_labels=train_set.labels,
                              test_labels=test_set.labels, k=config.knn_k, num_classes=train_set.num_classes)
    results: dict[str, Any] = {}
    train_f, test_f = features(config, state, (train_set, test_set))
    results.update(probe("", train_f["h"], test_features=test_f["h"]))
    if config.evaluate_head:
        results.update(probe("head_", train_f["z"], test_features=test_f["z"]))
    if config.baselines:
        results.update(probe("raw_pixels_", frozen.raw_pixels(train_set.images),
                             test_features=frozen.raw_pixels(test_set.images)))
        random_train, random_test = features(config, random_state, (train_set, test_set))
        results.update(probe("random_init_", random_train["h"], test_features=random_test["h"]))
    for fraction in config.finetune_fractions:
        results.update(_finetune(config, state, train_set, test_set, fraction))
    return results


def _finetune(config, state: TrainState, train_set, test_set, fraction: float) -> dict[str, float]:
    """Fine-tuned test accuracy with ``fraction`` of the labels, and the same recipe from scratch."""
    encoder = build_model(config, bn_axis_name=None).encoder
    pretrained = local_copy({"params": state.params["encoder"],
                             "batch_stats": state.batch_stats.get("encoder", {})})
    tune = functools.partial(finetune.finetune_accuracy, encoder, train_set=train_set, test_set=test_set,
                             fraction=fraction, augment_config=augment.AugmentConfig(**config.augment.to_dict()),
                             steps=config.finetune_steps, seed=config.seed)
    tag = f"{round(100 * fraction):d}pct"
    out = {f"finetune_{tag}_accuracy": tune(pretrained)}
    if config.baselines:
        out[f"supervised_{tag}_accuracy"] = tune(None)
    return out
