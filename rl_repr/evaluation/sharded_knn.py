"""Weighted kNN with the training features sharded over the devices (kNN at ImageNet scale).

The classifier is ``rl_repr.evaluation.knn.knn_accuracy`` (Wu et al. 2018; the kNN monitor of
InstDisc / MoCo): each query takes its ``k`` most cosine-similar training features, neighbour
j votes for its label with weight ``exp(s_j / temperature)``. Here the training bank is a
:class:`~rl_repr.evaluation.feature_bank.FeatureBank` and never leaves its devices. For every
chunk of ``c`` queries per device, inside ``jax.shard_map`` over the ``data`` axis (D devices,
``n`` bank rows per device)::

    queries   <- all_gather of every device's chunk                          [D c, d]
    local     <- top-k of the cosine similarities to this device's rows      [D c, k]
    merged    <- top-k of every device's local top-k (all_gather)            [D c, k]
    votes     <- sum over the k of exp(s / temperature) * one_hot(label)     [D c, classes]
    correct   <- this device's c queries: argmax(votes) == label, summed over the devices

Merging local top-k lists gives the global top-k exactly; equal similarities resolve to the
lower example index, as a single ``top_k`` over the whole bank does, so the predictions are
those of the in-memory kNN (tested on digits). Memory per device: ``D c x n`` similarities.
"""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec as P

from rl_repr.core.mesh import DATA_AXIS
from rl_repr.evaluation.feature_bank import FeatureBank
from rl_repr.evaluation.knn import _l2_normalize


def sharded_knn_accuracy(bank: FeatureBank, queries: FeatureBank, *, k: int = 20, temperature: float = 0.07,
                         num_classes: int, chunk_size: int = 256) -> float:
    """Top-1 accuracy of the weighted kNN of ``queries`` (labelled rows) against ``bank``.

    Args:
      bank: the training features and labels (rows with label -1 are never neighbours).
      queries: the evaluation features and labels, on the same mesh (rows with label -1 are
        not scored).
      k: neighbours, at most the bank's labelled rows.
      temperature: the vote weight's temperature.
      num_classes: C; labels are in ``[0, C)``.
      chunk_size: queries per device per pass (bounds the similarity block).

    Returns:
      The fraction of labelled queries classified correctly.
    """
    devices = bank.mesh.devices.size
    rows_per_device = bank.features.shape[0] // devices
    queries_per_device = queries.features.shape[0] // devices
    chunk = max(1, min(chunk_size, queries_per_device))
    if not 1 <= k <= bank.num_examples:
        raise ValueError(f"knn k={k} must be between 1 and the number of training points ({bank.num_examples}).")
    counts_fn = _knn_counts_fn(bank.mesh, k, min(k, rows_per_device), float(temperature), int(num_classes), chunk,
                               math.ceil(queries_per_device / chunk))
    counts = counts_fn(bank.features, bank.labels, queries.features, queries.labels)
    correct, scored = (int(x) for x in np.asarray(jax.device_get(counts.addressable_data(0))).ravel()[:2])
    if scored == 0:
        raise ValueError("The evaluation split has no labelled example to score; check its labels.")
    return correct / scored


@functools.lru_cache(maxsize=8)
def _knn_counts_fn(mesh, k, local_k, temperature, num_classes, chunk, num_chunks):
    def per_device(bank_x, bank_y, query_x, query_y):
        bank_x = _l2_normalize(bank_x)
        me = jax.lax.axis_index(DATA_AXIS)
        last_start = query_x.shape[0] - chunk

        def one_chunk(counts, nominal):
            start = jnp.minimum(nominal, last_start)  # the last chunk overlaps the one before it
            fresh = start + jnp.arange(chunk) >= nominal  # ... whose rows it does not count again
            q = jax.lax.dynamic_slice_in_dim(query_x, start, chunk)
            q_y = jax.lax.dynamic_slice_in_dim(query_y, start, chunk)
            all_q = jax.lax.all_gather(_l2_normalize(q), DATA_AXIS, tiled=True)       # [D c, d]
            sims = jnp.where(bank_y[None, :] >= 0, all_q @ bank_x.T, -jnp.inf)      # [D c, n]
            local_s, local_i = jax.lax.top_k(sims, local_k)
            every_s = jax.lax.all_gather(local_s, DATA_AXIS, axis=1, tiled=True)    # [D c, D k_local]
            every_y = jax.lax.all_gather(bank_y[local_i], DATA_AXIS, axis=1, tiled=True)
            top_s, top_pos = jax.lax.top_k(every_s, k)
            top_y = jnp.take_along_axis(every_y, top_pos, axis=1)
            weights = jnp.where(jnp.isfinite(top_s), jnp.exp(top_s / temperature), 0.0)
            votes = jnp.sum(weights[..., None] * jax.nn.one_hot(top_y, num_classes), axis=1)
            mine = jax.lax.dynamic_slice_in_dim(jnp.argmax(votes, axis=-1), me * chunk, chunk)
            scored = fresh & (q_y >= 0)
            return counts + jnp.stack([jnp.sum(scored & (mine == q_y)), jnp.sum(scored)]), None

        counts, _ = jax.lax.scan(one_chunk, jnp.zeros(2, jnp.int32), jnp.arange(num_chunks) * chunk)
        return jax.lax.psum(counts, DATA_AXIS)[None]

    mapped = jax.shard_map(per_device, mesh=mesh, in_specs=(P(DATA_AXIS),) * 4, out_specs=P(DATA_AXIS),
                           check_vma=False)
    return jax.jit(mapped)


