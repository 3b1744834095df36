"""The losses of the metric-learning trainer: the configured mining strategy on one labelled
batch, the instance (NT-Xent) term on two views, and the gather that lets every device mine
the global batch.

``metric_loss`` dispatches to the online-mining losses of :mod:`rl_repr.losses.metric`
(Hermans, Beyer & Leibe 2017; Schroff et al. 2015, FaceNet) or draws random triplets / pairs
(the unmined baselines); ``metric_and_instance_loss`` adds SimCLR's NT-Xent between two
augmented views (Chen et al. 2020). ``gather_global_batch`` is ``all_gather`` whose backward
pass keeps each device's own rows (see its docstring), so a sharded step's summed gradients
equal the single-device gradient.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from rl_repr.losses.contrastive import nt_xent
from rl_repr.losses.distances import pairwise_squared_euclidean, paired_distance
from rl_repr.losses.metric import (_masked_mean, batch_all_triplet_loss_and_fraction, batch_hard_triplet_loss,
                                   contrastive_pair_loss, semi_hard_triplet_loss, triplet_loss)

__all__ = ["METRIC_LOSSES", "DEFAULT_DISTANCE", "sample_partners", "metric_loss", "metric_and_instance_loss"]

# Each loss's distance in its paper: FaceNet (squared), Hermans et al. (Euclidean), Hadsell et al.
DEFAULT_DISTANCE = {"batch_all": "squared_euclidean", "batch_hard": "euclidean",
                    "batch_hard_soft": "euclidean", "semi_hard": "squared_euclidean",
                    "random_triplets": "squared_euclidean", "siamese_pairs": "euclidean"}
# The strategies ``metric_loss`` knows, by name (a config's ``loss``).
METRIC_LOSSES = tuple(DEFAULT_DISTANCE)


def sample_partners(key: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    """One column per row drawn uniformly where ``mask [B, B]`` is True: ``(index [B], has_any [B])``.

    The argmax of uniform noise restricted to the mask is a uniform draw among its True entries.
    """
    scores = jnp.where(mask, jax.random.uniform(key, mask.shape), -1.0)
    return jnp.argmax(scores, axis=1), jnp.any(mask, axis=1)


def metric_loss(embeddings: jax.Array, labels: jax.Array, key: jax.Array, *, loss: str,
                margin: float = 0.2, pair_margin: float = 1.0, distance: str = ""
                ) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The configured loss of one labelled batch ``embeddings [B, d]``, ``labels [B]``.

    * ``batch_all`` / ``batch_hard`` / ``batch_hard_soft`` / ``semi_hard``: the online-mining
      losses of :mod:`rl_repr.losses.metric` (Hermans et al. 2017; FaceNet).
    * ``random_triplets``: each anchor a with a uniformly drawn positive p and negative n,
      ``mean_a max(d(a, p) - d(a, n) + margin, 0)``: the unmined baseline FaceNet warns
      about (most random triplets already satisfy the margin).
    * ``siamese_pairs``: each anchor paired with a random positive (y = 1) and a random
      negative (y = 0), ``mean [y D^2 + (1 - y) max(pair_margin - D, 0)^2]`` over the 2B pairs
      (Hadsell, Chopra & LeCun 2006).

    ``distance=''`` picks the loss's paper default (``DEFAULT_DISTANCE``); ``key`` drives the
    random draws. Anchors without a positive or a negative in the batch are left out.

    Returns ``(loss, diagnostics)``; diagnostics are the mean squared distances of positive
    and of negative pairs, and for batch-all the fraction of active triplets.
    """
    if embeddings.ndim != 2 or labels.shape != embeddings.shape[:1]:
        raise ValueError(f"metric_loss: embeddings {embeddings.shape} and labels {labels.shape}; "
                         "pass [B, d] embeddings and one label per row.")
    if loss not in DEFAULT_DISTANCE:
        raise ValueError(f"loss={loss!r} is not a metric-learning loss; use one of {tuple(DEFAULT_DISTANCE)}.")
    distance = distance or DEFAULT_DISTANCE[loss]
    same = labels[:, None] == labels[None, :]
    positive_mask, negative_mask = same & ~jnp.eye(labels.shape[0], dtype=bool), ~same
    squared = pairwise_squared_euclidean(jax.lax.stop_gradient(embeddings))
    diagnostics = {"positive_distance": _masked_mean(squared, positive_mask),
                   "negative_distance": _masked_mean(squared, negative_mask)}
    if loss == "batch_all":
        value, diagnostics["fraction_active"] = batch_all_triplet_loss_and_fraction(
            embeddings, labels, margin, distance=distance)
    elif loss in ("batch_hard", "batch_hard_soft"):
        value = batch_hard_triplet_loss(embeddings, labels, margin, soft=loss == "batch_hard_soft",
                                               distance=distance)
    elif loss == "semi_hard":
        value = semi_hard_triplet_loss(embeddings, labels, margin, distance=distance)
    else:  # random_triplets, siamese_pairs: one random partner of each kind per anchor
        positive_key, negative_key = jax.random.split(key)
        positive, has_positive = sample_partners(positive_key, positive_mask)
        negative, has_negative = sample_partners(negative_key, negative_mask)
        if loss == "random_triplets":
            per_anchor = jax.vmap(functools.partial(triplet_loss, margin=margin, distance=distance))(
                embeddings, embeddings[positive], embeddings[negative])
            value = _masked_mean(per_anchor, has_positive & has_negative)
        else:
            partners = jnp.concatenate([positive, negative])
            anchors = jnp.concatenate([embeddings, embeddings])
            pair_d = paired_distance(anchors, embeddings[partners], distance=distance)
            is_same = jnp.concatenate([jnp.ones_like(has_positive), jnp.zeros_like(has_negative)])
            per_pair = jax.vmap(functools.partial(contrastive_pair_loss, margin=pair_margin))(
                pair_d, is_same)
            value = _masked_mean(per_pair, jnp.concatenate([has_positive, has_negative]))
    return value, diagnostics


