"""word2vec: skip-gram with negative sampling (or full softmax), vmapped, sparse, sharded.

Mikolov et al. 2013 ("Efficient Estimation of Word Representations in Vector Space",
arXiv:1301.3781; "Distributed Representations of Words and Phrases", arXiv:1310.4546);
slides 002. Two tables, input vectors ``v`` (the embeddings we keep) and output vectors
``u``; for each (centre ``c``, context ``o``) pair in a dynamic window::

    sgns:          l = -log sigma(u_o . v_c) - sum_{k=1}^{K} log sigma(-u_{n_k} . v_c),  n_k ~ P_n
    full_softmax:  l = -log softmax(U v_c)_o

The step (one per batch of ``R`` rows x ``T`` centre positions, see
:mod:`rl_repr.data.text_batches`):

1. gather the rows it needs -- ``v`` of the ``T`` centres, ``u`` of the ``T + 2W`` halo
   tokens, ``u`` of the noise words -- so the work scales with the batch, not ``V``;
2. per-pair losses: ``rl_repr.losses.sgns_loss`` vmapped over offsets and centres
   (full softmax: ``skipgram_full_softmax_loss``), masked by the dynamic window;
3. the gradient of the *summed* loss with respect to the gathered rows (plain SGD on
   the sum, as word2vec takes one step per pair), scatter-added into the tables with
   the learning rate ``alpha`` decayed linearly to ``min_alpha`` over training.

Negatives: ``negative_sharing='pair'`` draws ``K`` noise words for every pair
(word2vec.c exactly); ``'row'`` shares ``S = G K`` noise words among a row's pairs and
averages the loss over the ``G`` groups of ``K`` -- an unbiased estimate of the same
objective whose negative scores are one ``[T, d] x [d, S]`` matrix product.

Sharding: the rows of a batch are split over the ``data`` mesh axis and both tables are
*replicated*. Each device computes the row gradients of its rows; under ``shard_map`` /
``pmap`` the (ids, row-gradient) pairs are all-gathered and every device applies all of
them with the same scatter-add, so the replicas stay identical and the communication is
``O(global batch x d)`` rather than a dense ``O(V x d)`` all-reduce. Replication rather
than row-splitting because word frequencies are Zipfian: the few hot rows would land on
one device, and a row split needs an all-to-all per gather; for vocabularies too large to
replicate, split rows instead. The ``jit`` driver leaves the same choice to XLA. Full
softmax touches every output row, so its output-table gradient is all-reduced densely.
"""
from __future__ import annotations

import functools
from typing import Any, Sequence

import flax
import jax
import jax.numpy as jnp
import numpy as np

from rl_repr import losses
from rl_repr.data import text_batches

LOSSES = ("sgns", "full_softmax")
NEGATIVE_SHARING = ("pair", "centre", "row")
LOSS_IMPLEMENTATIONS = ("fused", "vmap")


# ============================================================================ state
@flax.struct.dataclass
class Word2VecState:
    """Both embedding tables and the step counter (which drives the learning rate).

    Attributes:
      step: int32 scalar, steps taken.
      input_vectors: ``[V, d]`` float32, the word embeddings (``v``).
      output_vectors: ``[V, d]`` float32, the context vectors (``u``).
    """

    step: jax.Array
    input_vectors: jax.Array
    output_vectors: jax.Array


def init_state(key: jax.Array, vocab_size: int, dim: int) -> Word2VecState:
    """word2vec's initialisation: ``v ~ U[-0.5/d, 0.5/d)``, ``u = 0``."""
    input_vectors = jax.random.uniform(key, (vocab_size, dim), jnp.float32, -0.5 / dim, 0.5 / dim)
    return Word2VecState(step=jnp.zeros((), jnp.int32), input_vectors=input_vectors,
                         output_vectors=jnp.zeros((vocab_size, dim), jnp.float32))


def learning_rate(step: jax.Array, *, alpha: float, min_alpha: float, total_steps: int) -> jax.Array:
    """word2vec's linear decay: ``alpha - (alpha - min_alpha) * min(step / total_steps, 1)``."""
    progress = jnp.minimum(step.astype(jnp.float32) / max(total_steps, 1), 1.0)
    return alpha - (alpha - min_alpha) * progress


