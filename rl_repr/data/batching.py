"""Batch indices and global-batch assembly for data-parallel training.

Two concerns that every trainer shares:

* which examples form step t's batch: on device (``sample_batch_indices``, a fresh
  key per step) or on the host (``epoch_permutation_batches``, epochs of a seeded
  permutation, so that a run resumed at step t sees exactly the batches the
  uninterrupted run saw);
* turning each process's slice of the batch into one global ``jax.Array`` sharded
  along the mesh's data axis (``global_batch_from_process_local``), the multi-host
  recipe of ``jax.make_array_from_process_local_data``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec


def global_batch_from_process_local(
    local_batch: Mapping[str, np.ndarray],
    mesh: Mesh,
    axis: str = "data",
) -> dict[str, jax.Array]:
    """Assemble a global batch, sharded along ``axis``, from each process's slice.

    Every process passes its own [B_local, ...] arrays; the result holds arrays of
    shape [B_local * P, ...] (P = jax.process_count()) laid out with
    ``NamedSharding(mesh, PartitionSpec(axis))``: the leading (batch) dimension is
    split over the devices of ``axis`` and replicated over any other mesh axis.
    Process p's rows land at global rows [p * B_local, (p + 1) * B_local) when the
    mesh lists the devices process by process (as ``jax.make_mesh`` does).

    Args:
        local_batch: name -> [B_local, ...] array, the same B_local for every entry
            and every process.
        mesh: the device mesh; must have an axis called ``axis``.
        axis: mesh axis that the batch dimension is split over.

    Returns:
        name -> global jax.Array [B_local * P, ...].

    Raises:
        ValueError: if the entries disagree on B_local, if ``axis`` is not a mesh
            axis, or if the global batch does not divide evenly across the devices
            of ``axis``.
    """
    if axis not in mesh.shape:
        raise ValueError(
            f"Mesh axes are {tuple(mesh.shape)} but the batch axis is {axis!r}; pass the "
            "name of the mesh's data axis as `axis`."
        )
    sizes = {name: np.shape(array)[0] if np.ndim(array) else None for name, array in local_batch.items()}
    if len(set(sizes.values())) != 1 or None in sizes.values():
        raise ValueError(
            f"Process-local batch entries have leading sizes {sizes}; every entry must be an "
            "array with the same batch size in its first dimension."
        )
    local_size = next(iter(sizes.values()))
    process_count = jax.process_count()
    global_size = local_size * process_count
    num_shards = mesh.shape[axis]
    if global_size % num_shards:
        raise ValueError(
            f"A global batch of {global_size} examples ({local_size} per process x "
            f"{process_count} processes) does not divide across the {num_shards} devices of "
            f"mesh axis {axis!r}; use a batch size that is a multiple of {num_shards}."
        )
    sharding = NamedSharding(mesh, PartitionSpec(axis))
    return {
        name: jax.make_array_from_process_local_data(
            sharding, np.asarray(array), (global_size,) + tuple(np.shape(array)[1:])
        )
        for name, array in local_batch.items()
    }


def sample_batch_indices(key: jax.Array, num_examples: int, batch_size: int) -> jax.Array:
    """Draw ``batch_size`` distinct example indices uniformly from [0, num_examples).

    Sampling is without replacement within the step (every subset of size
    ``batch_size`` is equally likely) and with replacement across steps: use it
    with a fresh ``jax.random.fold_in(key, step)`` per step. jit-able with static
    sizes.

    Args:
        key: PRNG key.
        num_examples: dataset size N (static).
        batch_size: B <= N (static).

    Returns:
        [B] int32 indices, all distinct.
    """
    if not 0 < batch_size <= num_examples:
        raise ValueError(
            f"Cannot draw {batch_size} distinct indices from {num_examples} examples; use "
            f"0 < batch_size <= {num_examples}."
        )
    # permutation()[:B] is one sort of N keys: cheap for in-memory data sets and,
    # unlike choice(replace=False), the same code path for every B.
    return jax.random.permutation(key, num_examples)[:batch_size].astype(np.int32)


def epoch_permutation_batches(
    seed: int,
    num_examples: int,
    batch_size: int,
    start_step: int = 0,
    *,
    process_index: int = 0,
    process_count: int = 1,
) -> Iterator[np.ndarray]:
    """Yield host-side index batches from a fresh seeded permutation each epoch.

    Step t belongs to epoch e = t // S (S = num_examples // batch_size steps per
    epoch; the last num_examples % batch_size examples of each permutation are
    dropped so every batch is full) and holds
        perm_e[(t mod S) * B : (t mod S + 1) * B],
    with perm_e = numpy.random.default_rng([seed, e]).permutation(num_examples).
    A batch depends only on (seed, t), so a run resumed at ``start_step`` sees the
    batches of the uninterrupted run.

    With several processes each process yields its contiguous slice
    [i * B / P, (i + 1) * B / P) of the global batch (P = process_count,
    i = process_index), the layout ``global_batch_from_process_local`` expects.

    Args:
        seed: shuffling seed (non-negative int).
        num_examples: dataset size N.
        batch_size: global batch size B, 0 < B <= N, divisible by process_count.
        start_step: first step t to yield.
        process_index: this process's index i in [0, process_count).
        process_count: number of processes P sharing each global batch.

    Yields:
        [B / P] int64 index arrays, one per step, forever.
    """
    if not 0 < batch_size <= num_examples:
        raise ValueError(
            f"A batch of {batch_size} does not fit in an epoch of {num_examples} examples; use "
            f"0 < batch_size <= {num_examples}."
        )
    if process_count < 1 or not 0 <= process_index < process_count:
        raise ValueError(
            f"process_index={process_index} is not in [0, process_count={process_count}); pass "
            "jax.process_index() and jax.process_count()."
        )
    if batch_size % process_count:
        raise ValueError(
            f"A global batch of {batch_size} does not split across {process_count} processes; "
            f"use a batch size that is a multiple of {process_count}."
        )
    if start_step < 0:
        raise ValueError(f"start_step must be >= 0, got {start_step}.")
    steps_per_epoch = num_examples // batch_size
    local_size = batch_size // process_count
    step = start_step
    epoch, permutation = -1, np.empty(0, np.int64)
    while True:
        if step // steps_per_epoch != epoch:
            epoch = step // steps_per_epoch
            permutation = np.random.default_rng([seed, epoch]).permutation(num_examples)
        start = (step % steps_per_epoch) * batch_size + process_index * local_size
        yield permutation[start : start + local_size]
        step += 1
