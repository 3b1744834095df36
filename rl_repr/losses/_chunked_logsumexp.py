"""Row-wise log-sum-exp of ``rows @ cols.T`` with each row's own column left out.

This is the only O(rows x cols) piece of the NT-Xent loss, so it lives alone in
two forms with the same value and gradient:

* dense: one ``[R, C]`` matmul, the excluded entries set to a large negative,
  ``logsumexp``; JAX differentiates it.  Fastest while ``[R, C]`` fits.
* chunked: ``C`` is cut into column blocks of ``chunk_size``; a ``lax.scan``
  keeps a running (max, sum) per row (the online log-sum-exp of Milakov &
  Gimelshein 2018), and a ``jax.custom_vjp`` backward re-computes each block
  from the saved ``rows``, ``cols`` and the per-row result, so memory is
  O(R x chunk_size + (R + C) x d) in both passes and ``[R, C]`` never exists.

Private: ``rl_repr.losses.nt_xent`` is the public entry point.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import Array

# Finite stand-in for -inf (as the official SimCLR code's LARGE_NUM = 1e9): a
# masked logit adds exp(-1e9 - max) == 0 exactly in float32, and a finite value
# keeps a block whose only column is the row's own from producing inf - inf.
MASKED_LOGIT = -1e9


def _masked_logits(rows: Array, cols_block: Array, self_column: Array,
                   first_column: Array | int, num_columns: int) -> Array:
    """``rows @ cols_block.T`` [R, c] with self columns and padding set to MASKED_LOGIT."""
    logits = rows @ cols_block.T
    column = first_column + jnp.arange(cols_block.shape[0])
    excluded = (column[None, :] == self_column[:, None]) | (column[None, :] >= num_columns)
    return jnp.where(excluded, jnp.asarray(MASKED_LOGIT, logits.dtype), logits)


def _column_blocks(cols: Array, chunk_size: int) -> tuple[Array, Array]:
    """Zero-pads ``cols`` [C, d] to whole blocks: ([num_blocks, chunk, d], block starts)."""
    num_columns, dim = cols.shape
    num_blocks = -(-num_columns // chunk_size)
    padded = jnp.pad(cols, ((0, num_blocks * chunk_size - num_columns), (0, 0)))
    starts = jnp.arange(num_blocks, dtype=jnp.int32) * chunk_size
    return padded.reshape(num_blocks, chunk_size, dim), starts


def _chunked_forward(rows: Array, cols: Array, self_column: Array, chunk_size: int) -> Array:
    num_columns = cols.shape[0]
    blocks, starts = _column_blocks(cols, chunk_size)

    def accumulate(carry, block_and_start):
        running_max, running_sum = carry
        block, start = block_and_start
        logits = _masked_logits(rows, block, self_column, start, num_columns)
        new_max = jnp.maximum(running_max, jnp.max(logits, axis=1))
        running_sum = (running_sum * jnp.exp(running_max - new_max)
                       + jnp.sum(jnp.exp(logits - new_max[:, None]), axis=1))
        return (new_max, running_sum), None

    # Derive the initial carry from ``rows`` so that it has the same
    # device-varying type as the loop body's output inside shard_map.
    zero = jnp.zeros_like(rows[:, 0])
    (row_max, row_sum), _ = jax.lax.scan(
        accumulate, (zero + MASKED_LOGIT, zero), (blocks, starts))
    return row_max + jnp.log(row_sum)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _chunked_logsumexp(rows: Array, cols: Array, self_column: Array, chunk_size: int) -> Array:
    return _chunked_forward(rows, cols, self_column, chunk_size)


def _chunked_logsumexp_fwd(rows, cols, self_column, chunk_size):
    lse = _chunked_forward(rows, cols, self_column, chunk_size)
    # Residuals are O((R + C) x d): the blocks are recomputed in the backward.
    return lse, (rows, cols, self_column, lse)


def _chunked_logsumexp_bwd(chunk_size, residuals, lse_cotangent):
    rows, cols, self_column, lse = residuals
    num_columns = cols.shape[0]
    blocks, starts = _column_blocks(cols, chunk_size)

    def backprop_block(rows_cotangent, block_and_start):
        block, start = block_and_start
        logits = _masked_logits(rows, block, self_column, start, num_columns)
        # d lse_i / d logit_ik = softmax_ik; masked entries give exp(-1e9 - lse) == 0.
        weights = jnp.exp(logits - lse[:, None]) * lse_cotangent[:, None]
        return rows_cotangent + weights @ block, weights.T @ rows

    rows_cotangent, cols_cotangent_blocks = jax.lax.scan(
        backprop_block, jnp.zeros_like(rows), (blocks, starts))
    cols_cotangent = cols_cotangent_blocks.reshape(-1, cols.shape[1])[:num_columns]
    return rows_cotangent, cols_cotangent, None


_chunked_logsumexp.defvjp(_chunked_logsumexp_fwd, _chunked_logsumexp_bwd)


def masked_row_logsumexp(rows: Array, cols: Array, self_column: Array,
                         chunk_size: int | None = None) -> Array:
    """lse_i = log sum_{k != self_column[i]} exp(rows_i . cols_k).

    Args:
      rows: [R, d] floating.
      cols: [C, d], same dtype as ``rows``.
      self_column: [R] int, the column each row leaves out (an index >= C
        leaves nothing out).
      chunk_size: ``None`` for the dense form; otherwise the number of columns
        per block of the chunked form (``C`` need not be a multiple: the last
        block is zero-padded and its padding masked).

    Returns:
      [R] in the dtype of ``rows``.
    """
    if chunk_size is None:
        logits = _masked_logits(rows, cols, self_column, 0, cols.shape[0])
        return jax.nn.logsumexp(logits, axis=1)
    return _chunked_logsumexp(rows, cols, self_column, min(chunk_size, cols.shape[0]))
