"""Flax Linen wrappers around the pure norms in :mod:`rl_repr.norms.functional`.

The modules own only the variables; all arithmetic is in the pure functions.
Variable names follow ``flax.linen``: parameters ``scale`` (gamma) and ``bias``
(beta) of shape ``[C]`` in ``param_dtype`` (float32), and for batch norm the
running statistics ``mean`` and ``var`` ``[C]`` (float32) in the ``batch_stats``
collection, so checkpoints and code written for ``flax.linen.BatchNorm`` carry
over. ``dtype`` is the output (compute) dtype; None keeps the input's dtype.
Statistics are always computed in float32.

Training step with batch norm::

    y, updates = model.apply(variables, x, train=True, mutable=["batch_stats"])
    variables = {**variables, **updates}
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.typing import DTypeLike

from rl_repr.norms.functional import batch_norm, group_norm, instance_norm, layer_norm

__all__ = ["BatchNorm", "LayerNorm", "InstanceNorm", "GroupNorm"]

Initializer = Any  # jax.nn.initializers.Initializer or any (key, shape, dtype) -> Array


class _AffineNorm(nn.Module):
    """What every norm module shares: epsilon, dtypes and the per-channel affine ``scale``/``bias``.

    Attributes:
      epsilon: added to the variance inside the square root.
      dtype: output (compute) dtype; None keeps the input's.
      param_dtype, use_scale, use_bias, scale_init, bias_init: as in flax.
    """

    epsilon: float = 1e-5
    dtype: DTypeLike | None = None
    param_dtype: DTypeLike = jnp.float32
    use_scale: bool = True
    use_bias: bool = True
    scale_init: Initializer = nn.initializers.ones
    bias_init: Initializer = nn.initializers.zeros

    def scale_and_bias(self, features: int) -> tuple[jax.Array | None, jax.Array | None]:
        """Creates (or fetches) the ``scale`` and ``bias`` parameters ``[features]``."""
        scale = self.param("scale", self.scale_init, (features,), self.param_dtype) if self.use_scale else None
        bias = self.param("bias", self.bias_init, (features,), self.param_dtype) if self.use_bias else None
        return scale, bias


class BatchNorm(_AffineNorm):
    """Batch norm over all axes but the last, with running averages in ``batch_stats``.

    Attributes:
      use_running_average: True for evaluation (normalize with the running
        statistics), False for training; may instead be given at call time.
      momentum: weight of the old running value (0.9; torch's 0.1 is 1 - 0.9).
      epsilon: added to the variance inside the square root.
      axis_name: mapped axis for global statistics under shard_map/pmap.
      dtype, param_dtype, use_scale, use_bias, scale_init, bias_init: as in flax.

    The running statistics are not updated while the module is being initialised
    (as in flax), so ``init`` leaves them at mean 0, var 1.
    See :func:`rl_repr.norms.batch_norm` for the formula and conventions.
    """

    use_running_average: bool | None = None
    momentum: float = 0.9
    axis_name: str | None = None

    @nn.compact
    def __call__(self, x: jax.Array, use_running_average: bool | None = None) -> jax.Array:
        """Normalizes ``x: [N, ..., C]``; returns an array shaped like ``x``."""
        use_running_average = nn.merge_param(
            "use_running_average", self.use_running_average, use_running_average)
        features = x.shape[-1]
        running_mean = self.variable("batch_stats", "mean", jnp.zeros, (features,), self.param_dtype)
        running_var = self.variable("batch_stats", "var", jnp.ones, (features,), self.param_dtype)
        scale, bias = self.scale_and_bias(features)
        y, (new_mean, new_var) = batch_norm(
            x, scale, bias, running_mean.value, running_var.value,
            training=not use_running_average, momentum=self.momentum, eps=self.epsilon,
            axis_name=self.axis_name, dtype=self.dtype,
        )
        if not use_running_average and not self.is_initializing():
            running_mean.value = new_mean
            running_var.value = new_var
        return y


class LayerNorm(_AffineNorm):
    """Layer norm: each example over all its non-batch axes; gamma/beta per channel.

    See :func:`rl_repr.norms.layer_norm`.
    """


    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """Normalizes ``x: [N, ..., C]``; returns an array shaped like ``x``."""
        scale, bias = self.scale_and_bias(x.shape[-1])
        return layer_norm(x, scale, bias, eps=self.epsilon, dtype=self.dtype)


class InstanceNorm(_AffineNorm):
    """Instance norm: each (example, channel) over the spatial axes.

    See :func:`rl_repr.norms.instance_norm`.
    """


    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """Normalizes ``x: [N, H, W, C]``; returns an array shaped like ``x``."""
        scale, bias = self.scale_and_bias(x.shape[-1])
        return instance_norm(x, scale, bias, eps=self.epsilon, dtype=self.dtype)


class GroupNorm(_AffineNorm):
    """Group norm: each (example, group of channels) over spatial axes and the group.

    Attributes:
      num_groups: G (32 in Wu & He 2018); set None when giving ``group_size``.
      group_size: channels per group, the alternative to ``num_groups``.
      clip_num_groups: if True, use the largest divisor of C that is at most
        ``num_groups`` (narrow networks, e.g. a ResNet at width 1/8 has 8-channel
        layers where G = 32 is impossible); if False such a C is an error.
      epsilon, dtype, param_dtype, use_scale, use_bias, scale_init, bias_init:
        as for the other norms.

    See :func:`rl_repr.norms.group_norm`.
    """

    num_groups: int | None = 32
    group_size: int | None = None
    clip_num_groups: bool = False

    def groups_for(self, channels: int) -> int:
        """The number of groups used for an input with ``channels`` channels."""
        if (self.num_groups is None) == (self.group_size is None):
            raise ValueError("GroupNorm: set exactly one of num_groups and group_size "
                             f"(got num_groups={self.num_groups}, group_size={self.group_size}).")
        if self.group_size is not None:
            if channels % self.group_size:
                raise ValueError(f"GroupNorm: group_size={self.group_size} does not divide the "
                                 f"{channels} channels of the input; pick a divisor of {channels}.")
            return channels // self.group_size
        if self.clip_num_groups:
            return max(g for g in range(1, min(self.num_groups, channels) + 1) if channels % g == 0)
        return self.num_groups

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """Normalizes ``x: [N, ..., C]``; returns an array shaped like ``x``."""
        channels = x.shape[-1]
        scale, bias = self.scale_and_bias(channels)
        return group_norm(x, scale, bias, num_groups=self.groups_for(channels),
                          eps=self.epsilon, dtype=self.dtype)