def metric_and_instance_loss(view_1: jax.Array, view_2: jax.Array, labels: jax.Array, key: jax.Array, *,
                             metric_weight: float, instance_weight: float, instance_temperature: float,
                             **metric_kwargs) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Labelled metric loss plus an instance (exemplar) term on two augmented views of each image.

    With ``e1 = view_1 [B, d]`` and ``e2 = view_2 [B, d]`` the embeddings of two views of the
    same B images (row b of each is image b, label ``labels[b]``)::

        L = metric_weight * metric_loss([e1; e2], [y; y])  +  instance_weight * NT-Xent(e1, e2; tau)

    The first term is ``metric_loss`` on the 2B views (the other view of an image is one more
    positive); the second is SimCLR's NT-Xent (Chen et al. 2020, eq. 1; ``rl_repr.losses.nt_xent``),
    which asks each view to pick out its partner among all 2B - 1 other views, including
    views of other images of the same class. Instance discrimination keeps what tells images
    apart inside a class, the structure a class-only loss throws away and that new classes
    need (Dosovitskiy et al. 2014, "Discriminative Unsupervised Feature Learning with
    Exemplar CNNs"; Khosla et al. 2020, "Supervised Contrastive Learning" is the labelled
    relative). ``metric_weight = 0`` trains on the instance term alone, still only on the
    training classes' images.

    Returns ``(L, diagnostics)``: ``metric_loss``'s diagnostics plus both terms unweighted.
    """
    if view_1.ndim != 2 or view_1.shape != view_2.shape or labels.shape != view_1.shape[:1]:
        raise ValueError(f"metric_and_instance_loss: views {view_1.shape}, {view_2.shape} and labels "
                         f"{labels.shape}; pass two [B, d] views of the same images and labels [B].")
    both = jnp.concatenate([view_1, view_2])
    metric_value, diagnostics = metric_loss(both, jnp.concatenate([labels, labels]), key, **metric_kwargs)
    instance_value = nt_xent(view_1, view_2, instance_temperature)
    diagnostics = {**diagnostics, "metric_loss": metric_value, "instance_loss": instance_value}
    # A zero weight drops its term from the graph (and its gradient), not just its value.
    value = (metric_weight * metric_value if metric_weight else 0.0) + instance_weight * instance_value
    return value, diagnostics
