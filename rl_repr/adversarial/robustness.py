"""Adversarial training and robust accuracy, on top of :mod:`rl_repr.adversarial.attacks`.

Adversarial training minimises a mix of the loss on clean and on attacked inputs (Goodfellow
et al. 2015, Section 5: ``alpha J(x) + (1 - alpha) J(x')`` with alpha = 0.5; Madry et al. 2018:
the attacked inputs alone). :func:`adversarial_batch` returns the inputs to train on and each
one's weight, so any per-example loss becomes ``sum_i w_i loss_i / N``.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from rl_repr.adversarial.attacks import Attack, perturb
from rl_repr.evaluation.features import embed

__all__ = ["adversarial_batch", "accuracy_under_attack"]


def adversarial_batch(attack: Attack, weight: float, logits_fn: Callable[[jax.Array], jax.Array],
                      x: jax.Array, labels: jax.Array, key: jax.Array, *,
                      clip: tuple[float, float] = (0.0, 1.0)) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The inputs to train on, their labels and their loss weights for adversarial training.

    With attacked inputs ``x' = perturb(attack, logits_fn, x, labels, key)`` (no gradient flows
    through the attack) and ``w = weight``::

        w = 1:      (x',       labels,          [1] * N)                  Madry et al.
        0 < w < 1:  ([x; x'],  [labels; labels], [1 - w] * N + [w] * N)   Goodfellow et al. (w = 0.5)
        w = 0:      (x,        labels,          [1] * N)                  no attack is run

    so that ``sum_i weights_i * loss_i / N`` is ``(1 - w) L(x) + w L(x')``.
    """
    n = x.shape[0]
    ones = jnp.ones((n,), jnp.float32)
    if weight == 0:
        return x, labels, ones
    attacked = jax.lax.stop_gradient(perturb(attack, logits_fn, x, labels, key, clip=clip))
    if weight == 1:
        return attacked, labels, ones
    return (jnp.concatenate([x, attacked]), jnp.concatenate([labels, labels]),
            jnp.concatenate([(1.0 - weight) * ones, weight * ones]))


def accuracy_under_attack(logits_fn: Callable[[jax.Array], jax.Array], inputs: np.ndarray, labels: np.ndarray,
                          attack: Attack | None, key: jax.Array, *, batch_size: int = 500,
                          clip: tuple[float, float] = (0.0, 1.0)) -> float:
    """Accuracy of ``logits_fn`` on ``inputs`` [N, ...] (float, in ``clip``'s range) after ``attack``
    (None: clean accuracy), in batches of ``batch_size``; batch b's PGD start uses ``fold_in(key, b)``.
    ``logits_fn`` should be the model in evaluation mode."""
    inputs, labels = jnp.asarray(inputs), jnp.asarray(labels)

    @jax.jit
    def correct(all_inputs, all_labels, rows):  # the arrays are arguments, not compiled-in constants
        x, y = all_inputs[rows], all_labels[rows]
        if attack is not None:
            x = perturb(attack, logits_fn, x, y, jax.random.fold_in(key, rows[0]), clip=clip)
        return (jnp.argmax(logits_fn(x), axis=-1) == y).astype(jnp.float32)

    flags = embed(lambda rows: correct(inputs, labels, rows), np.arange(len(labels)),
                  batch_size=min(batch_size, len(labels)))
    return float(np.mean(flags))
