"""MoCo's queue sharded across devices: each device holds K/n keys, never the whole queue.

MoCo (He et al. 2020, Algorithm 1) scores every query against its own key and the K keys of a
FIFO queue filled by earlier batches. Every public implementation (the authors', VISSL,
mmpretrain) keeps the whole ``[K, d]`` queue on every device. Here the queue is split over the
devices of the data axis and the loss combines each device's share of the negatives'
log-sum-exp, so value and gradients equal one device holding the whole queue.

Layout. The queue is ``[B, S, d]`` with B the global batch and S = K / B *slots*:
``queue[i, s]`` is the key of row i of the batch that was enqueued into slot s. One device
holding everything sees MoCo's ring buffer ``queue.swapaxes(0, 1).reshape(K, d)`` with write
pointer ``s * B`` (:func:`flat_queue`). Split over n devices along its first axis, device j holds
``[B/n, S, d]``: the rows of its own part of every batch, so enqueueing the keys of its own
examples (:func:`enqueue_keys`) needs no communication, and after every step the union of the
shards is exactly the keys of the last S global batches. Under ``jax.jit`` the ``[B, S, d]``
array is sharded ``P('data')``; under ``jax.shard_map``/``jax.pmap`` each device's program sees
its own ``[B/n, S, d]`` shard.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import Array

from rl_repr.losses.contrastive import (_check_embeddings, _check_temperature, _compute_dtype, _global_sum,
                                        _l2_normalize)

__all__ = ["queue_info_nce", "enqueue_keys", "enqueue_ids", "flat_queue"]


def _check_queue(queue: Array, dim: int) -> None:
    if jnp.ndim(queue) != 3 or queue.shape[-1] != dim:
        raise ValueError(f"queue must be [batch, slots, {dim}] (rl_repr.losses.moco's layout), got shape "
                         f"{jnp.shape(queue)}; keep the queue as MoCo's trainer lays it out.")


def queue_info_nce(query: Array, positive_key: Array, queue: Array, temperature: float = 0.2, *,
                   axis_name: str | None = None, normalize: bool = True, query_ids: Array | None = None,
                   queue_ids: Array | None = None) -> Array:
    r"""MoCo's InfoNCE against a queue whose keys are split over the devices.

    For query q_i, its key k_i^+ and the K queued keys k_j (He et al. 2020, eq. 1)::

        L = 1/N sum_i [ logsumexp(q_i.k_i^+ / tau, q_i.k_1 / tau, ..., q_i.k_K / tau) - q_i.k_i^+ / tau ]

    equal in value and gradient to ``rl_repr.losses.info_nce(q, k, flat_queue(queue), tau)``
    on one device holding the whole queue. With ``axis_name`` (inside ``jax.shard_map`` or
    ``jax.pmap``, this device's queries and queue shard):

    1. the queries of all devices are gathered, ``[N, d]`` (N = n x devices);
    2. each device takes, for all N queries, the log-sum-exp over *its* K/devices keys,
       ``[N]``: the only ``O(N K / devices)`` work, and the queue never moves;
    3. an ``all_to_all`` hands each device the devices' partial log-sum-exps of its own
       queries, ``[devices, n]``, combined by one more log-sum-exp;
    4. the positives are local; the per-device sums are added (``psum``) and every device
       returns the global mean.

    Gradients follow ``rl_repr.losses.contrastive``'s convention: every device gets d(global
    loss)/d(its queries) (the gather's transpose sums each device's contributions to a query);
    gradients of replicated parameters are each device's share, to be ``psum``-ed. No
    gradient flows into the queue or the positive keys' encoder if the caller stops it (MoCo's
    keys come from the momentum encoder).

    Without ``axis_name`` it is the plain computation; under ``jax.jit`` with the queue sharded
    over the batch axis XLA partitions the ``[N, K]`` logits by the queue's columns.

    With ``query_ids`` and ``queue_ids`` (the data set index of each query's image and of each
    queued key's), a queued key of the query's own image is left out of its negatives: the sum
    runs over ``{j : id(k_j) != id(q_i)}``. Such a key is an earlier view of the positive, and
    how often the queue holds one depends on the data set's size: with an epoch-wise reshuffle
    about 0.1% of queries on ImageNet (K = 65,536 of 1.28M images) but 29% on digits (K = 1,024
    of 1,437 images, batch 128), where it pushes each image away from itself.

    Args:
      query: [n, d] queries (gradients flow here).
      positive_key: [n, d] keys, row i pairing with query i.
      queue: [n_rows, S, d] this device's queue shard (the whole ``[B, S, d]`` queue without
        ``axis_name``); see the module docstring for the layout.
      temperature: tau > 0 (MoCo v1 0.07, v2 0.2).
      normalize: L2-normalise query, keys and queue first (MoCo's keys and queue are unit vectors).
      axis_name: the mapped batch axis inside ``jax.shard_map``/``jax.pmap``, or None.
      query_ids: [n] int, the data set index of each query's image (this device's rows); an
        index < 0 (unknown) matches no key.
      queue_ids: [n_rows, S] int, the data set index of each queued key's image, laid out as
        ``queue`` (:func:`enqueue_ids`; -1 for none). Both or neither.

    Returns:
      Scalar float32 (float64 for float64 inputs): the mean over the global batch.
    """
    _check_embeddings("query", query)
    _check_embeddings("positive_key", positive_key)
    if positive_key.shape != query.shape:
        raise ValueError(f"positive_key must have the query's shape {query.shape}, got {positive_key.shape}; "
                         "pass one key per query.")
    _check_queue(queue, query.shape[1])
    _check_temperature(temperature)
    if (query_ids is None) != (queue_ids is None):
        raise ValueError("pass both query_ids and queue_ids (to leave a query's own image out of its negatives) "
                         "or neither.")
    dtype = _compute_dtype(query, positive_key, queue)
    negatives = queue.reshape(-1, queue.shape[-1]).astype(dtype)
    query, positive_key = query.astype(dtype), positive_key.astype(dtype)
    if normalize:
        query, positive_key, negatives = map(_l2_normalize, (query, positive_key, negatives))
    positive_logit = jnp.sum(query * positive_key, axis=-1) / temperature  # [n]
    count = query.shape[0]

    def negatives_of(queries, ids):  # -> [rows] log-sum-exp over this queue (shard), own image left out
        kept = None if ids is None else (ids[:, None] != queue_ids.reshape(1, -1)) | (ids[:, None] < 0)
        return jax.nn.logsumexp(queries @ negatives.T / temperature, axis=1, where=kept)

    if axis_name is None:
        negatives_logsumexp = negatives_of(query, query_ids)
    else:
        devices = jax.lax.axis_size(axis_name)
        gather = functools.partial(jax.lax.all_gather, axis_name=axis_name, tiled=True)
        all_ids = None if query_ids is None else gather(query_ids)  # [N]
        partial = negatives_of(gather(query), all_ids)  # [N], this shard
        # row e of the result: device e's partial log-sum-exp for this device's n queries
        partials = jax.lax.all_to_all(partial.reshape(devices, count), axis_name, 0, 0)
        negatives_logsumexp = jax.nn.logsumexp(partials, axis=0)  # [n]
    local_sum = jnp.sum(jnp.logaddexp(positive_logit, negatives_logsumexp) - positive_logit)
    if axis_name is not None:
        local_sum = _global_sum(local_sum, axis_name)
        count = count * jax.lax.axis_size(axis_name)
    return local_sum / count


def enqueue_keys(queue: Array, slot: Array, keys: Array, *, normalize: bool = True) -> tuple[Array, Array]:
    """Writes this step's keys into slot ``slot`` and advances it: ``queue[:, slot] = keys``.

    The slot written is the oldest (it held the keys of S steps ago), so this is MoCo's
    "enqueue the newest batch, dequeue the oldest". On a device shard ``[n, S, d]`` the keys
    are the device's own ``[n, d]``; under ``jax.jit`` the same line updates the ``[B, S, d]``
    array in place on every device, with no communication either way.

    Args:
      queue: [n, S, d] (a device's shard, or the whole queue).
      slot: int32 scalar in [0, S), the same on every device.
      keys: [n, d] keys of the rows this queue shard belongs to; no gradient flows into the queue.
      normalize: L2-normalise the keys first (MoCo stores unit vectors).

    Returns:
      ``(queue, (slot + 1) mod S)``.
    """
    _check_embeddings("keys", keys)
    _check_queue(queue, keys.shape[1])
    if keys.shape[0] != queue.shape[0]:
        raise ValueError(f"keys has {keys.shape[0]} rows but the queue shard {queue.shape[0]}; enqueue the keys of "
                         "the rows this shard belongs to (the device's own part of the batch).")
    keys = jax.lax.stop_gradient(keys)
    if normalize:
        keys = _l2_normalize(keys.astype(_compute_dtype(keys)))
    slot = jnp.asarray(slot, jnp.int32)
    return _write_slot(queue, slot, keys), (slot + 1) % queue.shape[1]


def _write_slot(buffer: Array, slot: Array, rows: Array) -> Array:
    """``buffer[:, slot] = rows`` for a ``[n, S, ...]`` buffer and ``[n, ...]`` rows."""
    return jax.lax.dynamic_update_slice_in_dim(buffer, rows.astype(buffer.dtype)[:, None],
                                               jnp.asarray(slot, jnp.int32), axis=1)


def enqueue_ids(queue_ids: Array, slot: Array, ids: Array) -> Array:
    """``queue_ids[:, slot] = ids``: the data set indices of the keys :func:`enqueue_keys` writes
    into the same slot (``[n, S]``, a device's shard or the whole; ``ids`` ``[n]``)."""
    if ids.shape != queue_ids.shape[:1]:
        raise ValueError(f"ids must be [{queue_ids.shape[0]}] (one per row of the queue shard), got {ids.shape}.")
    return _write_slot(queue_ids, slot, ids)


def flat_queue(queue: Array) -> Array:
    """``[B, S, d]`` -> ``[K, d]``: MoCo's ring buffer as one device would hold it (slot s at rows
    ``[s B, (s + 1) B)``), the single-device reference the sharded form is tested against."""
    return queue.swapaxes(0, 1).reshape(-1, queue.shape[-1])
