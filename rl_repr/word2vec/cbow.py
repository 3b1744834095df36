"""CBOW: the mean of a word's window predicts the word (Mikolov et al. 2013, arXiv:1301.3781).

The "window on both sides" context of the word-embedding lecture: for target ``t`` with the
context words ``C_t`` of its dynamic window (the same windows, subsampling and noise words as
skip-gram, :mod:`rl_repr.data.text.batches`),

    h_t = (1 / |C_t|) sum_{c in C_t} e_c                         (gensim's default cbow_mean=1)
    l_t = -log sigma(w_t . h_t) - sum_{k=1}^{K} log sigma(-w_{n_k} . h_t),   n_k ~ P_n

and SGD on the summed loss of a batch, with word2vec.c's and gensim's update of the inputs:
every context vector ``e_c`` moves by the whole gradient with respect to the mean,
``dl/dh = sum_j g_j o_j``, not by its ``1/|C_t|`` share (``g_0 = sigma(x_0) - 1`` for the target,
``g_k = sigma(x_k)`` for noise word ``k``, ``x_j = o_j . h``); the output vectors move by
``dl/do_j = g_j h``. One target is one example, so a batch of ``T`` targets is ``T`` examples
(skip-gram makes ``~T (window + 1)`` pairs of the same positions): CBOW does less work per word.

The batch is skip-gram's, with ``negative_sharing='window'`` (``K`` noise words per target); the
contexts are re-indexed into each target's window slots (:mod:`rl_repr.word2vec.slots`).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from rl_repr.word2vec.slots import from_window_slots, to_window_slots
from rl_repr.word2vec.step import Word2VecState, _check_batch, _scatter_add


def cbow_gradients(context_vecs: jax.Array, mask: jax.Array, output_vecs: jax.Array):
    """CBOW's summed loss and word2vec's updates, in closed form (module docstring).

    Args:
      context_vecs: ``e_c``, ``[R, T, S, d]``: each target's ``S = 2 W`` context slots.
      mask: ``[R, T, S]`` bool, the real contexts.
      output_vecs: ``[R, T, 1 + K, d]``: the target's output vector, then its ``K`` noise vectors.

    Returns:
      ``(loss_sum, examples, d_context [R, T, S, d], d_output [R, T, 1 + K, d])``: the loss summed
      over targets with at least one context (``examples`` of them), ``dl/dh`` in every real
      context slot (zero elsewhere) and ``dl/do_j``.
    """
    weight = mask.astype(context_vecs.dtype)
    count = jnp.sum(weight, axis=-1)                                              # [R, T]
    active = (count > 0).astype(context_vecs.dtype)
    mean = jnp.einsum("rts,rtsd->rtd", weight, context_vecs) / jnp.maximum(count, 1.0)[..., None]
    scores = jnp.einsum("rtd,rtjd->rtj", mean, output_vecs)
    is_target = jnp.arange(output_vecs.shape[2]) == 0
    per_target = -jnp.sum(jax.nn.log_sigmoid(jnp.where(is_target, scores, -scores)), axis=-1)
    grad_scores = active[..., None] * (jax.nn.sigmoid(scores) - is_target)       # [R, T, 1 + K]
    d_mean = jnp.einsum("rtj,rtjd->rtd", grad_scores, output_vecs)
    d_output = grad_scores[..., None] * mean[..., None, :]
    d_context = weight[..., None] * d_mean[:, :, None, :]
    return jnp.sum(active * per_target), jnp.sum(active), d_context, d_output


def make_cbow_update(*, window: int):
    """``update(state, batch, axis_name) -> (state, (loss_sum, examples, lr))``: one SGD update.

    ``batch``: this device's rows of a skip-gram batch with ``negatives [R, T, K]`` and
    ``learning_rate [R]`` (``rl_repr.word2vec.step.learning_rates``). Under a per-device driver the
    row updates of every device are all-gathered and applied everywhere (the replicas stay equal:
    synchronous SGD on the global batch, ``table_sync='update'``); ``loss_sum`` and ``examples``
    are totals over every device's rows.
    """
    def update(state: Word2VecState, batch: dict[str, jax.Array], axis_name: str | None):
        _check_batch(batch, window)
        targets, noise_ids = batch["targets"], batch["negatives"]
        if noise_ids.ndim != 3 or noise_ids.shape[1] != targets.shape[1]:
            raise ValueError(f"CBOW needs K noise words per target, negatives [R, T, K]; got {noise_ids.shape}: "
                             "set negative_sharing='window'.")
        length = targets.shape[1]
        contexts = to_window_slots(batch["contexts"], window, length, 0)
        mask = to_window_slots(batch["pair_mask"], window, length, False)
        output_ids = jnp.concatenate([targets[..., None], noise_ids], axis=-1)        # [R, T, 1 + K]
        loss_sum, examples, d_context, d_output = cbow_gradients(
            state.input_vectors[contexts], mask, state.output_vectors[output_ids])
        updates = ([(batch["contexts"], from_window_slots(d_context, window, length))], [(output_ids, d_output)])
        if axis_name is not None:  # every device applies every device's row updates
            gather = functools.partial(jax.lax.all_gather, axis_name=axis_name, tiled=True, to="invarying")
            updates = jax.tree.map(gather, updates)
            loss_sum, examples = jax.lax.psum((loss_sum, examples), axis_name)
        lr = batch["learning_rate"][0]
        new_state = state.replace(step=state.step + 1,
                                  input_vectors=_scatter_add(state.input_vectors, updates[0], -lr),
                                  output_vectors=_scatter_add(state.output_vectors, updates[1], -lr))
        return new_state, (loss_sum, examples, lr)

    return update
