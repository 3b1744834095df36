"""Normalization layers as pure functions of the input and explicit state.

Every function takes the activations with the feature (channel) axis LAST
(``[N, D]`` for dense layers, ``[N, H, W, C]`` for convolutions, any rank >= 2 in
general), the learnable scale ``gamma`` and shift ``beta`` of shape ``[C]``
(``1 x D`` / ``1 x 1 x 1 x C``, broadcast over the leading axes), and
returns ``y = gamma * (x - mu) / sigma + beta`` with ``sigma = sqrt(var + eps)``.
They differ only in which axes ``mu`` and ``var`` are averaged over
(Wu & He 2018, "Group Normalization", Figure 2):

=============  ==============================  ====================
norm           statistics over                 shape of mu, sigma
=============  ==============================  ====================
batch norm     N, H, W        (all but C)      ``1 x 1 x 1 x C``
layer norm     H, W, C        (all but N)      ``N x 1 x 1 x 1``
instance norm  H, W                            ``N x 1 x 1 x C``
group norm     H, W, C/G      (per group)      ``N x 1 x 1 x G``
=============  ==============================  ====================

Statistics and the affine transform are computed in float32 (float64 if the
input is float64) even when the activations are bfloat16, because a mean of
many bf16 values loses most of its mantissa; the result is cast back to
``dtype`` (default: the input's dtype) at the end.

References: Ioffe & Szegedy 2015 (batch norm, arXiv:1502.03167); Ba, Kiros &
Hinton 2016 (layer norm, arXiv:1607.06450); Ulyanov, Vedaldi & Lempitsky 2016
(instance norm, arXiv:1607.08022); Wu & He 2018 (group norm, arXiv:1803.08494).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.typing import DTypeLike

__all__ = ["batch_norm", "layer_norm", "instance_norm", "group_norm"]

Array = jax.Array


# --------------------------------------------------------------------------
# Shared helpers.
# --------------------------------------------------------------------------
def _stats_dtype(x: Array) -> jnp.dtype:
    """float32 for bf16/f16/f32 inputs, float64 for float64 inputs."""
    return jnp.promote_types(x.dtype, jnp.float32)


def _check_input(fn: str, x: Array, min_rank: int) -> None:
    if x.ndim < min_rank:
        layout = "[N, D] or [N, H, W, C]" if min_rank == 2 else "[N, H, W, C] (a spatial axis)"
        raise ValueError(
            f"{fn}: x has shape {x.shape} (rank {x.ndim}); pass activations of rank >= "
            f"{min_rank} laid out {layout} with the feature axis last."
        )
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"{fn}: x has dtype {x.dtype}; cast it to a floating dtype first.")


def _check_per_feature(fn: str, name: str, value: Array | None, features: int) -> None:
    if value is not None and tuple(jnp.shape(value)) != (features,):
        raise ValueError(
            f"{fn}: {name} has shape {tuple(jnp.shape(value))} but x has {features} features on its "
            f"last axis; pass a vector of shape ({features},)."
        )


def _check_affine_input(fn: str, x: Array, scale: Array | None, bias: Array | None, min_rank: int) -> None:
    """The checks every affine norm makes: x's rank and dtype, and [C]-shaped gamma and beta."""
    _check_input(fn, x, min_rank)
    _check_per_feature(fn, "scale", scale, x.shape[-1])
    _check_per_feature(fn, "bias", bias, x.shape[-1])


def _affine(
    x: Array,
    mean: Array,
    var: Array,
    scale: Array | None,
    bias: Array | None,
    eps: float,
    dtype: DTypeLike,
) -> Array:
    """``y = scale * (x - mean) * rsqrt(var + eps) + bias`` in the stats dtype, then cast."""
    compute = mean.dtype
    multiplier = jax.lax.rsqrt(var + eps)
    if scale is not None:
        multiplier = multiplier * jnp.asarray(scale, compute)
    y = (x.astype(compute) - mean) * multiplier
    if bias is not None:
        y = y + jnp.asarray(bias, compute)
    return y.astype(dtype)


def _mean_and_var(x: Array, axes: tuple[int, ...]) -> tuple[Array, Array]:
    """Two-pass mean and biased variance (the textbook formula, exact in float32)."""
    x = x.astype(_stats_dtype(x))
    mean = jnp.mean(x, axis=axes, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=axes, keepdims=True)
    return mean, var


