"""Device mesh, shardings, multi-host start-up and the pmap helpers.

One mesh with one ``data`` axis spans every device of every process. The main
path is ``jax.jit`` with ``NamedSharding`` (batch split on the leading axis,
state replicated); the per-device SPMD path runs the same program under
:func:`shard_map_fn` or ``jax.pmap`` with explicit collectives over ``'data'``.

Multi-host recipe (checked by ``tests/test_parallel.py::test_two_process_gloo_psum``):
every process calls :func:`maybe_initialize_distributed` *before any other JAX
call*, with the same coordinator address, the process count and its own id.
On CPU, each process gets N fake devices from
``XLA_FLAGS=--xla_force_host_platform_device_count=N`` in its environment, and
collectives across processes go through gloo
(``jax_cpu_collectives_implementation='gloo'``, set here before initialising).
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


# ------------------------------------------------------------------ mesh and shardings

def make_mesh(num_devices: int | None = None, axis_name: str = DATA_AXIS) -> Mesh:
    """A 1-D mesh ``{axis_name: num_devices}`` over the global devices.

    Uses ``jax.devices()`` (all processes' devices), in ``jax.make_mesh``'s
    topology-aware order. The axis type is ``Auto`` (sharding propagated by the
    compiler, the pjit style) -- note that ``jax.make_mesh`` alone defaults to
    ``Explicit`` axes in jax 0.10.

    Args:
      num_devices: how many devices; None for all. In a multi-process run it
        must be all of them (each process must own part of the mesh).
      axis_name: the mesh axis name.

    Raises:
      ValueError: ``num_devices`` is not positive, exceeds the device count,
        or leaves some process out.
    """
    available = jax.device_count()
    if num_devices is None:
        num_devices = available
    if num_devices <= 0:
        raise ValueError(f"num_devices must be positive, got {num_devices}.")
    if num_devices > available:
        raise ValueError(
            f"asked for a mesh of {num_devices} devices but only {available} are available "
            f"({jax.devices()[0].platform}); use num_devices <= {available}, or on CPU set "
            f"XLA_FLAGS=--xla_force_host_platform_device_count={num_devices} before JAX starts.")
    if jax.process_count() > 1 and num_devices != available:
        raise ValueError(
            f"a multi-process mesh must span all {available} devices of the "
            f"{jax.process_count()} processes, got num_devices={num_devices}; leave it unset.")
    devices = jax.devices()[:num_devices]
    return jax.make_mesh((num_devices,), (axis_name,), axis_types=(AxisType.Auto,),
                         devices=devices)


def data_sharding(mesh: Mesh, axis: str = DATA_AXIS) -> NamedSharding:
    """Leading (batch) axis split over ``axis``; other axes whole: ``P(axis)``."""
    return NamedSharding(mesh, P(axis))


def replicated_sharding(mesh: Mesh) -> NamedSharding:
    """A full copy on every device of ``mesh``: ``P()``."""
    return NamedSharding(mesh, P())


def check_batch_divisible(global_batch_size: int, mesh: Mesh, axis: str = DATA_AXIS) -> None:
    """Raises ValueError unless the global batch splits evenly over the ``axis`` devices."""
    devices = mesh.shape[axis]
    if global_batch_size <= 0 or global_batch_size % devices:
        below = (global_batch_size // devices) * devices
        above = below + devices
        examples = f"{below} or {above}" if below > 0 else f"{above}"
        raise ValueError(
            f"batch size {global_batch_size} does not divide across {devices} devices; "
            f"use a multiple of {devices} (e.g. {examples}).")


# ------------------------------------------------------------------ multi-host

def maybe_initialize_distributed(config: Any) -> bool:
    """Starts ``jax.distributed`` when the config asks for it; returns whether it is on.

    Reads the block ``config.distributed`` if present, else ``config`` itself:

    * ``coordinator_address`` ('host:port' of process 0; empty/None = single process),
    * ``num_processes``, ``process_id`` (None lets JAX detect them on SLURM / TPU pods),
    * ``local_device_ids`` (optional, e.g. one GPU per process),
    * ``auto_detect`` (optional bool: call ``jax.distributed.initialize()`` with no
      arguments, for clusters JAX detects by itself, e.g. Cloud TPU pods),
    * ``cpu_collectives`` (optional, default 'gloo': the CPU backend's
      cross-process collectives; has no effect on GPU/TPU).

    Must run before anything else touches JAX devices. Calling it again after
    a successful start is a no-op.

    Raises:
      RuntimeError: JAX had already started its backend (one clear sentence with the fix).
    """
    block = _get(config, "distributed", None) or config
    address = _get(block, "coordinator_address", None)
    auto_detect = bool(_get(block, "auto_detect", False))
    if not address and not auto_detect:
        return False
    if jax.distributed.is_initialized():
        return True
    jax.config.update("jax_cpu_collectives_implementation",
                      _get(block, "cpu_collectives", None) or "gloo")
    kwargs = {}
    if address:
        kwargs = dict(coordinator_address=address,
                      num_processes=_get(block, "num_processes", None),
                      process_id=_get(block, "process_id", None),
                      local_device_ids=_get(block, "local_device_ids", None))
    try:
        jax.distributed.initialize(**kwargs)
    except RuntimeError as error:
        raise RuntimeError(
            f"jax.distributed.initialize failed ({error}); call "
            "maybe_initialize_distributed before any other JAX call (mesh, arrays, "
            "jax.devices()) in every process.") from error
    return True


def request_cpu_devices(count: int) -> bool:
    """Splits the host CPU into ``count`` JAX devices, if JAX has not started yet.

    ``count=0`` leaves JAX's default (one CPU device, or what ``XLA_FLAGS`` asks for). Each
    CPU device runs its programs on its own thread, so a per-device program that needs no
    collective for a while (word2vec's ``table_sync='step'``) keeps ``count`` cores busy.
    Has no effect on the accelerators of a GPU/TPU machine. Once JAX's backend is running
    (a test, a notebook) its devices cannot change: the call prints one line saying so and
    returns False; restart the process to apply it.
    """
    if count <= 0:
        return False
    try:
        jax.config.update("jax_num_cpu_devices", count)
    except RuntimeError:
        if jax.local_device_count("cpu") == count:  # already so (an earlier run in this process)
            return True
        print(f"cpu_devices={count} not applied: JAX's backend is already running with "
              f"{jax.local_device_count('cpu')} CPU device(s); set it before JAX starts "
              "(a fresh process).", flush=True)
        return False
    return True


def _get(config: Any, key: str, default: Any) -> Any:
    try:
        value = config[key]
    except (KeyError, TypeError, AttributeError):
        return default
    return default if value is None else value


# ------------------------------------------------------------------ shard_map

def shard_map_fn(f: Callable, mesh: Mesh, in_specs: Any, out_specs: Any, *,
                 check_vma: bool = False) -> Callable:
    """``jax.shard_map(f, mesh=..., in_specs=..., out_specs=..., check_vma=...)``.

    jax 0.10 quirks this hides: ``jax.shard_map`` is top level
    (``jax.experimental.shard_map.shard_map`` survives only as a deprecated shim
    taking ``check_rep``), ``f`` is positional-only and the rest keyword-only,
    and ``check_rep`` is now ``check_vma`` (``check_rep=`` is a TypeError).

    ``check_vma=False`` (our default) gives pmap semantics, and that matters for
    gradients: inside ``f``, the gradient of a per-device loss with respect to a
    replicated input (``P()``) is the *per-device* contribution, so the step must
    ``psum``/``pmean`` it, exactly as under ``jax.pmap``. With ``check_vma=True``
    JAX inserts the cross-device sum itself when differentiating with respect
    to a replicated input, and an explicit ``psum`` on top would count each
    device ``n`` times (both behaviours are pinned in ``tests/test_parallel.py``).
    With ``check_vma=False`` nothing checks that ``P()`` outputs really are equal
    on every device; reduce them with a collective first.
    """
    return jax.shard_map(f, mesh=mesh, in_specs=in_specs, out_specs=out_specs,
                         check_vma=check_vma)


# ------------------------------------------------------------------ pmap helpers

def replicate_for_pmap(tree: Any, devices: Sequence[jax.Device] | None = None) -> Any:
    """One copy of every leaf on each device, stacked on a new leading axis.

    A leaf of shape ``S`` becomes an array of shape ``[D, *S]`` with row ``i``
    on ``devices[i]`` (default: ``jax.local_devices()``), ready for ``jax.pmap``
    with ``in_axes=0``. This is what ``jax.device_put_replicated`` did; that
    function is gone in jax 0.10.
    """
    devices = list(jax.local_devices() if devices is None else devices)
    mesh = Mesh(np.array(devices), ("replica",))
    sharding = NamedSharding(mesh, P("replica"))

    def replicate(leaf):
        leaf = jnp.asarray(leaf)
        copies = [jax.device_put(leaf[None], device) for device in devices]
        return jax.make_array_from_single_device_arrays(
            (len(devices),) + leaf.shape, sharding, copies)

    return jax.tree.map(replicate, tree)


def unreplicate(tree: Any) -> Any:
    """The first device's copy of every leaf (inverse of :func:`replicate_for_pmap`).

    ``[D, *S] -> [*S]``, read from the first addressable shard so that no
    cross-device or cross-process transfer is needed.
    """
    def first(leaf):
        if isinstance(leaf, jax.Array):
            return leaf.addressable_data(0)[0]
        return leaf[0]

    return jax.tree.map(first, tree)


def shard_for_pmap(batch: Any, num_devices: int) -> Any:
    """Splits every leaf's leading axis: ``[B, ...] -> [num_devices, B / num_devices, ...]``.

    Example ``i`` goes to device ``i // (B / num_devices)``, the same
    contiguous split as ``P('data')`` under jit, so the drivers see the same
    per-device batches.

    Raises:
      ValueError: a leaf is a scalar or ``B`` is not a multiple of ``num_devices``.
    """
    def split(leaf):
        shape = np.shape(leaf)
        if not shape:
            raise ValueError("shard_for_pmap needs arrays with a leading batch axis, "
                             "got a scalar.")
        if shape[0] % num_devices:
            raise ValueError(f"batch size {shape[0]} does not divide across {num_devices} "
                             f"devices; use a multiple of {num_devices}.")
        return leaf.reshape((num_devices, shape[0] // num_devices) + shape[1:])

    return jax.tree.map(split, batch)
