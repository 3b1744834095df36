"""Skip-gram losses for word2vec (Mikolov et al. 2013).

Skip-gram keeps two tables: *input* vectors ``v`` for centre words and
*output* vectors ``u`` for context words. For a centre word ``c`` and an
observed context word ``o``:

* full softmax: ``-log p(o | c)`` with
  ``p(o | c) = exp(u_o . v_c + b_o) / sum_{j=1}^{V} exp(u_j . v_c + b_j)``;
* negative sampling (SGNS, Mikolov et al. 2013, "Distributed Representations
  of Words and Phrases and their Compositionality", arXiv:1310.4546): the
  binary problem "is (c, o) a real pair?" against ``K`` sampled noise words::

    l(c, o, n_1..n_K) = -log sigma(u_o . v_c) - sum_{k=1}^{K} log sigma(-u_{n_k} . v_c)

  (``p(y = 1 | t, c) = sigma(w_t^T e_c + b_t)``, without the bias,
  as in the paper). ``K`` is 5-20 for small corpora, 2-5 for large ones.

Every ``log sigma`` is ``jax.nn.log_sigmoid``, which stays finite for large
scores where ``log(sigmoid(x))`` would round to ``log 0``. The negatives' loss
is a *sum* over ``K`` (as in the paper), the batch reduction a *mean*.

The caller looks vectors up (``v = in_table[center_ids]``); these functions
take the vectors, so the gradient reaches only the rows that were used.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = [
    "sgns_loss",
    "sgns_loss_batch",
    "sgns_loss_shared_negatives",
    "skipgram_negative_sampling_loss",
    "skipgram_full_softmax_loss",
]

Array = jax.Array


def _shape_error(fn: str, what: str, got: tuple, want: str) -> ValueError:
    """One-sentence shape error: ``fn: <what> <got>; pass <want>.``"""
    return ValueError(f"{fn}: {what} {got}; pass {want}.")


def sgns_loss(center: Array, context: Array, negatives: Array) -> Array:
    """Skip-gram negative-sampling loss for one (centre, context, negatives) example.

    ``l = -log sigma(u_o . v_c) - sum_k log sigma(-u_k . v_c)``

    Args:
      center: ``v_c``, input vector of the centre word, shape ``[d]``.
      context: ``u_o``, output vector of the observed context word, ``[d]``.
      negatives: ``u_k``, output vectors of the ``K`` noise words, ``[K, d]``.

    Returns:
      Scalar (the sum over the ``K`` negatives, no averaging).

    Example::

      l = sgns_loss(v_in[c], u_out[o], u_out[noise_ids])
    """
    if jnp.ndim(center) != 1 or jnp.shape(context) != jnp.shape(center):
        raise _shape_error("sgns_loss", "center and context have shapes",
                           (jnp.shape(center), jnp.shape(context)),
                           "shape [d] for both (use sgns_loss_batch for a batch)")
    if jnp.ndim(negatives) != 2 or jnp.shape(negatives)[1] != jnp.shape(center)[0]:
        raise _shape_error("sgns_loss", "negatives has shape", jnp.shape(negatives),
                           f"shape [K, {jnp.shape(center)[0]}]")
    positive_score = jnp.dot(context, center)
    negative_scores = negatives @ center
    return -jax.nn.log_sigmoid(positive_score) - jnp.sum(jax.nn.log_sigmoid(-negative_scores))


def sgns_loss_batch(centers: Array, contexts: Array, negatives: Array) -> Array:
    """:func:`sgns_loss` vmapped over a batch, averaged over the batch.

    ``L = (1/B) sum_i l(v_{c_i}, u_{o_i}, u_{n_i1..n_iK})``, each example with its
    own ``K`` negatives.

    Args:
      centers: ``[B, d]``.
      contexts: ``[B, d]``.
      negatives: ``[B, K, d]``.

    Returns:
      Scalar: the mean over ``B`` of the per-example losses.

    Example::

      loss = sgns_loss_batch(v_in[c], u_out[o], u_out[noise])   # noise: [B, K] ids
    """
    if jnp.ndim(centers) != 2 or jnp.shape(contexts) != jnp.shape(centers):
        raise _shape_error("sgns_loss_batch", "centers and contexts have shapes",
                           (jnp.shape(centers), jnp.shape(contexts)), "shape [B, d] for both")
    if jnp.ndim(negatives) != 3 or (
        jnp.shape(negatives)[0], jnp.shape(negatives)[2]) != jnp.shape(centers):
        batch, dim = jnp.shape(centers)
        raise _shape_error("sgns_loss_batch", "negatives has shape", jnp.shape(negatives),
                           f"shape [{batch}, K, {dim}] (use sgns_loss_shared_negatives for [K, d])")
    return jnp.mean(jax.vmap(sgns_loss)(centers, contexts, negatives))


def sgns_loss_shared_negatives(centers: Array, contexts: Array, negatives: Array) -> Array:
    """SGNS loss with one set of ``K`` negatives shared by the whole minibatch.

    ``L = (1/B) sum_i [ -log sigma(u_{o_i} . v_{c_i}) - sum_k log sigma(-u_k . v_{c_i}) ]``

    Sharing the noise words turns the negative scores into one ``[B, d] x [d, K]``
    matmul instead of ``B`` small ones, and the ``K`` output rows are gathered
    once; each example's loss is the same formula as :func:`sgns_loss`, only the
    negatives are correlated across the batch.

    Args:
      centers: ``[B, d]``.
      contexts: ``[B, d]``.
      negatives: ``[K, d]``, shared by every example.

    Returns:
      Scalar: the mean over ``B``.

    Example::

      loss = sgns_loss_shared_negatives(v_in[c], u_out[o], u_out[noise])  # noise: [K] ids
    """
    if jnp.ndim(centers) != 2 or jnp.shape(contexts) != jnp.shape(centers):
        raise _shape_error("sgns_loss_shared_negatives", "centers and contexts have shapes",
                           (jnp.shape(centers), jnp.shape(contexts)), "shape [B, d] for both")
    if jnp.ndim(negatives) != 2 or jnp.shape(negatives)[1] != jnp.shape(centers)[1]:
        raise _shape_error("sgns_loss_shared_negatives", "negatives has shape",
                           jnp.shape(negatives), f"shape [K, {jnp.shape(centers)[1]}]")
    positive_scores = jnp.sum(centers * contexts, axis=-1)
    negative_scores = centers @ negatives.T  # [B, K]
    per_example = -jax.nn.log_sigmoid(positive_scores) - jnp.sum(
        jax.nn.log_sigmoid(-negative_scores), axis=-1
    )
    return jnp.mean(per_example)


def skipgram_negative_sampling_loss(
    center_vectors_in: Array, context_vectors_out: Array, negative_vectors_out: Array
) -> Array:
    """SGNS loss; the shapes pick the form.

    ================  ================  ==================  ===================================
    center            context           negatives           computes
    ================  ================  ==================  ===================================
    ``[d]``           ``[d]``           ``[K, d]``          :func:`sgns_loss` (one example)
    ``[B, d]``        ``[B, d]``        ``[B, K, d]``       :func:`sgns_loss_batch` (mean)
    ``[B, d]``        ``[B, d]``        ``[K, d]``          :func:`sgns_loss_shared_negatives`
    ================  ================  ==================  ===================================

    Example::

      loss = skipgram_negative_sampling_loss(v_in[c], u_out[o], u_out[noise])
    """
    if jnp.ndim(center_vectors_in) == 1:
        return sgns_loss(center_vectors_in, context_vectors_out, negative_vectors_out)
    if jnp.ndim(negative_vectors_out) == 2:
        return sgns_loss_shared_negatives(
            center_vectors_in, context_vectors_out, negative_vectors_out
        )
    return sgns_loss_batch(center_vectors_in, context_vectors_out, negative_vectors_out)


def skipgram_full_softmax_loss(
    center_vectors_in: Array,
    output_table: Array,
    context_ids: Array,
    output_bias: Array | None = None,
) -> Array:
    """Full-softmax skip-gram loss: cross-entropy over the whole vocabulary.

    ``L = (1/B) sum_i [ logsumexp_j (u_j . v_{c_i} + b_j) - (u_{o_i} . v_{c_i} + b_{o_i}) ]``

    (``p(t | c) = exp(w_t^T e_c + b_t) / sum_j exp(w_j^T e_c + b_j)``).
    Costs ``O(B V d)``; it is the reference that negative sampling approximates.

    Args:
      center_vectors_in: ``v_c``, ``[B, d]``.
      output_table: every output vector ``u_j``, ``[V, d]``.
      context_ids: ``[B]`` integer ids ``o_i`` in ``[0, V)``.
      output_bias: optional ``[V]`` biases ``b_j``; none by default.

    Returns:
      Scalar: the mean cross-entropy over ``B``.

    Example::

      loss = skipgram_full_softmax_loss(v_in[c], u_out, o)
    """
    if jnp.ndim(center_vectors_in) != 2:
        raise _shape_error("skipgram_full_softmax_loss", "center_vectors_in has shape",
                           jnp.shape(center_vectors_in), "shape [B, d]")
    batch, dim = jnp.shape(center_vectors_in)
    if jnp.ndim(output_table) != 2 or jnp.shape(output_table)[1] != dim:
        raise _shape_error("skipgram_full_softmax_loss", "output_table has shape",
                           jnp.shape(output_table), f"shape [V, {dim}]")
    if jnp.shape(context_ids) != (batch,):
        raise _shape_error("skipgram_full_softmax_loss", "context_ids has shape",
                           jnp.shape(context_ids), f"shape [{batch}], one integer id per centre")
    vocab = jnp.shape(output_table)[0]
    if output_bias is not None and jnp.shape(output_bias) != (vocab,):
        raise _shape_error("skipgram_full_softmax_loss", "output_bias has shape",
                           jnp.shape(output_bias), f"shape [{vocab}]")
    logits = center_vectors_in @ output_table.T  # [B, V]
    if output_bias is not None:
        logits = logits + output_bias
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    picked = jnp.take_along_axis(log_probs, context_ids[:, None].astype(jnp.int32), axis=-1)
    return -jnp.mean(picked)