# ============================================================================ losses
def negatives_shape(negative_sharing: str, *, window: int, positions_per_row: int,
                    negatives_per_pair: int, shared_negatives: int) -> tuple[int, ...]:
    """Noise ids drawn per batch row: ``pair`` ``(2W, T, K)``, ``centre`` ``(T, K)``, ``row`` ``(S,)``."""
    if negative_sharing == "pair":
        return (2 * window, positions_per_row, negatives_per_pair)
    if negative_sharing == "centre":
        return (positions_per_row, negatives_per_pair)
    if negative_sharing == "row":
        if shared_negatives % negatives_per_pair:
            raise ValueError(f"shared_negatives={shared_negatives} must be a multiple of "
                             f"negatives={negatives_per_pair} (the loss averages over groups of K).")
        return (shared_negatives,)
    raise ValueError(f"negative_sharing={negative_sharing!r} is not one of {NEGATIVE_SHARING}.")


def sgns_pair_losses(centers: jax.Array, contexts: jax.Array, negatives: jax.Array,
                     negatives_per_pair: int) -> jax.Array:
    """Per-pair SGNS losses ``[2W, T]``: ``rl_repr.losses.sgns_loss`` vmapped over pairs.

    The definition the fused step (:func:`sgns_window_loss`) is tested against.

    Args:
      centers: ``v`` of the centres, ``[T, d]``.
      contexts: ``u`` of the contexts, offset-major ``[2W, T, d]``.
      negatives: noise vectors: ``[2W, T, K, d]`` (``pair``), ``[T, K, d]`` (``centre``)
        or ``[S, d]`` (``row``; ``S = G K`` and the loss is averaged over the ``G`` groups
        of ``K``, an unbiased estimate of the loss with ``K`` negatives).
      negatives_per_pair: ``K``.
    """
    if negatives.ndim == 4:
        over_centres = jax.vmap(losses.sgns_loss, in_axes=(0, 0, 0))
        return jax.vmap(over_centres, in_axes=(None, 0, 0))(centers, contexts, negatives)
    if negatives.ndim == 3:
        over_centres = jax.vmap(losses.sgns_loss, in_axes=(0, 0, 0))
        return jax.vmap(over_centres, in_axes=(None, 0, None))(centers, contexts, negatives)
    if negatives.ndim == 2:
        groups = negatives.reshape(-1, negatives_per_pair, negatives.shape[-1])

        def pair_loss(center, context):
            return jnp.mean(jax.vmap(losses.sgns_loss, in_axes=(None, None, 0))(center, context, groups))

        return jax.vmap(jax.vmap(pair_loss), in_axes=(None, 0))(centers, contexts)
    raise ValueError(f"negatives has shape {negatives.shape}; pass [2W, T, K, d], [T, K, d] or [S, d].")


