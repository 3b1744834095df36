"""A 2-D convolution whose gradients are written out as plain NHWC convolutions.

``jax.lax.conv_general_dilated`` differentiates to two convolutions with permuted dimension
labels (the weight gradient treats the batch as the contracted feature axis). Outside loops,
XLA:CPU rewrites them into its fast layout before lowering them to its convolution library;
inside a ``while`` body (``jax.lax.scan``, as in representation caching) it does not, and
lowers them to a generic loop nest, an order of magnitude slower for small convolutions
(``benchmarks/large_batch.py`` measures it on your machine). Written out explicitly, as
below, they are as fast inside the scan as outside. The values are the same as JAX's rule (tested to float32 rounding).

For stride s, padding (lo, hi), kernel size k and input size H (per spatial dimension),
output size ``H_o = (H + lo + hi - k) // s + 1``::

    y[n, o, co]   = sum_{t, ci} x[n, o s + t - lo, ci] w[t, ci, co]
    dw[t, ci, co] = sum_{n, o} x[n, o s + t - lo, ci] g[n, o, co]
        -> conv(x^T [ci, H, n], g^T [H_o, n, co]; rhs_dilation s, padding (lo, k + s(H_o-1) - H - lo))
    (negative pads crop, as in XLA)
    dx[n, i, ci]  = sum_{t, co} g_s[n, i + lo - t, co] w[t, ci, co]     (g_s: g dilated by s)
        -> conv(g; flip(w)^T [k, co, ci]; lhs_dilation s, padding (k-1-lo, H - 1 - s(H_o-1) + lo))

Use it as ``nn.Conv(..., conv_general_dilated=explicit_gradient_conv)``; anything other than
an NHWC/HWIO convolution without dilation or groups falls back to
``jax.lax.conv_general_dilated`` unchanged.
"""
from __future__ import annotations

import functools
from typing import Any, Sequence

import jax
import jax.numpy as jnp
from jax import lax

_DIMENSIONS = ("NHWC", "HWIO", "NHWC")
Pads = tuple[tuple[int, int], ...]


def explicit_gradient_conv(lhs: jax.Array, rhs: jax.Array, window_strides: Sequence[int],
                           padding: str | Sequence[tuple[int, int]], lhs_dilation=None,
                           rhs_dilation=None, dimension_numbers=None, feature_group_count: int = 1,
                           batch_group_count: int = 1, precision: Any = None,
                           preferred_element_type: Any = None) -> jax.Array:
    """Drop-in for ``jax.lax.conv_general_dilated`` (same arguments and value).

    ``lhs [N, H, W, C_in]`` and ``rhs [k_h, k_w, C_in, C_out]`` (NHWC/HWIO) give
    ``[N, H_o, W_o, C_out]`` with the gradients of the module docstring.
    """
    plain = functools.partial(lax.conv_general_dilated, lhs, rhs, window_strides, padding,
                              lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation,
                              dimension_numbers=dimension_numbers,
                              feature_group_count=feature_group_count,
                              batch_group_count=batch_group_count, precision=precision,
                              preferred_element_type=preferred_element_type)
    undilated = all(d == 1 for d in (lhs_dilation or ())) and all(d == 1 for d in (rhs_dilation or ()))
    if (lhs.ndim != 4 or not _is_nhwc_hwio(lhs, rhs, dimension_numbers) or not undilated
            or feature_group_count != 1 or batch_group_count != 1 or preferred_element_type is not None):
        return plain()
    strides = tuple(int(s) for s in window_strides)
    kernel = rhs.shape[:2]
    if isinstance(padding, str):
        padding = lax.padtype_to_pads(lhs.shape[1:3], kernel, strides, padding)
    pads = tuple((int(lo), int(hi)) for lo, hi in padding)
    return _conv(lhs, rhs, strides, pads, precision)


def _is_nhwc_hwio(lhs, rhs, dimension_numbers) -> bool:
    """Whether ``dimension_numbers`` (strings or flax's ``ConvDimensionNumbers``) mean NHWC/HWIO."""
    if dimension_numbers is None:
        return False
    as_numbers = functools.partial(lax.conv_dimension_numbers, lhs.shape, rhs.shape)
    return as_numbers(dimension_numbers) == as_numbers(_DIMENSIONS)


def _forward(x, w, strides, pads, precision):
    return lax.conv_general_dilated(x, w, strides, pads, dimension_numbers=_DIMENSIONS, precision=precision)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _conv(x: jax.Array, w: jax.Array, strides: tuple[int, ...], pads: Pads, precision: Any) -> jax.Array:
    return _forward(x, w, strides, pads, precision)


def _conv_fwd(x, w, strides, pads, precision):
    return _forward(x, w, strides, pads, precision), (x, w)


def _conv_bwd(strides, pads, precision, residuals, g):
    x, w = residuals
    sizes, kernel, out_sizes = x.shape[1:3], w.shape[:2], g.shape[1:3]

    # dw: contract over batch and output positions; x's channels play the batch. A negative
    # high pad drops the trailing input rows that no output position reads.
    w_pads = [(lo, k + s * (o - 1) - h - lo) for (lo, _), k, s, o, h in zip(pads, kernel, strides, out_sizes, sizes)]
    dw = lax.conv_general_dilated(jnp.transpose(x, (3, 1, 2, 0)), jnp.transpose(g, (1, 2, 0, 3)).astype(x.dtype),
                                  (1, 1), w_pads, rhs_dilation=strides, dimension_numbers=_DIMENSIONS,
                                  precision=precision)
    dw = jnp.transpose(dw, (1, 2, 0, 3)).astype(w.dtype)

    # dx: a stride-1 conv of the s-dilated cotangent with the flipped, transposed kernel.
    flipped = jnp.flip(jnp.transpose(w, (0, 1, 3, 2)), (0, 1)).astype(g.dtype)
    x_pads = [(k - 1 - lo, h - 1 - s * (o - 1) + lo) for (lo, _), k, s, o, h in
              zip(pads, kernel, strides, out_sizes, sizes)]
    dx = lax.conv_general_dilated(g, flipped, (1, 1), x_pads, lhs_dilation=strides,
                                  dimension_numbers=_DIMENSIONS, precision=precision)
    return dx.astype(x.dtype), dw


_conv.defvjp(_conv_fwd, _conv_bwd)