# --------------------------------------------------------------------------
# Batch norm.
# --------------------------------------------------------------------------
def batch_norm(
    x: Array,
    scale: Array | None,
    bias: Array | None,
    running_mean: Array,
    running_var: Array,
    *,
    training: bool,
    momentum: float = 0.9,
    eps: float = 1e-5,
    axis_name: str | None = None,
    dtype: DTypeLike | None = None,
) -> tuple[Array, tuple[Array, Array]]:
    """Batch normalization with explicit running statistics (Ioffe & Szegedy 2015).

    Training mode, for each feature j (the last axis), over all other axes
    (the N examples of an ``[N, D]`` input, or the N*H*W positions of NHWC)::

        mu_j      = 1/N sum_i x_ij
        sigma_j^2 = 1/N sum_i (x_ij - mu_j)^2          (biased variance)
        y_ij      = gamma_j (x_ij - mu_j) / sqrt(sigma_j^2 + eps) + beta_j
        new_running_mean = m * running_mean + (1 - m) * mu
        new_running_var  = m * running_var  + (1 - m) * sigma^2

    Eval mode uses ``running_mean``/``running_var`` in place of ``mu``/``sigma^2``
    (BN is then a fixed affine map, see :func:`fold_batch_norm`) and returns the
    running statistics unchanged. Training mode with one value per feature (``x`` of shape
    ``[1, C]`` and no ``axis_name``) is an error: every activation would normalise to 0.

    Conventions: ``m = momentum = 0.9`` is the weight of the OLD value (the usual
    and flax's convention; ``flax.linen.BatchNorm`` defaults to 0.99). PyTorch's
    ``momentum=0.1`` is the weight of the NEW value, i.e. ``m = 1 - 0.1``; PyTorch
    also stores the unbiased variance ``N/(N-1) * sigma^2`` in ``running_var``
    while normalizing with the biased one. Here both use the biased variance, as
    in flax, so porting torch running statistics is exact but
    continuing torch-style training differs by the factor N/(N-1).

    Cross-device statistics: with ``axis_name`` (inside ``jax.shard_map`` or
    ``jax.pmap`` over that axis) the statistics are those of the GLOBAL batch,
    obtained with ONE collective: ``pmean`` of the stacked per-device
    ``[mean, mean of squares]`` and ``var = E[x^2] - E[x]^2`` (clipped at 0;
    accurate in float32 for activations whose mean is not orders of magnitude
    above their spread, as after a preceding norm). Every device must hold the
    same number of examples. Under ``jax.jit`` with a batch-sharded global array,
    leave ``axis_name=None``: the means are over the global array and XLA inserts
    the all-reduces itself.

    Args:
      x: activations ``[N, ..., C]`` (rank >= 2), feature axis last.
      scale: gamma ``[C]`` (an array or a sequence of numbers) or None (no scaling).
      bias: beta ``[C]`` (likewise) or None (no shift).
      running_mean: ``[C]`` moving average of the batch means.
      running_var: ``[C]`` moving average of the batch (biased) variances.
      training: True to normalize with batch statistics and update the running
        ones; False to normalize with the running ones.
      momentum: weight ``m`` of the old running value, in [0, 1].
      eps: added to the variance inside the square root.
      axis_name: mapped axis name to average the statistics over, or None.
      dtype: dtype of ``y``; defaults to ``x.dtype``.

    Returns:
      ``(y, (new_running_mean, new_running_var))`` with ``y`` shaped like ``x`` and
      the running statistics ``[C]`` in their own dtype.
    """
    _check_input("batch_norm", x, min_rank=2)
    running_mean, running_var = jnp.asarray(running_mean), jnp.asarray(running_var)
    if training and axis_name is None and math.prod(x.shape[:-1]) == 1:
        raise ValueError(f"batch_norm: training-mode statistics of x with shape {x.shape} average one value per "
                         "feature, which normalises every activation to 0; pass at least 2 examples, or "
                         "training=False to normalise with the running statistics.")
    features = x.shape[-1]
    for name, value in (("scale", scale), ("bias", bias), ("running_mean", running_mean),
                        ("running_var", running_var)):
        _check_per_feature("batch_norm", name, value, features)
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"batch_norm: momentum={momentum} is outside [0, 1]; it is the weight "
                         "of the old running value (torch momentum 0.1 == 0.9 here).")
    dtype = x.dtype if dtype is None else dtype
    stats_dtype = _stats_dtype(x)

    if not training:
        mean = running_mean.astype(stats_dtype)
        var = running_var.astype(stats_dtype)
        y = _affine(x, mean, var, scale, bias, eps, dtype)
        return y, (running_mean, running_var)

    axes = tuple(range(x.ndim - 1))
    if axis_name is None:
        mean, var = _mean_and_var(x, axes)
        mean, var = mean.reshape(features), var.reshape(features)
    else:
        x32 = x.astype(stats_dtype)
        local = jnp.stack([jnp.mean(x32, axis=axes), jnp.mean(jnp.square(x32), axis=axes)])
        mean, mean_of_squares = jax.lax.pmean(local, axis_name)  # the one collective
        var = jnp.maximum(mean_of_squares - jnp.square(mean), 0.0)

    y = _affine(x, mean, var, scale, bias, eps, dtype)
    new_mean = momentum * running_mean + (1.0 - momentum) * mean.astype(running_mean.dtype)
    new_var = momentum * running_var + (1.0 - momentum) * var.astype(running_var.dtype)
    return y, (new_mean, new_var)