def sgns_window_loss(centers: jax.Array, contexts: Sequence[jax.Array], negatives: jax.Array,
                     mask: jax.Array, *, negatives_per_pair: int) -> jax.Array:
    """``sum_{j,i} mask[j,i] * sgns_loss(v_i, u_{i+o_j}, noise of (j,i))``, fused for the CPU/GPU.

    Equal to ``sum(where(mask, sgns_pair_losses(...), 0))`` (tested), but written so that
    XLA keeps it in cache and in a few passes: the positive term is one ``[T, d]``
    product per offset, each offset's contexts a separate (sliced, never stacked)
    array whose gradient goes straight to its own scatter-add; and the negative term,
    which does not depend on the offset under ``centre``/``row`` sharing, is computed
    once per centre and weighted by its number of real pairs::

        sum_j sum_i m_ji (-log sigma(u_{i+o_j} . v_i)) + sum_i n_i w sum_k (-log sigma(-u_k . v_i))

    with ``n_i = sum_j m_ji`` and ``w = K / S`` under ``row`` sharing (1 otherwise).

    Args:
      centers: ``[..., T, d]``.
      contexts: ``2W`` arrays ``[..., T, d]``, the contexts at each offset.
      negatives: ``[..., 2W, T, K, d]`` (``pair``), ``[..., T, K, d]`` (``centre``) or
        ``[..., S, d]`` (``row``).
      mask: ``[..., 2W, T]`` bool, the real pairs.
      negatives_per_pair: ``K``.
    """
    weights = mask.astype(centers.dtype)
    total = 0.0
    for j, context in enumerate(contexts):
        score = jnp.einsum("...td,...td->...t", centers, context)
        total += jnp.sum(weights[..., j, :] * -jax.nn.log_sigmoid(score))
        if negatives.ndim == centers.ndim + 2:  # K noise words per pair
            noise_scores = jnp.einsum("...td,...tkd->...tk", centers, negatives[..., j, :, :, :])
            total += jnp.sum(weights[..., j, :] * -jnp.sum(jax.nn.log_sigmoid(-noise_scores), axis=-1))
    if negatives.ndim != centers.ndim + 2:
        if negatives.ndim == centers.ndim + 1:  # K per centre
            noise_scores, group_weight = jnp.einsum("...td,...tkd->...tk", centers, negatives), 1.0
        else:  # S shared by the row: one matrix product
            noise_scores = jnp.einsum("...td,...sd->...ts", centers, negatives)
            group_weight = negatives_per_pair / negatives.shape[-2]
        per_centre = -jnp.sum(jax.nn.log_sigmoid(-noise_scores), axis=-1) * group_weight
        total += jnp.sum(jnp.sum(weights, axis=-2) * per_centre)
    return total


def full_softmax_pair_losses(centers: jax.Array, output_vectors: jax.Array,
                             context_ids: jax.Array) -> jax.Array:
    """Per-pair ``-log softmax(U v_c)_o``, ``[2W, T]``, from ``skipgram_full_softmax_loss``.

    Args:
      centers: ``[T, d]``; output_vectors: ``U``, ``[V, d]``; context_ids: ``[2W, T]``.

    Each centre's log-softmax over the vocabulary is computed once (the inner function
    does not depend on the offset, so vmap does not repeat it), then picked per pair.
    """
    def pair_losses(context_row):  # context_row: [T] ids at one offset
        return jax.vmap(lambda c, o: losses.skipgram_full_softmax_loss(c[None], output_vectors, o[None]))(
            centers, context_row)

    return jax.vmap(pair_losses)(context_ids)


