"""Representation caching (GradCache; Gao et al. 2021, arXiv:2101.06983): contrastive
batches larger than memory.

A contrastive loss couples every example of the batch, so plain gradient accumulation
(summing gradients of independent micro-batches) changes the loss: the negatives of a
micro-batch would be only its own examples. Representation caching splits the encoder
from the loss instead. With encoder ``z_i = f(theta, x_i)`` and loss ``L(z_1..z_M)``::

    dL/dtheta = sum_i (dL/dz_i)^T  dz_i/dtheta

so the gradient can be formed in three passes over K chunks of the M inputs:

  1. encode every chunk, keeping only its embeddings (no activations: nothing is being
     differentiated yet)                                  -> z       [K, M/K, d]
  2. the loss and its gradient with respect to all z      -> dL/dz   [K, M/K, d]
  3. re-encode chunk k under ``jax.vjp`` and pull ``dL/dz_k`` back to the parameters,
     summing over k (a ``jax.lax.scan``)                  -> dL/dtheta

Peak memory is one chunk's activations plus the ``[M, d]`` embeddings and their gradient,
flat in M (the loss's own ``[M, M]`` similarities stay unless it is blockwise too:
``nt_xent(..., chunk_size=...)``, config ``loss_chunk_size``); the price is one extra
forward pass. Both passes are ``jax.lax.scan`` loops, not unrolled: an unrolled loop lets
XLA schedule every chunk at once, and its memory is then that of the full batch (measured).

The result is the full-batch gradient *exactly* when f treats examples independently
(group, layer or instance norm; no batch norm). Both passes run the encoder in training
mode on the same chunk, so pass 3 differentiates exactly the function pass 1 evaluated.

Speed on CPU: XLA:CPU lowers JAX's convolution gradients inside a loop body to a generic
loop nest (outside loops it rewrites them for its convolution library), so with them a
cached ResNet step ran ~10x slower than a plain one. The SimCLR trainer therefore writes the
convolution gradients out as plain convolutions when caching on a CPU
(``model.explicit_conv_gradients``, ``rl_repr/models/explicit_gradient_conv.py``), which
brings a cached step back to about a plain step's time (``benchmarks/results/large_batch-cpu.json``).
Accelerators were not measured here.

**With batch norm** f depends on the batch, and three things differ from the full batch:

* the forward: each chunk is normalised by the mean and variance of its own M/K inputs
  (over every device's share of that chunk under a global batch norm), not of all M;
* the gradient: it is the exact gradient of *that* per-chunk-normalised loss; the terms
  through which one chunk's statistics depend on the other chunks' inputs are absent;
* the running statistics: the per-chunk updates are averaged over the K chunks, so
  the running mean moves exactly as with the full batch (the mean of equal-sized chunk
  means is the batch mean), while the running variance moves toward the *mean
  within-chunk* variance, which lacks the between-chunk spread of the chunk means.

Two-view layout (``two_view_value_and_grad``): chunk c holds the first view of examples
j = c (mod K) and the second view of examples j = c + 1 (mod K), interleaved. So for K > 1
no positive pair shares a chunk, and with batch norm a pair can never recognise itself
through shared batch statistics (the leak SimCLR's global batch norm and MoCo's shuffled
batch norm exist to stop); for K = 1 the chunk is the full batch. The chunks are strided
(row i*K + c) rather than contiguous so that, under ``jax.jit`` with the batch sharded
along its first axis, every chunk is spread over all devices instead of living on a few
(the reshapes keep the sharded axis leading; the layout was checked for correctness on
8 CPU devices, its communication was not profiled on a pod).
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

Array = jax.Array
Params = Any
# embed_fn(params, inputs [m, ...]) -> (embeddings [m, d], aux): aux is anything the
# caller wants back per chunk, such as updated batch norm statistics.
EmbedFn = Callable[[Params, Array], tuple[Array, Any]]


def cached_value_and_grad(embed_fn: EmbedFn, loss_fn: Callable[[Array], Array], params: Params,
                          chunks: Array) -> tuple[Array, Any, Params]:
    """Loss and parameter gradient of ``loss_fn(embed_fn(params, chunks))``, chunk by chunk.

    The three passes of the module docstring: ``z_k, aux_k = embed_fn(params, chunks[k])``
    for every k without keeping activations; ``L, dL/dz = value_and_grad(loss_fn)(z)``;
    then ``sum_k vjp(embed_fn(., chunks[k]), params)(dL/dz_k)``. Inside a per-device
    program (``jax.shard_map``/``jax.pmap``) ``loss_fn`` may gather across devices and
    ``embed_fn`` may hold collectives (global batch norm): the result is then this
    device's share of the gradient, exactly as ``jax.value_and_grad`` would give it.

    Args:
      embed_fn: ``(params, inputs [m, ...]) -> (embeddings [m, d], aux)``; must be
        deterministic (it runs twice per chunk and both runs must agree).
      loss_fn: ``embeddings [K, m, d] -> scalar``, the loss of all embeddings at once.
      params: the pytree to differentiate.
      chunks: ``[K, m, ...]``, the batch split into K chunks of m inputs.

    Returns:
      ``(loss, aux, grads)``: the scalar loss, each chunk's aux stacked on a leading K
      axis, and the gradient (same tree as ``params``).
    """
    if chunks.ndim < 2:
        raise ValueError(f"chunks has shape {chunks.shape}; pass [num_chunks, chunk_size, ...].")

    def encode(_, chunk):  # pass 1: a forward pass per chunk; nothing is saved for backward
        return None, embed_fn(params, chunk)

    _, (embeddings, aux) = jax.lax.scan(encode, None, chunks)
    loss, embedding_grads = jax.value_and_grad(loss_fn)(embeddings)

    def backprop(grads, chunk_and_cotangent):  # pass 3: only this chunk's activations live
        chunk, cotangent = chunk_and_cotangent
        _, pullback, _ = jax.vjp(lambda p: embed_fn(p, chunk), params, has_aux=True)
        (chunk_grads,) = pullback(cotangent)
        return jax.tree.map(jnp.add, grads, chunk_grads), None

    zeros = jax.tree.map(jnp.zeros_like, params)
    grads, _ = jax.lax.scan(backprop, zeros, (chunks, embedding_grads))
    return loss, aux, grads


def two_view_chunks(views1: Array, views2: Array, num_chunks: int) -> Array:
    """``[n, ...]`` first and second views -> ``[K, 2n/K, ...]`` chunks (module docstring).

    Row ``2i`` of chunk c is ``views1[i*K + c]``; row ``2i + 1`` is ``views2[(i*K + c + 1) % n]``.
    Inverse: :func:`two_view_unchunk`.
    """
    if views1.shape != views2.shape:
        raise ValueError(f"views1 {views1.shape} and views2 {views2.shape} must have the same shape.")
    n = views1.shape[0]
    if num_chunks < 1 or n % num_chunks:
        raise ValueError(f"num_chunks={num_chunks} must divide the {n} examples of the (per-device) "
                         "batch; pick a divisor of the per-device batch size.")
    k, rest = num_chunks, views1.shape[1:]
    first = views1.reshape(n // k, k, *rest)
    second = jnp.roll(views2, -1, axis=0).reshape(n // k, k, *rest)
    pairs = jnp.stack([first, second], axis=2)                         # [n/K, K, 2, ...]
    return jnp.moveaxis(pairs, 1, 0).reshape(k, 2 * (n // k), *rest)


def two_view_unchunk(chunked: Array, num_chunks: int) -> tuple[Array, Array]:
    """``[K, 2n/K, ...]`` (as laid out by :func:`two_view_chunks`) -> ``([n, ...], [n, ...])``."""
    k = num_chunks
    if chunked.ndim < 2 or chunked.shape[0] != k or chunked.shape[1] % 2:
        raise ValueError(f"chunked has shape {chunked.shape}; expected [{k}, 2n/{k}, ...].")
    per_chunk, rest = chunked.shape[1] // 2, chunked.shape[2:]
    pairs = jnp.moveaxis(chunked.reshape(k, per_chunk, 2, *rest), 0, 1)   # [n/K, K, 2, ...]
    n = per_chunk * k
    first = pairs[:, :, 0].reshape(n, *rest)
    second = jnp.roll(pairs[:, :, 1].reshape(n, *rest), 1, axis=0)
    return first, second


def two_view_value_and_grad(embed_fn: EmbedFn, pair_loss_fn: Callable[[Array, Array], Array],
                            params: Params, views1: Array, views2: Array,
                            num_chunks: int) -> tuple[Array, Any, Params]:
    """A two-view contrastive loss and its gradient with the 2n views encoded in K chunks.

    Computes ``pair_loss_fn(f(views1), f(views2))`` and its gradient with respect to
    ``params`` through :func:`cached_value_and_grad`, with the chunk layout of the module
    docstring (no positive pair in one chunk when K > 1). The full-batch gradient exactly
    when ``embed_fn`` has no batch-dependent layer; see the module docstring for batch norm.

    Args:
      embed_fn: ``(params, inputs [2n/K, ...]) -> (embeddings [2n/K, d], aux)``.
      pair_loss_fn: ``(z1 [n, d], z2 [n, d]) -> scalar``, row k of z1 pairing with row k of
        z2 (e.g. ``rl_repr.losses.nt_xent`` with its temperature and ``axis_name``).
      params: the pytree to differentiate.
      views1, views2: ``[n, ...]`` the two views (this device's rows in a per-device program).
      num_chunks: K, a divisor of n.

    Returns:
      ``(loss, aux, grads)`` where aux is the *mean* of the chunks' aux over the K chunks
      (for batch norm statistics: the averaged running-statistics update).
    """
    chunks = two_view_chunks(views1, views2, num_chunks)

    def loss_of_chunks(embeddings):
        return pair_loss_fn(*two_view_unchunk(embeddings, num_chunks))

    loss, aux, grads = cached_value_and_grad(embed_fn, loss_of_chunks, params, chunks)
    return loss, jax.tree.map(lambda a: jnp.mean(a, axis=0), aux), grads
