"""Contrastive losses: SimCLR's NT-Xent and MoCo's InfoNCE with a key queue.

Both are built on matrix products (no ``[B, B, d]`` broadcast) and both can run
per device inside ``jax.shard_map`` or ``jax.pmap`` with ``axis_name``: the
*embeddings* are gathered from every device (never a similarity matrix) and the
value on every device is the loss of the whole global batch.

Gradients under ``axis_name``
-----------------------------
The returned scalar is the global loss on every device, and differentiating it
on a device gives d(global loss)/d(that device's inputs): the full gradient of
its shard, including the terms that reach it through the other devices' rows.
So the per-device gradients of the sharded inputs, concatenated in device
order, equal the single-device gradients on the concatenated batch.

* ``jax.shard_map`` (default ``check_vma=True``): works both with ``jax.grad``
  inside the mapped function and with ``jax.grad`` of a mapped function that
  returns the scalar with ``out_specs=P()``. Gradients of replicated
  parameters (``in_specs=P()``) come out already summed over devices by JAX,
  i.e. they are the global gradient (a ``pmean`` of them is a no-op there; a
  ``psum`` would multiply them by the number of devices).
* ``jax.pmap`` and ``shard_map(check_vma=False)``: take the gradient inside
  the mapped function. Each device's gradient of *replicated parameters* is
  then that device's share of the global gradient, so combine them with
  ``jax.lax.psum`` -- not ``pmean``, which would scale the update by
  1/num_devices.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from rl_repr.losses._chunked_logsumexp import masked_row_logsumexp

__all__ = ["nt_xent", "info_nce", "update_queue", "update_queue_at_pointer"]

# tf.math.l2_normalize's epsilon, which the official SimCLR code relies on.
_L2_EPSILON = 1e-12


def _l2_normalize(x: Array) -> Array:
    """x / max(||x||, 1e-6) row-wise, as ``tf.math.l2_normalize(x, -1)``."""
    squared_norm = jnp.sum(x * x, axis=-1, keepdims=True)
    return x * jax.lax.rsqrt(jnp.maximum(squared_norm, _L2_EPSILON))


def _compute_dtype(*arrays: Array) -> jnp.dtype:
    """float32 for bf16/f16/f32 inputs (float64 stays float64 under x64)."""
    return jnp.result_type(jnp.float32, *(a.dtype for a in arrays))


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _global_sum(local: Array, axis_name: str) -> Array:
    """``psum(local)`` whose cotangent on each device is the output's, unchanged.

    The sum is the same global loss on every device, so its cotangent is that
    loss's cotangent; passing it through unchanged gives every device
    d(global)/d(local). This matches ``psum`` under a type-checked shard_map,
    and under ``pmap`` it undoes psum's default transpose (another psum), which
    would multiply every gradient by the number of devices.
    """
    return jax.lax.psum(local, axis_name)


def _global_sum_fwd(local, axis_name):
    return jax.lax.psum(local, axis_name), None


def _global_sum_bwd(axis_name, _, cotangent):
    # Under shard_map(check_vma=True) the local input is device-varying and
    # the cotangent replicated; pcast marks it varying (a no-op elsewhere).
    return (jax.lax.pcast(cotangent, axis_name, to="varying"),)


_global_sum.defvjp(_global_sum_fwd, _global_sum_bwd)


def _check_embeddings(name: str, x: Array) -> None:
    if jnp.ndim(x) != 2 or not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"{name} must be a floating [batch, dim] array, got {x.dtype} with "
                         f"shape {jnp.shape(x)}; flatten the embeddings to two axes.")


def _check_temperature(temperature: float | Array) -> None:
    """A Python number or a concrete array must be > 0; a traced one (under ``jit`` or ``grad``)
    cannot be checked and a non-positive value gives NaN or infinity (documented behaviour)."""
    if isinstance(temperature, jax.core.Tracer):
        return
    value = np.asarray(temperature)
    if value.ndim != 0 or not np.issubdtype(value.dtype, np.number) or not value > 0:
        raise ValueError(f"temperature must be positive (a scalar > 0), got {temperature!r}; "
                         "SimCLR uses 0.1-0.5, MoCo 0.07-0.2.")


def nt_xent(z1: Array, z2: Array, temperature: float = 0.5, *,
            axis_name: str | None = None, chunk_size: int | None = None) -> Array:
    r"""SimCLR's NT-Xent loss L for two views of a batch (Chen et al. 2020, eq. 1).

    With the 2N views z_1..z_2N (views of example k at 2k-1 and 2k),
    s_ij = z_i.z_j / (|z_i| |z_j|) and temperature tau::

        l(i, j) = -log( exp(s_ij / tau) / sum_{k != i} exp(s_ik / tau) )
        L       = 1/(2N) sum_k [ l(2k-1, 2k) + l(2k, 2k-1) ]

    i.e. cross-entropy of each view against its partner among the other 2N - 1
    views, averaged over both directions and all 2N views. Computed as
    ``mean_i logsumexp_{k != i}(s_ik / tau) - 2/(2N) sum_k s_{2k-1, 2k} / tau``:
    one ``[2n, 2N]`` matmul for the log-sum-exp (self-pairs set to -1e9) and a
    row-wise dot product for the positives.

    Relation to the peers (both checked numerically in tests/test_contrastive.py):

    * google-research/simclr ``add_contrastive_loss`` returns
      ``loss_a + loss_b``, each a *mean* over the N examples of one direction,
      i.e. **2 L**. Its l2_normalize epsilon (1e-12 on the squared norm) and
      LARGE_NUM self-mask are reproduced here, so ``2 * nt_xent == official``.
    * ``optax.ntxent(jnp.concatenate([z1, z2]), jnp.concatenate([arange(N),
      arange(N)]), temperature)`` averages l(i, j) over its 2N positive pairs,
      i.e. it equals **L** (to float32 rounding) -- but it broadcasts a
      ``[2N, 2N, d]`` array and cannot gather negatives across devices.

    Args:
      z1: [n, d] projections of the first views (n local examples per device).
      z2: [n, d] projections of the second views, row k pairing with z1[k].
        Any floating dtype; normalisation and the loss run in float32 (float64
        stays float64), and gradients come back in the input dtype.
      temperature: tau > 0 (SimCLR: 0.5 for CIFAR-10, 0.1 for ImageNet). A number or a
        concrete array <= 0 is an error; a traced one (under ``jit``) is not checked, and a
        non-positive value then gives NaN or infinity.
      axis_name: inside ``jax.shard_map``/``jax.pmap``, the batch axis. The
        normalised views are all-gathered (``[2N, d]``, N = n x devices), each
        device takes the log-sum-exp of its own 2n rows over all 2N columns,
        masking its self-pairs by its ``axis_index`` offset, and the local
        sums are psum'ed: every device returns the global L, equal in value
        and gradient to ``nt_xent`` on the concatenated batch (see the module
        docstring for gradients of replicated parameters). Not needed under
        plain ``jax.jit`` with batch-sharded inputs: that is the same global
        computation, partitioned by XLA.
      chunk_size: ``None`` for the dense form (fastest while ``[2n, 2N]``
        float32 fits). Otherwise the number of similarity columns per block:
        columns are processed in blocks with a running log-sum-exp and the
        backward recomputes each block (custom VJP), so peak memory is about
        ``2n x chunk_size`` floats instead of ``2n x 2N``. 2N need not be a
        multiple of it (the last block is zero-padded and the padding masked).
        Same value and gradient as the dense form; combines with ``axis_name``.

    Returns:
      Scalar float32 (float64 for float64 inputs): L, the mean over 2N views.

    Example::

      loss, (g1, g2) = jax.value_and_grad(nt_xent, argnums=(0, 1))(z1, z2, 0.5)
    """
    _check_embeddings("z1", z1)
    _check_embeddings("z2", z2)
    if z1.shape != z2.shape:
        raise ValueError(f"z1 and z2 must have the same shape [n, d], got {z1.shape} and "
                         f"{z2.shape}; pass the two augmented views of the same batch.")
    if z1.shape[0] == 0:
        raise ValueError("nt_xent got an empty batch (z1 and z2 have 0 rows); pass at least one pair of views.")
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"chunk_size must be None or a positive int, got {chunk_size!r}.")
    _check_temperature(temperature)

    dtype = _compute_dtype(z1, z2)
    z1 = _l2_normalize(z1.astype(dtype))
    z2 = _l2_normalize(z2.astype(dtype))
    local_views = jnp.concatenate([z1, z2], axis=0)  # [2n, d]
    num_local_views = local_views.shape[0]
    if axis_name is None:
        all_views, first_local_view = local_views, 0
    else:
        # Device-major order [z1_0; z2_0; z1_1; z2_1; ...]: the order of the
        # columns does not change a log-sum-exp, and one gather beats two.
        all_views = jax.lax.all_gather(local_views, axis_name, tiled=True)  # [2N, d]
        first_local_view = jax.lax.axis_index(axis_name) * num_local_views
    self_column = first_local_view + jnp.arange(num_local_views)

    logsumexp_negatives = masked_row_logsumexp(
        local_views / temperature, all_views, self_column, chunk_size)
    positive_logits = jnp.sum(z1 * z2, axis=-1) / temperature  # [n]
    # Each positive pair appears in two rows (i -> partner and partner -> i).
    local_sum = jnp.sum(logsumexp_negatives) - 2.0 * jnp.sum(positive_logits)
    if axis_name is not None:
        local_sum = _global_sum(local_sum, axis_name)
    return local_sum / all_views.shape[0]


def info_nce(query: Array, positive_key: Array, negative_keys: Array,
             temperature: float = 0.07, *, normalize: bool = True,
             axis_name: str | None = None) -> Array:
    r"""InfoNCE with explicit negatives, as in MoCo (He et al. 2020, eq. 1, Algorithm 1).

    For query q_i, its key k_i^+ and the K shared negatives k_j (MoCo's queue)::

        logits_i = [q_i . k_i^+, q_i . k_1, ..., q_i . k_K] / tau     # [1 + K]
        L        = 1/N sum_i ( logsumexp(logits_i) - logits_i[0] )

    (cross-entropy with label 0), computed with one ``[N, K]`` matmul.

    Args:
      query: [N, d] query embeddings (gradients flow here).
      positive_key: [N, d] keys, row i pairing with query i. MoCo's keys come
        from the momentum encoder and carry no gradient: wrap them in
        ``jax.lax.stop_gradient`` (this function does not, so it also serves
        as the general form where both sides train).
      negative_keys: [K, d] negatives shared by all queries (the queue, see
        ``update_queue``), identical on every device.
      temperature: tau > 0 (MoCo v1 0.07, v2 0.2).
      normalize: L2-normalise query, keys and negatives first (MoCo feeds
        normalised vectors). Pass False when the inputs are already unit
        vectors or the logits are meant to be raw dot products.
      axis_name: inside ``jax.shard_map``/``jax.pmap`` with the query and
        positive keys split over this axis: returns the mean over the global
        batch (equal local batches), with value and gradient equal to the
        single-device loss on the concatenated batch.

    Returns:
      Scalar float32 (float64 for float64 inputs).
    """
    for name, x in (("query", query), ("positive_key", positive_key),
                    ("negative_keys", negative_keys)):
        _check_embeddings(name, x)
    if positive_key.shape != query.shape:
        raise ValueError(f"positive_key must have the query's shape {query.shape}, got "
                         f"{positive_key.shape}; pass one key per query.")
    if negative_keys.shape[1] != query.shape[1]:
        raise ValueError(f"negative_keys must be [K, {query.shape[1]}] like the query, got "
                         f"{negative_keys.shape}; the queue must hold keys of the same width.")
    _check_temperature(temperature)

    dtype = _compute_dtype(query, positive_key, negative_keys)
    query, positive_key, negative_keys = (
        x.astype(dtype) for x in (query, positive_key, negative_keys))
    if normalize:
        query, positive_key, negative_keys = map(
            _l2_normalize, (query, positive_key, negative_keys))
    positive_logit = jnp.sum(query * positive_key, axis=-1) / temperature  # [N]
    negative_logits = query @ negative_keys.T / temperature  # [N, K]
    logits = jnp.concatenate([positive_logit[:, None], negative_logits], axis=1)
    local_sum = jnp.sum(jax.nn.logsumexp(logits, axis=1) - positive_logit)
    count = query.shape[0]
    if axis_name is not None:
        local_sum = _global_sum(local_sum, axis_name)
        count = count * jax.lax.axis_size(axis_name)
    return local_sum / count


def _gather_new_keys(queue: Array, keys: Array, axis_name: str | None) -> Array:
    """Checks shapes; returns the global batch of keys in device order, no gradient."""
    _check_embeddings("queue", queue)
    _check_embeddings("keys", keys)
    if keys.shape[1] != queue.shape[1]:
        raise ValueError(f"keys must be [batch, {queue.shape[1]}] like the queue, got "
                         f"{keys.shape}; enqueue keys of the queue's width.")
    keys = jax.lax.stop_gradient(keys).astype(queue.dtype)
    if axis_name is not None:
        # Identical on every device, hence gathered as replicated ('invarying').
        keys = jax.lax.all_gather(keys, axis_name, tiled=True, to="invarying")
    if queue.shape[0] % keys.shape[0]:
        raise ValueError(
            f"queue length K={queue.shape[0]} is not a multiple of the global batch "
            f"B={keys.shape[0]}; choose K as a multiple of B "
            f"(e.g. K={max(1, queue.shape[0] // keys.shape[0]) * keys.shape[0]}).")
    return keys


def update_queue(queue: Array, keys: Array, *, axis_name: str | None = None) -> Array:
    """MoCo's FIFO of negative keys, pointer-free: drop the oldest B rows, append the newest.

    ``new_queue = concatenate([queue[B:], keys])``: the **last** B rows are the
    newest keys and row 0 is the oldest. After K/B steps every key has been
    replaced, which is why K must be a multiple of the global batch B (MoCo
    uses K = 65536). Copies K x d per step; ``update_queue_at_pointer`` writes
    only B x d.

    Args:
      queue: [K, d] keys, identical on every device.
      keys: [n, d] this step's keys (from the momentum encoder); no gradient
        flows into the queue.
      axis_name: inside ``jax.shard_map``/``jax.pmap``, the batch axis: the
        keys of all devices are gathered in device order (B = n x devices)
        before they are enqueued, so every device keeps the same queue.

    Returns:
      [K, d] the updated queue, in the queue's dtype.

    Raises:
      ValueError: if K is not a multiple of the global batch B.
    """
    keys = _gather_new_keys(queue, keys, axis_name)
    return jnp.concatenate([queue[keys.shape[0]:], keys], axis=0)


def update_queue_at_pointer(queue: Array, pointer: Array, keys: Array, *,
                            axis_name: str | None = None) -> tuple[Array, Array]:
    """MoCo's ring-buffer queue: write the keys at ``pointer``, advance it by B mod K.

    As MoCo's reference code: ``queue[ptr:ptr + B] = keys; ptr = (ptr + B) % K``.
    The oldest keys are the ones overwritten; the row order is not the age
    order (irrelevant to InfoNCE, which uses the queue as a set). Writes only
    B x d, so with a donated queue under jit it updates in place.

    Args:
      queue: [K, d] keys, identical on every device.
      pointer: int scalar in [0, K), a multiple of B (start at 0).
      keys: [n, d] this step's keys; no gradient flows into the queue.
      axis_name: as in ``update_queue``: keys gathered from all devices.

    Returns:
      (new queue [K, d], new pointer int32 scalar).

    Raises:
      ValueError: if K is not a multiple of the global batch B.
    """
    keys = _gather_new_keys(queue, keys, axis_name)
    pointer = jnp.asarray(pointer, jnp.int32)
    new_queue = jax.lax.dynamic_update_slice_in_dim(queue, keys, pointer, axis=0)
    return new_queue, (pointer + keys.shape[0]) % queue.shape[0]