# --------------------------------------------------------------------------
# Per-example norms: identical at train and test time, no running state.
# --------------------------------------------------------------------------
def layer_norm(
    x: Array,
    scale: Array | None,
    bias: Array | None,
    *,
    eps: float = 1e-5,
    dtype: DTypeLike | None = None,
) -> Array:
    """Layer normalization (Ba, Kiros & Hinton 2016): each example over its features.

    For ``x: N x D``: ``mu_i = 1/D sum_j x_ij``, ``sigma_i^2 = 1/D sum_j (x_ij - mu_i)^2``
    (``mu, sigma: N x 1``), ``y_ij = gamma_j (x_ij - mu_i) / sqrt(sigma_i^2 + eps) + beta_j``
    (``gamma, beta: 1 x D``). For ``x: N x H x W x C`` the statistics are over
    H, W and C together (``mu, sigma: N x 1 x 1 x 1``), and gamma, beta stay
    per channel (``1 x 1 x 1 x C``), as in the group-norm paper's layer norm
    (= group norm with one group). Behaves the same in training and evaluation.

    Args:
      x: ``[N, ..., C]``, rank >= 2, feature axis last.
      scale: gamma ``[C]`` or None.
      bias: beta ``[C]`` or None.
      eps: added to the variance inside the square root.
      dtype: dtype of the output; defaults to ``x.dtype``.

    Returns:
      ``y`` shaped like ``x``.
    """
    _check_affine_input("layer_norm", x, scale, bias, min_rank=2)
    mean, var = _mean_and_var(x, tuple(range(1, x.ndim)))
    return _affine(x, mean, var, scale, bias, eps, x.dtype if dtype is None else dtype)


def instance_norm(
    x: Array,
    scale: Array | None,
    bias: Array | None,
    *,
    eps: float = 1e-5,
    dtype: DTypeLike | None = None,
) -> Array:
    """Instance normalization (Ulyanov et al. 2016): each (example, channel) over H x W.

    For ``x: N x H x W x C``: ``mu_nc = 1/(HW) sum_hw x_nhwc``, ``sigma_nc^2`` the
    biased variance over the same positions (``mu, sigma: N x 1 x 1 x C``),
    ``y = gamma (x - mu) / sqrt(sigma^2 + eps) + beta`` with
    ``gamma, beta: 1 x 1 x 1 x C``. Needs at least one spatial axis (rank >= 3):
    on ``N x D`` every statistic would be over a single value.

    Args:
      x: ``[N, S1, ..., C]``, rank >= 3, feature axis last.
      scale: gamma ``[C]`` or None.
      bias: beta ``[C]`` or None.
      eps: added to the variance inside the square root.
      dtype: dtype of the output; defaults to ``x.dtype``.

    Returns:
      ``y`` shaped like ``x``.
    """
    _check_affine_input("instance_norm", x, scale, bias, min_rank=3)
    mean, var = _mean_and_var(x, tuple(range(1, x.ndim - 1)))
    return _affine(x, mean, var, scale, bias, eps, x.dtype if dtype is None else dtype)


def group_norm(
    x: Array,
    scale: Array | None,
    bias: Array | None,
    *,
    num_groups: int,
    eps: float = 1e-5,
    dtype: DTypeLike | None = None,
) -> Array:
    """Group normalization (Wu & He 2018): each (example, group) over H x W x C/G.

    The C channels are split into G consecutive groups of C/G channels. For
    ``x: N x H x W x C``: ``mu_ng`` and ``sigma_ng^2`` are the mean and biased
    variance over the H*W*C/G values of group g of example n (``mu, sigma:
    N x 1 x 1 x G``, broadcast to the group's channels), and
    ``y = gamma (x - mu) / sqrt(sigma^2 + eps) + beta`` with
    ``gamma, beta: 1 x 1 x 1 x C``. G = 1 is layer norm; G = C is instance norm.
    Also accepts ``[N, C]`` (each group over its C/G features).

    Args:
      x: ``[N, ..., C]``, rank >= 2, feature axis last.
      scale: gamma ``[C]`` or None.
      bias: beta ``[C]`` or None.
      num_groups: G, a divisor of C.
      eps: added to the variance inside the square root.
      dtype: dtype of the output; defaults to ``x.dtype``.

    Returns:
      ``y`` shaped like ``x``.
    """
    _check_affine_input("group_norm", x, scale, bias, min_rank=2)
    channels = x.shape[-1]
    if num_groups < 1 or channels % num_groups:
        raise ValueError(
            f"group_norm: num_groups={num_groups} does not divide the {channels} channels of x; "
            f"pick a divisor of {channels} (e.g. {math.gcd(channels, max(num_groups, 1))})."
        )
    grouped = x.reshape(*x.shape[:-1], num_groups, channels // num_groups)
    # Reduce over the spatial axes and the channels within a group, keep N and G.
    mean, var = _mean_and_var(grouped, tuple(range(1, grouped.ndim - 2)) + (grouped.ndim - 1,))
    group_shape = (num_groups, channels // num_groups)
    y = _affine(
        grouped, mean, var,
        None if scale is None else jnp.reshape(jnp.asarray(scale), group_shape),
        None if bias is None else jnp.reshape(jnp.asarray(bias), group_shape),
        eps, x.dtype if dtype is None else dtype,
    )
    return y.reshape(x.shape)
