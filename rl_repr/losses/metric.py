"""Metric-learning losses: triplet (given or mined online) and Siamese pair loss.

A triplet (anchor a, positive p, negative n) asks for ``d(a, p) + margin <=
d(a, n)``; its loss is ``max(d(a, p) - d(a, n) + margin, 0)`` (
Schroff, Kalenichenko & Philbin 2015, "FaceNet", arXiv:1503.03832).

The online-mining losses take one labelled batch ``(embeddings [B, d], labels
[B])`` and build triplets from it. In all of them, inside the batch:

* a *positive pair* ``(a, p)`` has ``a != p`` (as indices) and ``labels[a] ==
  labels[p]``;
* a *negative* ``n`` of anchor ``a`` has ``labels[n] != labels[a]``;
* a *valid triplet* is a positive pair plus a negative of its anchor.

Distances come from :mod:`rl_repr.losses.distances` by name. Defaults follow
the papers: squared Euclidean for batch-all and semi-hard (FaceNet), Euclidean
for batch-hard (Hermans, Beyer & Leibe 2017, "In Defense of the Triplet Loss",
arXiv:1703.07737). None of these functions normalises the embeddings: FaceNet
L2-normalises them first (``margin=0.2`` assumes that); pytorch-metric-learning
normalises inside its default distance.

All shapes are static and selection is by masks, so every function works under
``jax.jit`` and ``jax.vmap`` (e.g. over a leading axis of independent batches).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from rl_repr.losses.distances import (
    DistanceName,
    paired_distance,
    pairwise_cosine_distance,
    pairwise_distance,
    pairwise_euclidean,
    pairwise_squared_euclidean,
)

__all__ = [
    "pairwise_squared_euclidean",
    "pairwise_euclidean",
    "pairwise_cosine_distance",
    "pairwise_distance",
    "paired_distance",
    "triplet_loss",
    "batch_all_triplet_loss",
    "batch_all_triplet_loss_and_fraction",
    "batch_hard_triplet_loss",
    "semi_hard_triplet_loss",
    "contrastive_pair_loss",
]

Array = jax.Array

# A triplet is "active" (counted by batch-all) when its loss exceeds this; the
# value of Moindrot's widely copied batch-all implementation.
_ACTIVE_THRESHOLD = 1e-16


def _check_labelled_batch(fn: str, embeddings: Array, labels: Array) -> None:
    if jnp.ndim(embeddings) != 2:
        raise ValueError(
            f"{fn}: embeddings has shape {jnp.shape(embeddings)}; pass a [B, d] matrix "
            "(vmap the call for a leading axis of independent batches)."
        )
    if jnp.shape(labels) != jnp.shape(embeddings)[:1]:
        raise ValueError(
            f"{fn}: labels has shape {jnp.shape(labels)} but embeddings has shape "
            f"{jnp.shape(embeddings)}; pass one integer label per row, shape "
            f"({jnp.shape(embeddings)[0]},)."
        )


def _pair_masks(labels: Array) -> tuple[Array, Array]:
    """``(positive [B, B], negative [B, B])``: same label off the diagonal; other label."""
    same = labels[:, None] == labels[None, :]
    positive = same & ~jnp.eye(labels.shape[0], dtype=bool)
    return positive, ~same


def _masked_mean(values: Array, mask: Array) -> Array:
    """Mean of ``values`` where ``mask``; 0 when the mask is empty (not NaN)."""
    count = jnp.sum(mask)
    return jnp.sum(jnp.where(mask, values, 0.0)) / jnp.maximum(count, 1).astype(values.dtype)


def triplet_loss(
    anchor: Array,
    positive: Array,
    negative: Array,
    margin: float = 0.2,
    *,
    distance: DistanceName = "squared_euclidean",
) -> Array:
    """Triplet margin loss for given triplets (FaceNet).

    ``L = mean_i max(d(a_i, p_i) - d(a_i, n_i) + margin, 0)``

    Args:
      anchor, positive, negative: embeddings of shape ``[..., d]`` (all equal);
        row ``i`` of each forms one triplet.
      margin: ``alpha``; FaceNet uses 0.2 on L2-normalised embeddings.
      distance: ``'squared_euclidean'`` (FaceNet), ``'euclidean'``
        or ``'cosine'``.

    Returns:
      Scalar: the mean over all leading axes (a ``[d]`` input gives one triplet's loss).

    Example::

      loss = triplet_loss(f(a), f(p), f(n), margin=0.2)
    """
    if not (jnp.shape(anchor) == jnp.shape(positive) == jnp.shape(negative)):
        raise ValueError(
            f"triplet_loss: anchor {jnp.shape(anchor)}, positive {jnp.shape(positive)} and "
            f"negative {jnp.shape(negative)} differ; pass three arrays of the same shape [..., d]."
        )
    d_ap = paired_distance(anchor, positive, distance=distance)
    d_an = paired_distance(anchor, negative, distance=distance)
    return jnp.mean(jax.nn.relu(d_ap - d_an + margin))


def batch_all_triplet_loss(embeddings: Array, labels: Array, margin: float = 0.2, *,
                           distance: DistanceName = "squared_euclidean") -> Array:
    """Batch-all triplet loss: every valid triplet in the batch (Hermans et al. 2017).

    With ``l(a, p, n) = max(D[a, p] - D[a, n] + margin, 0)`` over all valid
    triplets (module docstring) and *active* meaning ``l > 1e-16``::

      loss     = sum of l over valid triplets / number of active triplets  (0 if none)
      fraction = number of active triplets / number of valid triplets      (0 if none)

    Averaging over the active triplets only (Hermans et al.'s "BA≠0") keeps
    the loss from shrinking as easy triplets stop contributing; ``fraction``
    is the usual training diagnostic. It matches pytorch-metric-learning's
    ``TripletMarginMiner(type_of_triplets="all")`` followed by
    ``TripletMarginLoss`` with its default ``AvgNonZeroReducer``, given the same
    distance (PML's default is the Euclidean distance of L2-normalised embeddings).

    Cost: ``O(B^3)`` time and temporaries (every triplet is scored); for large
    batches prefer :func:`batch_hard_triplet_loss` or
    :func:`semi_hard_triplet_loss`, which need ``O(B^2)`` memory.

    Args:
      embeddings: ``[B, d]``.
      labels: ``[B]`` integer class ids.
      margin: triplet margin (FaceNet: 0.2).
      distance: default ``'squared_euclidean'`` (FaceNet).

    Returns:
      The scalar loss (:func:`batch_all_triplet_loss_and_fraction` also returns ``fraction``).

    Example::

      loss = batch_all_triplet_loss(emb, labels, margin=0.2)
    """
    return batch_all_triplet_loss_and_fraction(embeddings, labels, margin, distance=distance)[0]


def batch_all_triplet_loss_and_fraction(embeddings: Array, labels: Array, margin: float = 0.2, *,
                                        distance: DistanceName = "squared_euclidean") -> tuple[Array, Array]:
    """:func:`batch_all_triplet_loss` and the fraction of valid triplets that are active.

    Returns ``(loss, fraction_active)``, two scalars; differentiate with ``has_aux``-style
    unpacking, e.g. ``jax.grad(lambda e: batch_all_triplet_loss_and_fraction(e, y)[0])``.
    """
    _check_labelled_batch("batch_all_triplet_loss", embeddings, labels)
    dist = pairwise_distance(embeddings, distance=distance)
    positive, negative = _pair_masks(labels)
    valid = positive[:, :, None] & negative[:, None, :]  # [a, p, n]
    losses = jnp.where(valid, jax.nn.relu(dist[:, :, None] - dist[:, None, :] + margin), 0.0)
    num_active = jnp.sum(losses > _ACTIVE_THRESHOLD)
    num_valid = jnp.sum(valid)
    loss = jnp.sum(losses) / jnp.maximum(num_active, 1).astype(losses.dtype)
    fraction = num_active.astype(losses.dtype) / jnp.maximum(num_valid, 1).astype(losses.dtype)
    return loss, fraction


def _masked_max(data: Array, mask: Array) -> Array:
    """Row-wise max over ``mask``; an empty row gives the row's minimum (as tfa)."""
    fill = jnp.min(data, axis=1, keepdims=True)
    return jnp.max(jnp.where(mask, data, fill), axis=1)


def _masked_min(data: Array, mask: Array) -> Array:
    """Row-wise min over ``mask``; an empty row gives the row's maximum (as tfa)."""
    fill = jnp.max(data, axis=1, keepdims=True)
    return jnp.min(jnp.where(mask, data, fill), axis=1)


def batch_hard_triplet_loss(
    embeddings: Array,
    labels: Array,
    margin: float = 0.2,
    *,
    soft: bool = False,
    distance: DistanceName = "euclidean",
    include_invalid_anchors: bool = False,
) -> Array:
    """Batch-hard triplet loss (Hermans, Beyer & Leibe 2017, arXiv:1703.07737).

    Every sample is an anchor; it is paired with its hardest positive and its
    hardest negative::

      hp[a] = max_{p: positive pair (a, p)} D[a, p]
      hn[a] = min_{n: labels[n] != labels[a]} D[a, n]
      l[a]  = max(hp[a] - hn[a] + margin, 0)     (soft=True: softplus(hp[a] - hn[a]))
      loss  = mean of l[a] over anchors that have a positive and a negative

    An anchor whose class has one sample in the batch (no positive), or a batch
    with one class (no negative), forms no triplet and is left out of the mean;
    the loss is 0 if no anchor is valid. This equals pytorch-metric-learning's
    ``BatchHardMiner`` (which drops such anchors) followed by a plain mean of
    the hinge. With ``soft=True`` the margin is unused (the soft margin replaces it).

    ``include_invalid_anchors=True`` reproduces tensorflow-addons'
    ``triplet_hard_loss`` instead: the mean is over all ``B`` anchors, an anchor
    without a positive takes ``hp`` = the smallest distance in its row (0, its
    own), and one without a negative takes ``hn`` = the largest distance in its
    row. (tfa's defaults differ too: ``margin=1.0``.)

    Args:
      embeddings: ``[B, d]``.
      labels: ``[B]`` integer class ids (use PK batches: P classes x K samples).
      margin: hinge margin (ignored when ``soft``).
      soft: soft-margin variant ``log(1 + exp(hp - hn))``.
      distance: default ``'euclidean'`` (Hermans et al.; finite gradient at 0).
      include_invalid_anchors: tfa-compatible reduction, see above.

    Returns:
      Scalar loss.

    Example::

      loss = batch_hard_triplet_loss(emb, labels, margin=0.2, soft=True)
    """
    _check_labelled_batch("batch_hard_triplet_loss", embeddings, labels)
    dist = pairwise_distance(embeddings, distance=distance)
    positive, negative = _pair_masks(labels)
    hardest_positive = _masked_max(dist, positive)
    hardest_negative = _masked_min(dist, negative)
    gap = hardest_positive - hardest_negative
    per_anchor = jax.nn.softplus(gap) if soft else jax.nn.relu(gap + margin)
    if include_invalid_anchors:
        return jnp.mean(per_anchor)
    valid = jnp.any(positive, axis=1) & jnp.any(negative, axis=1)
    return _masked_mean(per_anchor, valid)


def _semi_hard_negative_distance(dist: Array, negative: Array) -> Array:
    """``[a, p]``: smallest ``D[a, n] > D[a, p]`` over negatives, else the largest ``D[a, n]``.

    Sorting each anchor's negative distances once and binary-searching every
    ``D[a, p]`` in them costs ``O(B^2 log B)`` time and ``O(B^2)`` memory, instead
    of the ``[B, B, B]`` comparison tensor of the direct formulation.
    """
    batch = dist.shape[0]
    # Non-negatives sort after every real distance; any finite value above the
    # largest distance works and keeps gradients free of inf arithmetic.
    beyond = jax.lax.stop_gradient(jnp.max(dist)) + 1.0
    sorted_negatives = jnp.sort(jnp.where(negative, dist, beyond), axis=1)
    num_negatives = jnp.sum(negative, axis=1)
    # First position whose distance is strictly greater than D[a, p].
    first_farther = jax.vmap(lambda row, q: jnp.searchsorted(row, q, side="right"))(
        sorted_negatives, dist
    )
    has_farther = first_farther < num_negatives[:, None]
    farther = jnp.take_along_axis(sorted_negatives, jnp.minimum(first_farther, batch - 1), axis=1)
    largest = jnp.take_along_axis(
        sorted_negatives, jnp.maximum(num_negatives - 1, 0)[:, None], axis=1
    )
    return jnp.where(has_farther, farther, largest)


def semi_hard_triplet_loss(
    embeddings: Array,
    labels: Array,
    margin: float = 0.2,
    *,
    distance: DistanceName = "squared_euclidean",
) -> Array:
    """Semi-hard triplet loss (FaceNet; tensorflow-addons ``triplet_semihard_loss``).

    Every positive pair ``(a, p)`` (both orders, as in tfa) gets one negative::

      n*(a, p) = argmin_{n negative of a, D[a, n] > D[a, p]} D[a, n]    (semi-hard)
                 or, if no negative is farther than p, argmax_{n negative of a} D[a, n]
      loss     = mean over positive pairs of max(D[a, p] - D[a, n*] + margin, 0)

    The fallback to the *farthest* negative (the easiest hard one) is tfa's
    choice; such a pair always contributes at least ``margin``. The loss of a
    pair is positive exactly when ``n*`` is semi-hard in FaceNet's sense,
    ``D[a, p] < D[a, n] < D[a, p] + margin`` (pytorch-metric-learning's
    ``"semihard"`` triplets), or when the fallback is used.

    Positive pairs whose anchor has no negative in the batch form no triplet and
    are left out of the mean; the loss is 0 if there are no positive pairs.
    (tfa instead counts such pairs with ``D[a, n*] = 0``, i.e. loss
    ``D[a, p] + margin``, and returns NaN without positive pairs. tfa's current
    default is ``distance_metric="L2"``, the unsquared distance, and
    ``margin=1.0``; the original ``tf.contrib`` version used squared distances.)

    Args:
      embeddings: ``[B, d]``.
      labels: ``[B]`` integer class ids.
      margin: hinge margin (FaceNet: 0.2 on L2-normalised embeddings).
      distance: default ``'squared_euclidean'`` (FaceNet).

    Returns:
      Scalar loss.

    Example::

      loss = semi_hard_triplet_loss(emb / jnp.linalg.norm(emb, axis=1, keepdims=True), labels)
    """
    _check_labelled_batch("semi_hard_triplet_loss", embeddings, labels)
    dist = pairwise_distance(embeddings, distance=distance)
    positive, negative = _pair_masks(labels)
    d_an = _semi_hard_negative_distance(dist, negative)
    per_pair = jax.nn.relu(dist - d_an + margin)
    valid = positive & jnp.any(negative, axis=1)[:, None]
    return _masked_mean(per_pair, valid)


def contrastive_pair_loss(distance: Array, same: Array, margin: float = 1.0) -> Array:
    """Siamese contrastive loss (Hadsell, Chopra & LeCun 2006, "Dimensionality
    Reduction by Learning an Invariant Mapping").

    ``L = mean_i [ s_i * D_i^2 + (1 - s_i) * max(margin - D_i, 0)^2 ]``

    where ``D_i`` is the (unsquared) Euclidean distance between the two
    embeddings of pair ``i`` and ``s_i = 1`` for a matching pair. The paper
    writes both terms with a factor 1/2 (and ``Y = 0`` for similar pairs); we
    omit the halves, so this is exactly twice the paper's per-pair loss.

    Args:
      distance: ``[...]`` pair distances, e.g.
        ``paired_distance(f(x1), f(x2), distance='euclidean')``.
      same: same shape; 1/True for a same-class pair, 0/False otherwise (soft
        values in [0, 1] are accepted and interpolate the two terms).
      margin: distance beyond which dissimilar pairs cost nothing.

    Returns:
      Scalar: the mean over all pairs.

    Example::

      d = paired_distance(f(x1), f(x2), distance="euclidean")
      loss = contrastive_pair_loss(d, y1 == y2, margin=1.0)
    """
    if jnp.shape(distance) != jnp.shape(same):
        raise ValueError(
            f"contrastive_pair_loss: distance has shape {jnp.shape(distance)} but same has "
            f"shape {jnp.shape(same)}; pass one same/different flag per distance."
        )
    distance = jnp.asarray(distance)
    distance = distance.astype(jnp.promote_types(distance.dtype, jnp.float32))
    same = jnp.asarray(same).astype(distance.dtype)
    pull = same * distance**2
    push = (1.0 - same) * jax.nn.relu(margin - distance) ** 2
    return jnp.mean(pull + push)
