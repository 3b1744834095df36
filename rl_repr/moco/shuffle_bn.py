"""Shuffled batch norm for MoCo's key encoder, across every device and host.

The leak (He et al. 2020, Section 3.3): with batch norm, the keys of one device's batch share that
batch's statistics with its queries, so the model can find each query's positive key among the
queued negatives by the statistics alone instead of learning a representation. MoCo's cure is to
compute the keys on a *shuffled* batch: the global key batch is permuted, each group of
``B / groups`` consecutive examples of the permuted batch is normalised by its own statistics (one
group per device: per-device batch norm), and the keys are put back in the original order. A
query and its key then never share batch statistics.

Here the permutation is a pure function of (seed, step), drawn identically on every device and
host (no broadcast), over the *global* batch: an example can land on any device of any host (the
public Flax MoCo shuffles only within a host). The same function serves every driver:

* on the global batch (``axis_name=None``, ``jax.jit``): permute, split into ``[groups, B/groups,
  ...]`` (sharded over the devices by ``shard``), encode each group (``jax.vmap``), un-permute;
* per device (``axis_name``, ``jax.shard_map``/``jax.pmap``): all-gather the key views (MoCo's
  reference gathers them too), take this device's rows of the permuted batch, encode its
  ``groups / devices`` groups, all-gather the keys and take back the rows of its own examples.

Both give the same keys for the same ``groups`` on any number of devices (tested against a
reference that applies batch norm group by group to the explicitly permuted batch).
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

Array = jax.Array
# encode(images [m, ...]) -> (keys [m, d], batch-norm statistics of this group: a pytree)
Encode = Callable[[Array], tuple[Array, Any]]


def _same(x: Array) -> Array:
    return x


def key_permutation(key: Array, step: Array | int, batch_size: int) -> Array:
    """The step's permutation of the global key batch, ``[B]`` int32: row j of the permuted batch is
    example ``permutation[j]``. A pure function of (key, step), identical on every device and host."""
    return jax.random.permutation(jax.random.fold_in(key, step), batch_size)


def encode_in_groups(encode: Encode, images: Array, groups: int,
                     shard: Callable[[Array], Array] = _same) -> tuple[Array, Any]:
    """``encode`` applied to ``groups`` consecutive equal groups of ``images`` separately.

    Batch norm inside ``encode`` sees each group alone (``jax.vmap`` over the groups). Returns the
    keys ``[m, d]`` in the input order and the groups' statistics averaged (the running mean then
    moves as with the whole batch; the running variance toward the mean within-group variance).
    ``shard`` places the ``[groups, m / groups, ...]`` array (a sharding constraint under jit).
    """
    m = images.shape[0]
    if groups < 1 or m % groups:
        raise ValueError(f"{m} key images do not split into {groups} equal groups; choose config.key_bn_groups "
                         f"dividing the batch (and a multiple of the device count).")
    keys, stats = jax.vmap(encode)(shard(images.reshape(groups, m // groups, *images.shape[1:])))
    return keys.reshape(m, *keys.shape[2:]), jax.tree.map(lambda s: jnp.mean(s, axis=0), stats)


def shuffled_keys(encode: Encode, images: Array, permutation: Array, groups: int, *,
                  axis_name: str | None = None, shard: Callable[[Array], Array] = _same) -> tuple[Array, Any]:
    """Keys of ``images`` computed by groups of the permuted global batch, in the original order.

    ``keys[i] = encode(group of example i in the permuted batch)[its row]``: example i is encoded
    with the statistics of the group of ``B / groups`` examples ``permutation`` put it in.

    Args:
      encode: the key encoder on one group (``(images [m, ...]) -> (keys [m, d], stats)``).
      images: ``[n, ...]`` this device's key views (the global batch without ``axis_name``).
      permutation: ``[B]`` from :func:`key_permutation`, the same on every device.
      groups: groups in the global batch (a multiple of the device count).
      axis_name: the mapped batch axis inside ``jax.shard_map``/``jax.pmap``, or None.
      shard: under jit, places the grouped batch and the keys on the devices (sharding constraint).

    Returns:
      ``(keys [n, d], stats)``: this device's keys, and the statistics averaged over all groups.
    """
    inverse = jnp.argsort(permutation)
    if axis_name is None:
        keys, stats = encode_in_groups(encode, images[permutation], groups, shard)
        return shard(keys[inverse]), stats
    devices, n = jax.lax.axis_size(axis_name), images.shape[0]
    if groups % devices:
        raise ValueError(f"config.key_bn_groups={groups} is not a multiple of the {devices} devices; each device "
                         "encodes whole groups.")
    first = jax.lax.axis_index(axis_name) * n
    everyone = jax.lax.all_gather(images, axis_name, tiled=True)  # [B, ...]
    mine = jax.lax.dynamic_slice_in_dim(permutation, first, n)
    keys, stats = encode_in_groups(encode, everyone[mine], groups // devices)
    all_keys = jax.lax.all_gather(keys, axis_name, tiled=True)  # [B, d], permuted order
    return all_keys[jax.lax.dynamic_slice_in_dim(inverse, first, n)], jax.lax.pmean(stats, axis_name)


def local_keys(encode: Encode, images: Array, groups: int, *, axis_name: str | None = None,
               shard: Callable[[Array], Array] = _same) -> tuple[Array, Any]:
    """Keys with per-group statistics and *no* permutation (``key_bn='local'``): each device's
    examples are normalised together, as with plain per-device batch norm (the leak)."""
    if axis_name is None:
        keys, stats = encode_in_groups(encode, images, groups, shard)
        return shard(keys), stats
    keys, stats = encode_in_groups(encode, images, groups // jax.lax.axis_size(axis_name))
    return keys, jax.lax.pmean(stats, axis_name)
