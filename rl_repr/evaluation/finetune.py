"""Semi-supervised evaluation: fine-tune the pretrained encoder on a fraction of the labels.

SimCLR's Table 7 protocol, scaled down: take a class-balanced 1% or 10% of the training
labels, put a fresh linear classifier on the encoder output h, and train the whole network
(encoder included, batch norm in training mode) with Nesterov SGD and a cosine schedule,
using crop-only augmentation. The same recipe started from a random initialisation is the
supervised baseline it is compared with.
"""
from __future__ import annotations

import dataclasses
import functools
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from rl_repr.core.metrics import log_progress
from rl_repr.data.images import augment as augment_lib
from rl_repr.evaluation.features import embed


class Classifier(nn.Module):
    """``encoder`` (returning pooled h) followed by a linear layer; the parameter subtree
    ``encoder`` has the same layout as the SimCLR model's, so pretrained weights drop in."""

    encoder: nn.Module
    num_classes: int

    @nn.compact
    def __call__(self, x, train: bool):
        h = self.encoder(x, train=train)
        return nn.Dense(self.num_classes, name="classifier")(h)


def finetune_accuracy(encoder: nn.Module, encoder_variables: dict | None, train_set, test_set, *,
                      fraction: float, augment_config: augment_lib.AugmentConfig, steps: int = 300,
                      batch_size: int = 64, learning_rate: float = 0.05, seed: int = 0,
                      rows: np.ndarray | None = None) -> float:
    """Test accuracy after fine-tuning on ``fraction`` of the training labels.

    Args:
      encoder: the encoder module (no collective axis: fine-tuning runs on one device).
      encoder_variables: ``{'params': ..., 'batch_stats': ...}`` of the pretrained encoder, or
        None to train from a random initialisation (the supervised baseline).
      train_set, test_set: ``ImageDataset`` s.
      fraction: share of the training labels used, e.g. 0.01 or 0.1 (at least one per class).
      augment_config: the pretraining augmentation; only its crop settings are kept.
      rows: the labelled training rows (a saved subset, ``rl_repr.evaluation.label_subsets``);
        None draws a class-balanced ``fraction`` with ``seed``.
    """
    rows = label_fraction_subset(train_set.labels, fraction, seed=seed) if rows is None else np.asarray(rows)
    images, labels = jnp.asarray(train_set.images[rows]), jnp.asarray(train_set.labels[rows])
    model = Classifier(encoder=encoder, num_classes=train_set.num_classes)
    variables = model.init(jax.random.key(seed, impl="rbg"), images[:2], train=False)
    variables = jax.tree.map(jnp.asarray, nn.meta.unbox(variables))
    params, batch_stats = dict(variables["params"]), dict(variables.get("batch_stats", {}))
    if encoder_variables is not None:
        params["encoder"] = encoder_variables["params"]
        if "batch_stats" in encoder_variables and "encoder" in batch_stats:
            batch_stats["encoder"] = encoder_variables["batch_stats"]
    crop_only = dataclasses.replace(augment_config, color_jitter_prob=0.0, grayscale_prob=0.0,
                                    blur_prob=0.0, cutout_prob=0.0)
    schedule = optax.cosine_decay_schedule(learning_rate, steps)
    optimizer = optax.sgd(schedule, momentum=0.9, nesterov=True)

    @jax.jit
    def train(carry, step_keys):
        def step(carry, step_key):
            params, batch_stats, opt_state = carry
            pick_key, aug_key = jax.random.split(step_key)
            idx = jax.random.randint(pick_key, (batch_size,), 0, images.shape[0])
            x = jax.vmap(functools.partial(augment_lib.augment_image, config=crop_only))(
                jax.random.split(aug_key, batch_size), images[idx].astype(jnp.float32) / 255.0)

            def loss_fn(p):
                logits, updates = model.apply({"params": p, "batch_stats": batch_stats}, x, train=True,
                                              mutable=["batch_stats"])
                return optax.softmax_cross_entropy_with_integer_labels(logits, labels[idx]).mean(), updates

            grads, updates = jax.grad(loss_fn, has_aux=True)(params)
            deltas, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, deltas), updates.get("batch_stats", batch_stats),
                    opt_state), None

        return jax.lax.scan(step, carry, step_keys)[0]

    # ten scanned chunks of the same step keys (the result does not depend on the chunking),
    # each followed by a progress line
    carry, step_keys = (params, batch_stats, optimizer.init(params)), jax.random.split(jax.random.PRNGKey(seed), steps)
    chunk, started = -(-steps // 10), time.perf_counter()
    for start in range(0, steps, chunk):
        carry = jax.block_until_ready(train(carry, step_keys[start:start + chunk]))
        log_progress(f"fine-tuning ({'pretrained' if encoder_variables is not None else 'from scratch'}) step",
                     min(start + chunk, steps), steps, started)
    params, batch_stats, _ = carry
    predict = jax.jit(lambda x: jnp.argmax(model.apply({"params": params, "batch_stats": batch_stats},
                                                       x.astype(jnp.float32) / 255.0, train=False), -1))
    predictions = embed(predict, test_set.images, batch_size=256)
    return float(np.mean(predictions == test_set.labels))


def label_fraction_subset(labels: np.ndarray, fraction: float, *, seed: int = 0) -> np.ndarray:
    """Indices of a class-balanced ``fraction`` of the examples (at least one per class),
    as in SimCLR's 1% / 10% semi-supervised protocol (Table 7)."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"label fraction {fraction} must be in (0, 1], e.g. 0.01 or 0.1.")
    rng = np.random.default_rng(seed)
    chosen = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        take = max(1, int(round(fraction * len(members))))
        chosen.append(rng.choice(members, size=take, replace=False))
    return np.sort(np.concatenate(chosen))
