"""Picking the normalization layer of a model by name.

Models build their norm ONCE with :func:`norm_factory` and call the returned
constructor everywhere (the flax ImageNet example's ``functools.partial``
style), so switching batch norm for group norm is one config value.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import flax.linen as nn
import jax.numpy as jnp

from rl_repr import norms

__all__ = ["NORM_KINDS", "norm_factory"]

NORM_KINDS = ("batch", "group", "layer", "instance")


def norm_factory(
    kind: str,
    *,
    train: bool,
    dtype: Any,
    param_dtype: Any = None,
    bn_momentum: float = 0.9,
    bn_axis_name: str | None = None,
    num_groups: int = 32,
) -> Callable[..., nn.Module]:
    """Returns a constructor ``norm(name=..., scale_init=..., use_bias=...) -> nn.Module``.

    Args:
      kind: 'batch' (running statistics in ``batch_stats``; normalizes with batch
        statistics when ``train`` and running ones otherwise), 'group'
        (``num_groups`` groups, clipped to the largest divisor of a narrow layer's
        channel count), 'layer' or 'instance'.
      train: the model's training flag (only batch norm depends on it).
      dtype: compute/output dtype of the norm.
      param_dtype: dtype of scale, bias and running statistics (default float32).
      bn_momentum: batch norm's weight of the old running value.
      bn_axis_name: mapped axis for cross-device batch statistics, or None.
      num_groups: G for group norm.
    """
    common = dict(dtype=dtype, param_dtype=jnp.float32 if param_dtype is None else param_dtype)
    if kind == "batch":
        return functools.partial(norms.BatchNorm, use_running_average=not train,
                                 momentum=bn_momentum, axis_name=bn_axis_name, **common)
    if kind == "group":
        return functools.partial(norms.GroupNorm, num_groups=num_groups, clip_num_groups=True, **common)
    if kind == "layer":
        return functools.partial(norms.LayerNorm, **common)
    if kind == "instance":
        return functools.partial(norms.InstanceNorm, **common)
    raise ValueError(f"norm={kind!r} is not a known norm; use one of {NORM_KINDS}.")
