"""Distances between embeddings, pairwise (``[B, d] x [M, d] -> [B, M]``) and paired.

The metric-learning losses in :mod:`rl_repr.losses.metric` pick one of three
distances by name:

=====================  =====================================  ========================
name                   d(x, y)                                used by default in
=====================  =====================================  ========================
``squared_euclidean``  ``||x - y||^2``                        FaceNet; batch-all, semi-hard
``euclidean``          ``||x - y||``                          Hermans et al.; batch-hard
``cosine``             ``1 - x.y / (||x|| ||y||)``            angular / normalised setups
=====================  =====================================  ========================

Pairwise matrices are built from one matrix product,
``||x||^2 + ||y||^2 - 2 x y^T``, so memory is ``O(B M)`` rather than the
``O(B M d)`` of a broadcast difference. That form can round to tiny negative
values, so it is clipped at 0; when ``y`` is omitted (``x`` against itself) the
diagonal is set to exactly 0, because cancellation would otherwise leave noise
of order ``1e-7 ||x||^2`` there.

The Euclidean distance ``sqrt(d2)`` has an infinite derivative at ``d2 = 0``
(the diagonal, or two identical embeddings). We use the double-``where`` trick:
below ``eps`` the distance is exactly 0 and its gradient is exactly 0 (the
minimum-norm subgradient of ``||x - y||`` at ``x = y``), so a single duplicate
in a batch cannot turn every gradient into NaN.

Computation happens in float32 (float64 for float64 inputs) because distances of
bfloat16 embeddings lose most of their digits in the cancellation above.
"""
from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp

__all__ = [
    "DISTANCES",
    "pairwise_squared_euclidean",
    "pairwise_euclidean",
    "pairwise_cosine_distance",
    "pairwise_distance",
    "paired_distance",
]

Array = jax.Array
DistanceName = Literal["squared_euclidean", "euclidean", "cosine"]

# Squared distances below this count as exactly zero before the square root; it
# is far below float32 resolution for embeddings of norm ~1 (sqrt -> 1e-6).
_DEFAULT_SQRT_EPS = 1e-12
_DEFAULT_NORM_EPS = 1e-12


def _as_compute(x: Array) -> Array:
    return jnp.asarray(x).astype(jnp.promote_types(jnp.asarray(x).dtype, jnp.float32))


def _check_embeddings(fn: str, x: Array, y: Array | None) -> None:
    if jnp.ndim(x) != 2:
        raise ValueError(
            f"{fn}: x has shape {jnp.shape(x)}; pass a matrix of embeddings of shape [B, d] "
            "(vmap the call for extra leading axes)."
        )
    if y is not None and (jnp.ndim(y) != 2 or jnp.shape(y)[1] != jnp.shape(x)[1]):
        raise ValueError(
            f"{fn}: y has shape {jnp.shape(y)} but x has shape {jnp.shape(x)}; pass y of "
            f"shape [M, {jnp.shape(x)[1]}] with the same embedding size as x."
        )


def _safe_sqrt(d2: Array, eps: float) -> Array:
    """``sqrt(d2)`` with value and gradient exactly 0 where ``d2 <= eps``; NaN stays NaN.

    The inner ``where`` keeps the untaken branch finite (sqrt of 1, not of 0), so
    the zero cotangent of the outer ``where`` is not multiplied by ``inf``. The test is
    ``d2 <= eps`` (False for NaN), so a NaN distance is not silently replaced by 0: a loss
    of NaN embeddings is NaN, and a diverged run is caught.
    """
    small = d2 <= eps
    return jnp.where(small, 0.0, jnp.sqrt(jnp.where(small, 1.0, d2)))


def pairwise_squared_euclidean(x: Array, y: Array | None = None) -> Array:
    """Matrix of squared Euclidean distances ``D[i, j] = ||x_i - y_j||^2``.

    Computed as ``||x_i||^2 + ||y_j||^2 - 2 x_i . y_j`` (one matmul), clipped at
    0; with ``y=None`` the distances are of ``x`` against itself and the diagonal
    is exactly 0.

    Args:
      x: embeddings, shape ``[B, d]``.
      y: embeddings, shape ``[M, d]``; ``None`` means ``x``.

    Returns:
      ``[B, M]`` (``[B, B]`` if ``y`` is None), float32 or wider.

    Example::

      d2 = pairwise_squared_euclidean(jnp.eye(3))   # 2 off the diagonal, 0 on it
    """
    _check_embeddings("pairwise_squared_euclidean", x, y)
    x = _as_compute(x)
    same = y is None
    y = x if same else _as_compute(y)
    x_sq = jnp.sum(x * x, axis=-1)
    y_sq = jnp.sum(y * y, axis=-1)
    d2 = x_sq[:, None] + y_sq[None, :] - 2.0 * (x @ y.T)
    d2 = jnp.maximum(d2, 0.0)
    if same:
        d2 = jnp.where(jnp.eye(x.shape[0], dtype=bool), 0.0, d2)
    return d2