# ============================================================================ step
def make_per_device_step(*, window: int, loss: str, negatives_per_pair: int, alpha: float,
                         min_alpha: float, total_steps: int, loss_impl: str = "fused"):
    """``per_device_step(state, batch, axis_name) -> (state, metrics)`` for the drivers.

    ``batch`` is :func:`rl_repr.data.text_batches.skipgram_batch`'s dict (this device's
    rows). For ``loss='sgns'``, ``loss_impl='vmap'`` differentiates the sum of
    :func:`sgns_pair_losses` (the library loss vmapped over pairs) and ``'fused'`` the
    same sum written as :func:`sgns_window_loss`, about twice as fast on CPU. Metrics:
    ``loss`` (mean per real pair), ``pairs`` (real pairs in the global batch) and
    ``learning_rate``.
    """
    if loss not in LOSSES:
        raise ValueError(f"loss={loss!r} is not one of {LOSSES}.")
    if loss_impl not in LOSS_IMPLEMENTATIONS:
        raise ValueError(f"loss_impl={loss_impl!r} is not one of {LOSS_IMPLEMENTATIONS}.")
    offsets = [int(o) for o in text_batches.context_offsets(window)]

    def pairwise_loss(center_vecs, output_rows, masks, tokens):
        """Vmapped library losses of every row, summed; ``output_rows``: (halo, noise) or ``U``."""
        def row(center, outputs, mask, row_tokens):
            if loss == "full_softmax":
                per_pair = full_softmax_pair_losses(center, outputs, text_batches.windowed(row_tokens, window))
            else:
                per_pair = sgns_pair_losses(center, text_batches.windowed(outputs[0], window), outputs[1],
                                            negatives_per_pair)
            return jnp.sum(jnp.where(mask, per_pair, 0.0))
        table_axis = None if loss == "full_softmax" else 0
        return jnp.sum(jax.vmap(row, in_axes=(0, table_axis, 0, 0))(center_vecs, output_rows, masks, tokens))

    def per_device_step(state: Word2VecState, batch: dict[str, jax.Array], axis_name: str | None):
        tokens, noise_ids = batch["tokens"], batch["negatives"]
        length = tokens.shape[1] - 2 * window
        centre_ids = tokens[:, window:window + length]
        masks = jax.vmap(text_batches.context_mask, in_axes=(0, 0, None))(
            batch["sentences"], batch["windows"], window)
        # 1. gather only the rows this batch touches (full softmax needs all of U) and
        # 2. differentiate the summed loss with respect to those rows
        center_vecs = state.input_vectors[centre_ids]
        dense_output_grad = None
        if loss == "full_softmax":
            loss_sum, (center_grad, dense_output_grad) = jax.value_and_grad(pairwise_loss, argnums=(0, 1))(
                center_vecs, state.output_vectors, masks, tokens)
            output_updates = []
        elif loss_impl == "fused":
            halo = state.output_vectors[tokens]
            contexts = [halo[:, window + o:window + o + length] for o in offsets]
            fused = functools.partial(sgns_window_loss, negatives_per_pair=negatives_per_pair)
            loss_sum, (center_grad, context_grads, noise_grad) = jax.value_and_grad(fused, argnums=(0, 1, 2))(
                center_vecs, contexts, state.output_vectors[noise_ids], masks)
            # Each offset's gradient goes to its own scatter: no [T + 2W] halo sum to build.
            output_updates = [(tokens[:, window + o:window + o + length], g)
                              for o, g in zip(offsets, context_grads)] + [(noise_ids, noise_grad)]
        else:
            loss_sum, (center_grad, (halo_grad, noise_grad)) = jax.value_and_grad(pairwise_loss, argnums=(0, 1))(
                center_vecs, (state.output_vectors[tokens], state.output_vectors[noise_ids]), masks, tokens)
            output_updates = [(tokens, halo_grad), (noise_ids, noise_grad)]
        input_updates = [(centre_ids, center_grad)]
        pairs = jnp.sum(masks)
        if axis_name is not None:
            # Every device applies every device's row updates: replicas stay identical.
            gather = functools.partial(jax.lax.all_gather, axis_name=axis_name, tiled=True, to="invarying")
            input_updates, output_updates = jax.tree.map(gather, (input_updates, output_updates))
            if dense_output_grad is not None:
                dense_output_grad = jax.lax.psum(dense_output_grad, axis_name)
            loss_sum, pairs = jax.lax.psum((loss_sum, pairs), axis_name)
        # 3. SGD on the summed loss: scatter-add the row gradients
        lr = learning_rate(state.step, alpha=alpha, min_alpha=min_alpha, total_steps=total_steps)
        input_vectors = _scatter_add(state.input_vectors, input_updates, -lr)
        output_vectors = _scatter_add(state.output_vectors, output_updates, -lr)
        if dense_output_grad is not None:
            output_vectors = output_vectors - lr * dense_output_grad
        new_state = state.replace(step=state.step + 1, input_vectors=input_vectors,
                                  output_vectors=output_vectors)
        metrics = {"loss": loss_sum / jnp.maximum(pairs, 1), "pairs": pairs, "learning_rate": lr}
        return new_state, metrics

    return per_device_step


def _scatter_add(table: jax.Array, updates: list[tuple[jax.Array, jax.Array]], scale: jax.Array) -> jax.Array:
    """``table[ids] += scale * grads`` for each ``(ids [...], grads [..., d])``; repeated ids add up."""
    for ids, grads in updates:
        table = table.at[ids.reshape(-1)].add(scale * grads.reshape(-1, table.shape[-1]))
    return table
