"""Which examples form step t's batch: epochs of a seeded permutation, per process.

A batch depends only on (seed, step), so a run resumed at step t sees exactly the batches
the uninterrupted run saw, and each process of a multi-host run reads its own rows of every
global batch.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


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
    i = process_index), the layout ``jax.make_array_from_process_local_data`` expects
    (``rl_repr.core.drivers.Driver.put_batch``).

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
