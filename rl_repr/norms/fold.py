"""Folding a trained batch norm into the preceding conv or dense layer.

At test time batch norm uses fixed running statistics, so it is an affine map
per output channel; composed with the (linear) conv or dense layer before it,
it is again one conv or dense layer with a rescaled kernel and a new bias
("at test time BN becomes a linear operator and can be merged
with the preceding fully-connected or convolutional layer").
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["fold_batch_norm"]

Array = jax.Array


def fold_batch_norm(
    kernel: Array,
    bias: Array | None,
    scale: Array | None,
    bn_bias: Array | None,
    running_mean: Array,
    running_var: Array,
    *,
    eps: float = 1e-5,
) -> tuple[Array, Array]:
    """Returns the kernel and bias of ``layer -> batch_norm(eval)`` as one layer.

    With ``s = gamma / sqrt(running_var + eps)`` (one factor per output channel)::

        BN(W * x + b) = s * (W * x + b - mean) + beta
                      = (s W) * x + (s (b - mean) + beta)
        kernel' = kernel * s      (s broadcast over the last, output-channel, axis)
        bias'   = s * (b - mean) + beta

    This holds for any layer linear in its input whose output channel is the
    kernel's last axis: a dense kernel ``[D_in, D_out]`` (flax ``IO``), a conv
    kernel ``[H, W, C_in, C_out]`` (flax ``HWIO``), or 1-D/3-D conv kernels. The
    fold is done in float32 and cast back to the kernel's dtype.

    Args:
      kernel: ``[..., C_out]`` weights of the layer before the norm.
      bias: ``[C_out]`` bias of that layer, or None if it has none (ResNets).
      scale: batch-norm gamma ``[C_out]``, or None (gamma = 1).
      bn_bias: batch-norm beta ``[C_out]``, or None (beta = 0).
      running_mean: ``[C_out]`` batch-norm running mean.
      running_var: ``[C_out]`` batch-norm running (biased) variance.
      eps: the batch norm's epsilon.

    Returns:
      ``(folded_kernel, folded_bias)`` with the shapes ``kernel.shape`` and ``[C_out]``.
    """
    if kernel.ndim < 2:
        raise ValueError(f"fold_batch_norm: kernel has shape {kernel.shape}; pass a dense [D_in, "
                         "D_out] or conv [H, W, C_in, C_out] kernel with output channels last.")
    out_channels = kernel.shape[-1]
    for name, value in (("bias", bias), ("scale", scale), ("bn_bias", bn_bias),
                        ("running_mean", running_mean), ("running_var", running_var)):
        if value is not None and tuple(value.shape) != (out_channels,):
            raise ValueError(
                f"fold_batch_norm: {name} has shape {tuple(value.shape)} but the kernel has "
                f"{out_channels} output channels on its last axis; pass shape ({out_channels},)."
            )
    f32 = jnp.promote_types(kernel.dtype, jnp.float32)
    multiplier = jax.lax.rsqrt(running_var.astype(f32) + eps)
    if scale is not None:
        multiplier = multiplier * scale.astype(f32)
    layer_bias = jnp.zeros((out_channels,), f32) if bias is None else bias.astype(f32)
    new_bias = (layer_bias - running_mean.astype(f32)) * multiplier
    if bn_bias is not None:
        new_bias = new_bias + bn_bias.astype(f32)
    new_kernel = kernel.astype(f32) * multiplier
    bias_dtype = kernel.dtype if bias is None else bias.dtype
    return new_kernel.astype(kernel.dtype), new_bias.astype(bias_dtype)