def pairwise_euclidean(
    x: Array, y: Array | None = None, *, eps: float = _DEFAULT_SQRT_EPS
) -> Array:
    """Matrix of Euclidean distances ``D[i, j] = ||x_i - y_j||``.

    ``sqrt`` of :func:`pairwise_squared_euclidean`; where the squared distance is
    ``<= eps`` (the diagonal, duplicates) the distance and its gradient are
    exactly 0, so gradients stay finite.

    Args:
      x: embeddings, shape ``[B, d]``.
      y: embeddings, shape ``[M, d]``; ``None`` means ``x``.
      eps: squared distances at or below this are treated as 0.

    Returns:
      ``[B, M]`` (``[B, B]`` if ``y`` is None).

    Example::

      d = pairwise_euclidean(jnp.eye(3))   # sqrt(2) off the diagonal
    """
    return _safe_sqrt(pairwise_squared_euclidean(x, y), eps)


def _l2_normalize(x: Array, eps: float) -> Array:
    # rsqrt(max(|x|^2, eps^2)) rather than x / |x|: finite value and gradient at x = 0.
    return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, axis=-1, keepdims=True), eps * eps))


def pairwise_cosine_distance(
    x: Array, y: Array | None = None, *, eps: float = _DEFAULT_NORM_EPS
) -> Array:
    """Matrix of cosine distances ``D[i, j] = 1 - x_i . y_j / (||x_i|| ||y_j||)``.

    Values lie in ``[0, 2]``. Norms are floored at ``eps`` so a zero vector has
    distance 1 to everything instead of NaN. With ``y=None`` the diagonal is
    exactly 0.

    Args:
      x: embeddings, shape ``[B, d]``.
      y: embeddings, shape ``[M, d]``; ``None`` means ``x``.
      eps: floor on the norms.

    Returns:
      ``[B, M]`` (``[B, B]`` if ``y`` is None).

    Example::

      d = pairwise_cosine_distance(jnp.array([[1., 0.], [0., 2.]]))  # [[0, 1], [1, 0]]
    """
    _check_embeddings("pairwise_cosine_distance", x, y)
    x_hat = _l2_normalize(_as_compute(x), eps)
    same = y is None
    y_hat = x_hat if same else _l2_normalize(_as_compute(y), eps)
    distance = 1.0 - x_hat @ y_hat.T
    if same:
        distance = jnp.where(jnp.eye(x_hat.shape[0], dtype=bool), 0.0, distance)
    return distance


_PAIRWISE = {
    "squared_euclidean": pairwise_squared_euclidean,
    "euclidean": pairwise_euclidean,
    "cosine": pairwise_cosine_distance,
}


# The distances every metric loss accepts, by name.
DISTANCES = tuple(_PAIRWISE)


def _check_name(fn: str, distance: str) -> None:
    if distance not in _PAIRWISE:
        raise ValueError(
            f"{fn}: distance={distance!r} is unknown; pick one of {sorted(_PAIRWISE)}."
        )


def pairwise_distance(
    x: Array, y: Array | None = None, *, distance: DistanceName = "squared_euclidean"
) -> Array:
    """Pairwise distance matrix ``[B, M]`` for a distance picked by name.

    Args:
      x: ``[B, d]``.
      y: ``[M, d]`` or ``None`` for ``x`` against itself (diagonal exactly 0).
      distance: ``'squared_euclidean'``, ``'euclidean'`` or ``'cosine'``.

    Example::

      d = pairwise_distance(emb, distance="euclidean")   # [B, B]
    """
    _check_name("pairwise_distance", distance)
    return _PAIRWISE[distance](x, y)


def paired_distance(
    x: Array, y: Array, *, distance: DistanceName = "squared_euclidean"
) -> Array:
    """Row-by-row distance ``d(x[..., :], y[..., :])`` for matching rows.

    Uses the direct difference ``x - y`` (not the matmul form), which is exact
    for small distances.

    Args:
      x: ``[..., d]``.
      y: same shape as ``x``.
      distance: ``'squared_euclidean'``, ``'euclidean'`` or ``'cosine'``.

    Returns:
      ``[...]``: one distance per row.

    Example::

      d_ap = paired_distance(anchor, positive)   # [B]
    """
    _check_name("paired_distance", distance)
    if jnp.ndim(x) < 1 or jnp.shape(x) != jnp.shape(y):
        raise ValueError(
            f"paired_distance: x has shape {jnp.shape(x)} and y has shape {jnp.shape(y)}; "
            "pass two arrays of the same shape [..., d]."
        )
    x, y = _as_compute(x), _as_compute(y)
    if distance == "cosine":
        return 1.0 - jnp.sum(
            _l2_normalize(x, _DEFAULT_NORM_EPS) * _l2_normalize(y, _DEFAULT_NORM_EPS), axis=-1
        )
    diff = x - y
    d2 = jnp.sum(diff * diff, axis=-1)
    if distance == "squared_euclidean":
        return d2
    return _safe_sqrt(d2, _DEFAULT_SQRT_EPS)
