"""word2vec's default SGNS update: each target's window as fixed slots, closed-form gradients.

The same loss and SGD update as the autodiff'd implementations of
:func:`rl_repr.word2vec.step.make_update` (Mikolov et al. 2013, arXiv:1310.4546),
laid out for a small CPU. The batch's pairs (:mod:`rl_repr.data.text.batches`,
``[R, P]`` in distance groups) are re-indexed so that target ``t`` owns ``S = 2 W``
context *slots*, offsets ``(-1, +1, -2, +2, ..., -W, +W)``; slots beyond the target's
dynamic window (or across a sentence) are masked (``m_ts = 0``). For context ``c`` in slot
``s`` of target ``t`` and the target's output vectors ``o_0 = w_t``, ``o_1..o_K`` (its
noise words, ``window`` sharing)::

    x_tsj = e_{c_ts} . o_tj                                   scores, [R, T, S, 1 + K]
    l     = sum_ts m_ts ( -log sigma(x_ts0) - a sum_{j>=1} log sigma(-x_tsj) )
    g_tsj = dl/dx_tsj = m_ts ( sigma(x_tsj) - 1 )  (j = 0),   m_ts a sigma(x_tsj)  (j >= 1)
    dl/de_{c_ts} = sum_j g_tsj o_tj                dl/do_tj = sum_s g_tsj e_{c_ts}

with ``a = 1``. Per-pair noise (``pair``) adds ``K`` scores per slot against the pair's own
noise vectors; row-shared noise (``row``) ``Z`` per slot against the row's, ``a = K / Z``.

Why written out rather than differentiated, and why padded: on a small CPU the
autodiff'd per-distance-group program (``loss_impl='fused'``) takes seconds of XLA
compilation, a large share of a short run; this one is a handful of kernels -- one gather
and one scatter-add per table, one batched dot for the scores, unrolled sums over the few
outputs and slots for the gradients -- that compiles several times faster and runs each update about as
fast or faster, although ``2 W T`` slots are computed for the ~``(W + 1) T`` real pairs
(the context gradients return to the pair layout before their scatter-add, so the table
update touches real pairs only). Splitting the slots into one unpadded block per window
size runs faster per update but compiles several times slower; computing the loss with a softplus per score cost as much as
the gathers, so it is taken from the sigmoids already needed: two logs per slot.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from rl_repr.data.text import batches as text_batches


@functools.lru_cache(maxsize=16)
def window_slot_index(window: int, positions_per_row: int) -> np.ndarray:
    """``[T, 2 W]`` int32: the pair slot (``text_batches.pair_layout``) of each (target, offset).

    Column ``2 (k - 1)`` is offset ``-k``, column ``2 (k - 1) + 1`` offset ``+k``; entries
    whose target's window is shorter than ``k`` hold ``P`` (one past the last pair slot,
    which :func:`to_window_slots` fills with a masked dummy).
    """
    num_pairs = text_batches.pairs_per_row(window, positions_per_row)
    index = np.full((positions_per_row, 2 * window), num_pairs, np.int32)
    for k, first, count in text_batches.pair_layout(window, positions_per_row):
        index[:count, 2 * (k - 1)] = first + np.arange(count)          # offset -k
        index[:count, 2 * (k - 1) + 1] = first + count + np.arange(count)  # offset +k
    index.setflags(write=False)
    return index


def to_window_slots(pair_values: jax.Array, window: int, positions_per_row: int, fill) -> jax.Array:
    """``[R, P, ...]`` values in pair layout -> ``[R, T, 2 W, ...]`` window slots (``fill`` if none)."""
    pad = jnp.full((pair_values.shape[0], 1, *pair_values.shape[2:]), fill, pair_values.dtype)
    return jnp.concatenate([pair_values, pad], axis=1)[:, window_slot_index(window, positions_per_row)]


@functools.lru_cache(maxsize=16)
def pair_slot_positions(window: int, positions_per_row: int) -> np.ndarray:
    """``[P]`` int32: where each pair sits in the flattened ``[T * 2 W]`` slots (inverse of
    :func:`window_slot_index` on the real slots)."""
    flat = window_slot_index(window, positions_per_row).reshape(-1)
    positions = np.argsort(flat, kind="stable")[:text_batches.pairs_per_row(window, positions_per_row)]
    positions = positions.astype(np.int32)
    positions.setflags(write=False)
    return positions


def from_window_slots(slot_values: jax.Array, window: int, positions_per_row: int) -> jax.Array:
    """``[R, T, 2 W, ...]`` window slots -> ``[R, P, ...]`` pair layout (masked slots dropped)."""
    flat = slot_values.reshape(slot_values.shape[0], -1, *slot_values.shape[3:])
    return flat[:, pair_slot_positions(window, positions_per_row)]


def sgns_slot_gradients(context_vecs: jax.Array, output_vecs: jax.Array, mask: jax.Array, *,
                        slot_noise_vecs: jax.Array | None = None, shared_noise_vecs: jax.Array | None = None,
                        noise_weight: float = 1.0):
    """Summed SGNS loss over window slots and its gradients, in closed form (module docstring).

    Args:
      context_vecs: ``e``, ``[R, T, S, d]``, the input vectors of each target's slots.
      output_vecs: ``[R, T, J, d]``: the target's output vector, then (``window``
        sharing) its ``K`` noise vectors, ``J = 1 + K``; ``J = 1`` otherwise.
      mask: ``[R, T, S]`` bool, the real pairs.
      slot_noise_vecs: ``[R, T, S, K, d]``, each pair's own noise vectors (``pair``).
      shared_noise_vecs: ``[R, Z, d]``, noise vectors shared by a row (``row``).
      noise_weight: ``a``, the weight of every noise term (``K / Z`` for ``row``).

    Returns:
      ``(loss_sum, d_context [R, T, S, d], d_output [R, T, J, d], d_slot_noise | None,
      d_shared_noise | None)``: gradients of the summed loss, zero on masked slots.
    """
    if context_vecs.ndim != 4 or output_vecs.ndim != 4 or mask.shape != context_vecs.shape[:3]:
        raise ValueError(f"sgns_slot_gradients: context_vecs {context_vecs.shape}, output_vecs "
                         f"{output_vecs.shape} and mask {mask.shape} must be [R, T, S, d], [R, T, J, d], [R, T, S].")
    slots, outputs = context_vecs.shape[2], output_vecs.shape[2]
    weight = mask.astype(context_vecs.dtype)
    # Scores of every slot against its target's output vectors, [R, T, S, J].
    # (A dot: XLA:CPU keeps it one kernel; the same sum written elementwise was slower.)
    scores = jnp.einsum("rtsd,rtjd->rtsj", context_vecs, output_vecs)
    prob = jax.nn.sigmoid(scores)
    positive = jnp.arange(outputs) == 0
    grad_scores = weight[..., None] * jnp.where(positive, prob - 1.0, noise_weight * prob)
    # -log sigma(x_0) - a sum_j log sigma(-x_j) = -log p_0 - a log prod_j (1 - p_j): two logs
    # per slot instead of a softplus per score (which cost more than the whole update's gathers).
    per_slot = _neg_log(prob[..., 0]) + noise_weight * _neg_log(jnp.prod(1.0 - prob[..., 1:], axis=-1))
    # Unrolled sums over the J outputs and S slots: elementwise fusions XLA:CPU runs fast.
    d_context = sum(grad_scores[..., j, None] * output_vecs[:, :, None, j, :] for j in range(outputs))
    d_output = sum(grad_scores[:, :, s, :, None] * context_vecs[:, :, s, None, :] for s in range(slots))
    d_slot_noise = d_shared_noise = None
    if slot_noise_vecs is not None:  # pair: [R, T, S, K, d]
        noise_prob = jax.nn.sigmoid(jnp.sum(context_vecs[..., None, :] * slot_noise_vecs, axis=-1))
        per_slot += noise_weight * _neg_log(jnp.prod(1.0 - noise_prob, axis=-1))
        grad_noise = weight[..., None] * noise_weight * noise_prob  # [R, T, S, K]
        d_context = d_context + jnp.sum(grad_noise[..., None] * slot_noise_vecs, axis=-2)
        d_slot_noise = grad_noise[..., None] * context_vecs[..., None, :]
    if shared_noise_vecs is not None:  # row: one [T S, d] x [d, Z] product per row
        noise_prob = jax.nn.sigmoid(jnp.einsum("rtsd,rzd->rtsz", context_vecs, shared_noise_vecs))
        per_slot += noise_weight * _neg_log(jnp.prod(1.0 - noise_prob, axis=-1))
        grad_noise = weight[..., None] * noise_weight * noise_prob  # [R, T, S, Z]
        d_context = d_context + jnp.einsum("rtsz,rzd->rtsd", grad_noise, shared_noise_vecs)
        d_shared_noise = jnp.einsum("rtsz,rtsd->rzd", grad_noise, context_vecs)
    loss_sum = jnp.sum(weight * per_slot)
    return loss_sum, d_context, d_output, d_slot_noise, d_shared_noise


def slot_sgns_updates(input_vectors: jax.Array, output_vectors: jax.Array, batch: dict[str, jax.Array], *,
                      window: int, negatives_per_pair: int):
    """Summed SGNS loss of a batch and its row updates, via window slots.

    Args:
      input_vectors, output_vectors: the tables ``[V, d]``.
      batch: ``targets [R, T]``, ``contexts``/``pair_mask`` ``[R, P]`` and ``negatives``
        ``[R, T, K]`` (``window``), ``[R, P, K]`` (``pair``) or ``[R, S]`` (``row``).

    Returns:
      ``(loss_sum, input_updates, output_updates)`` as ``(ids, gradients)`` pairs, the
      form :func:`rl_repr.word2vec.step.make_update` scatter-adds.
    """
    targets, noise_ids = batch["targets"], batch["negatives"]
    length = targets.shape[1]
    contexts = to_window_slots(batch["contexts"], window, length, 0)
    mask = to_window_slots(batch["pair_mask"], window, length, False)
    kwargs, noise_weight = {}, 1.0
    if noise_ids.ndim == 2:  # row: [R, Z]
        output_ids = targets[..., None]
        noise_weight = negatives_per_pair / noise_ids.shape[-1]
        kwargs["shared_noise_vecs"] = output_vectors[noise_ids]
    elif noise_ids.shape[1] == length:  # window: [R, T, K], the target's noise shared by its slots
        output_ids = jnp.concatenate([targets[..., None], noise_ids], axis=-1)
    else:  # pair: [R, P, K]
        output_ids = targets[..., None]
        kwargs["slot_noise_vecs"] = output_vectors[to_window_slots(noise_ids, window, length, 0)]
    loss_sum, d_context, d_output, d_slot_noise, d_shared = sgns_slot_gradients(
        input_vectors[contexts], output_vectors[output_ids], mask,
        noise_weight=noise_weight, **kwargs)
    # Scatter in pair layout: the ~40% masked (zero) slots are dropped by one in-memory
    # gather, cheaper than scatter-adding them into the table (measured ~5-10% per update).
    output_updates = [(output_ids, d_output)]
    if d_shared is not None:
        output_updates.append((noise_ids, d_shared))
    elif d_slot_noise is not None:
        output_updates.append((noise_ids, from_window_slots(d_slot_noise, window, length)))
    return loss_sum, [(batch["contexts"], from_window_slots(d_context, window, length))], output_updates


def _neg_log(x: jax.Array) -> jax.Array:
    """``-log x``, capped near 87 where ``x`` underflows (the loss is a metric); NaN stays NaN."""
    return -jnp.log(jnp.maximum(x, jnp.finfo(x.dtype).tiny))

