"""Collectives the losses need inside a per-device program (``shard_map`` / ``pmap``)."""
from __future__ import annotations

import functools

import jax

__all__ = ["gather_global_batch"]


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def gather_global_batch(local: jax.Array, axis_name: str) -> jax.Array:
    """``all_gather(local, tiled=True)``: ``[n, ...]`` per device -> ``[devices * n, ...]``.

    Its backward pass returns the cotangent's own rows, unsummed. Every device computes the
    same global loss from the gathered batch, so the cotangent is identical on every device;
    all_gather's default transpose (a psum_scatter) would add those copies and multiply
    every gradient by the number of devices.
    """
    return jax.lax.all_gather(local, axis_name, tiled=True)


def _gather_fwd(local, axis_name):
    return jax.lax.all_gather(local, axis_name, tiled=True), None


def _gather_bwd(axis_name, _, cotangent):
    rows = cotangent.shape[0] // jax.lax.axis_size(axis_name)
    start = jax.lax.axis_index(axis_name) * rows
    return (jax.lax.dynamic_slice_in_dim(cotangent, start, rows, axis=0),)


gather_global_batch.defvjp(_gather_fwd, _gather_bwd)
