"""Optimizers and learning-rate schedules for contrastive pretraining.

What SimCLR (Chen et al. 2020, "A Simple Framework for Contrastive Learning of
Visual Representations", arXiv:2002.05709, Appendix B) trains with:

* LARS (You et al. 2017, "Large Batch Training of Convolutional Networks",
  arXiv:1708.03888) with momentum 0.9, trust coefficient 0.001 and weight decay
  added to the gradient *before* the trust ratio; biases and normalisation
  parameters are excluded from both weight decay and trust-ratio adaptation.
* Learning rate ``base_lr * B / 256`` (linear scaling) or ``base_lr * sqrt(B)``
  (square-root scaling, better at small batches).
* Linear warmup from 0, then cosine decay to 0: ``optax.warmup_cosine_decay_schedule``, i.e.
  for step ``t`` (updates already applied), ``W`` warmup and ``T`` total steps,
  ``lr(t) = peak t / W`` for ``t < W``, else ``end + (peak - end)(1 + cos(pi p)) / 2`` with
  ``p = min((t - W) / (T - W), 1)``: SimCLR's schedule.

SGD with momentum and AdamW are provided as options with the same
weight-decay exclusions. Everything here returns optax objects.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import jax
import numpy as np
import optax

from rl_repr.core import config as cfg

LR_SCALINGS = ("linear", "sqrt", "none")
OPTIMIZERS = ("lars", "sgd", "adamw")

# Leaf names that Flax Linen gives to biases and to the affine parameters of
# BatchNorm / LayerNorm / GroupNorm / InstanceNorm.
_EXCLUDED_LEAF_NAMES = frozenset({"bias", "scale"})


# ------------------------------------------------------------------ learning rate

def scaled_learning_rate(base_lr: float, batch_size: int, scaling: str) -> float:
    """The peak learning rate for a global batch of ``batch_size`` examples.

    ``'linear'``: ``base_lr * batch_size / 256``; ``'sqrt'``: ``base_lr * sqrt(batch_size)``;
    ``'none'``: ``base_lr``. (SimCLR Appendix B.1: 0.3 x B/256 or 0.075 x sqrt(B).)

    Raises:
      ValueError: unknown ``scaling``, a non-positive batch size or a negative base LR.
    """
    if scaling not in LR_SCALINGS:
        raise ValueError(f"lr_scaling {scaling!r} is not one of {LR_SCALINGS}.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    if base_lr < 0:
        raise ValueError(f"base_lr must be >= 0, got {base_lr!r}.")
    if scaling == "linear":
        return base_lr * batch_size / 256.0
    if scaling == "sqrt":
        return base_lr * math.sqrt(batch_size)
    return float(base_lr)


# ------------------------------------------------------------------ weight-decay mask

def _leaf_name(path: Sequence[Any]) -> str:
    """The name of the last key on a pytree path ('' for an unnamed leaf)."""
    if not path:
        return ""
    key = path[-1]
    for attribute in ("key", "name", "idx"):
        if hasattr(key, attribute):
            return str(getattr(key, attribute))
    return str(key)


def weight_decay_mask(params: Any, *,
                      excluded_names: frozenset[str] | set[str] = _EXCLUDED_LEAF_NAMES) -> Any:
    """Which parameters get weight decay and LARS trust-ratio adaptation.

    Rule: a leaf is **decayed (True)** iff ``ndim >= 2`` **and** its own name (the
    last key of its path) is not in ``excluded_names`` (default ``{'bias', 'scale'}``).
    So conv/dense kernels and embedding tables are decayed; biases, and the
    scale/bias of BatchNorm, LayerNorm, GroupNorm and InstanceNorm, are not --
    whether they are caught by name (Flax's ``'bias'``/``'scale'``) or, for
    custom norms with other names (``gamma``/``beta``), by being 1-D. Scalars
    (e.g. a learned temperature) are 0-D and therefore excluded too.

    Args:
      params: a pytree of arrays (nested dicts as from ``model.init(...)['params']``),
        or of the gradients/updates with the same structure.
      excluded_names: leaf names never decayed.

    Returns:
      A pytree of Python bools with the structure of ``params`` (Python bools,
      not arrays, because ``optax.masked`` branches on them at trace time).
    """
    def decide(path, leaf) -> bool:
        ndim = leaf.ndim if hasattr(leaf, "ndim") else np.ndim(leaf)  # arrays, tracers, ShapeDtypeStruct
        return bool(ndim >= 2 and _leaf_name(path) not in excluded_names)

    return jax.tree_util.tree_map_with_path(decide, params)


# ------------------------------------------------------------------ optimizers

def lars(learning_rate: optax.ScalarOrSchedule, *, weight_decay: float = 1e-6,
         momentum: float = 0.9, trust_coefficient: float = 0.001, eps: float = 0.0,
         nesterov: bool = False,
         mask: Any | Callable[[Any], Any] = weight_decay_mask) -> optax.GradientTransformation:
    """SimCLR's LARS optimizer (the official ``LARSOptimizer`` with classic momentum).

    For every parameter tensor ``w`` with gradient ``g``, learning rate ``lr_t``::

        g' = g + wd * w                          if mask(w) else g
        r  = eta * ||w|| / (||g'|| + eps)        if mask(w) and ||w|| > 0 and ||g'|| > 0
        r  = 1                                   otherwise
        v  = momentum * v + lr_t * r * g'
        w  = w - v                               (nesterov: w - (momentum * v + lr_t * r * g'))

    with ``eta = trust_coefficient`` and ``||.||`` the L2 norm of the whole tensor.
    Unlike plain SGD the learning rate sits inside the momentum buffer, as in the
    reference implementation. This is exactly ``optax.lars`` given the same mask
    for weight decay and trust ratio (checked against a NumPy re-implementation
    of the reference in ``tests/test_optim.py``), so we delegate to it.

    Args:
      learning_rate: a float or an ``optax.Schedule``.
      weight_decay: L2 coefficient added to the gradient (SimCLR: 1e-6 ImageNet, 1e-4 CIFAR).
      momentum: momentum coefficient.
      trust_coefficient: ``eta`` above.
      eps: added to the gradient norm in the trust ratio (0 in the reference).
      nesterov: Nesterov momentum.
      mask: pytree of bools or a function of the params returning one; True for
        parameters that get weight decay *and* adaptation (default:
        :func:`weight_decay_mask`).

    Returns:
      An ``optax.GradientTransformation`` whose ``update(grads, state, params)``
      needs ``params``.
    """
    return optax.lars(learning_rate, weight_decay=weight_decay, weight_decay_mask=mask,
                      trust_coefficient=trust_coefficient, eps=eps,
                      trust_ratio_mask=mask, momentum=momentum, nesterov=nesterov)


def optimizer_rules() -> list[cfg.Rule]:
    """Rules for the optimizer settings a method's config holds: ``optimizer``, ``lr_scaling``,
    ``base_lr``, ``weight_decay``, ``momentum`` (compose them into the method's rules)."""
    return [
        cfg.one_of("optimizer", OPTIMIZERS),
        cfg.one_of("lr_scaling", LR_SCALINGS),
        cfg.positive("base_lr"),
        cfg.non_negative("weight_decay"),
        cfg.in_interval("momentum", 0.0, 1.0, high_inclusive=False),
    ]


def _schedule_rules() -> list[cfg.Rule]:
    """The step counts :func:`make_optimizer` reads besides :func:`optimizer_rules`."""
    return [
        cfg.positive_int("batch_size"),
        cfg.non_negative_int("warmup_steps"),
        cfg.positive_int("total_steps"),
        cfg.Rule("warmup_steps", lambda w, c: w <= c.total_steps, "at most total_steps"),
    ]


def make_optimizer(config: Any) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """Builds the optimizer and its learning-rate schedule from a config.

    Reads ``optimizer`` ('lars' | 'sgd' | 'adamw'), ``base_lr``, ``lr_scaling``
    ('linear' | 'sqrt' | 'none'), ``batch_size`` (global), ``weight_decay``,
    ``momentum``, ``warmup_steps``, ``total_steps``, and optionally
    ``trust_coefficient`` (0.001), ``nesterov`` (False), ``end_lr`` (0.0),
    ``adam_b2`` (0.999) and ``adam_eps`` (1e-8).

    The schedule is ``optax.warmup_cosine_decay_schedule`` from 0 up to
    :func:`scaled_learning_rate` and down to ``end_lr``. Weight decay uses :func:`weight_decay_mask` in
    every case:

    * ``lars``: :func:`lars` (decay added to the gradient, then trust ratio).
    * ``sgd``: L2 decay added to the gradient (coupled, as when it is part of the
      loss), then ``optax.sgd`` with momentum: ``v = m v + g'``, ``w -= lr_t v``.
    * ``adamw``: ``optax.adamw`` (decoupled decay ``w -= lr_t * wd * w``),
      ``b1 = momentum``.

    Raises:
      ConfigError: a missing or invalid field, naming the key (see :func:`optimizer_rules`).
    """
    cfg.validate_config(config, optimizer_rules() + _schedule_rules())
    peak_lr = scaled_learning_rate(config.base_lr, config.batch_size, config.lr_scaling)
    # optax wants a decay phase; a warmup-only run (W = T) never reaches step T, so one more
    # step of decay leaves every step it takes on the warmup line.
    decay_steps = max(config.total_steps, config.warmup_steps + 1)
    schedule = optax.warmup_cosine_decay_schedule(0.0, peak_lr, config.warmup_steps, decay_steps,
                                                  end_value=config.get("end_lr", 0.0))
    nesterov = bool(config.get("nesterov", False))
    if config.optimizer == "lars":
        tx = lars(schedule, weight_decay=config.weight_decay, momentum=config.momentum,
                  trust_coefficient=config.get("trust_coefficient", 0.001),
                  nesterov=nesterov)
    elif config.optimizer == "sgd":
        tx = optax.chain(
            optax.add_decayed_weights(config.weight_decay, mask=weight_decay_mask),
            optax.sgd(schedule, momentum=config.momentum or None, nesterov=nesterov))
    else:
        tx = optax.adamw(schedule, b1=config.momentum, b2=config.get("adam_b2", 0.999),
                         eps=config.get("adam_eps", 1e-8),
                         weight_decay=config.weight_decay, mask=weight_decay_mask)
    return tx, schedule
