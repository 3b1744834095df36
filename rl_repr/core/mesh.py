"""The device mesh and multi-host start-up.

One mesh with one ``data`` axis spans every device of every process: the batch is split over
it, the state replicated (``rl_repr.core.drivers`` places arrays and compiles the step).

Multi-host recipe (``tests/test_parallel.py::test_two_process_gloo_psum``): every process calls
:func:`maybe_initialize_distributed` *before any other JAX call*, with the same coordinator
address, the process count and its own id. On CPU, each process gets N simulated devices
(:func:`request_cpu_devices`, or ``XLA_FLAGS=--xla_force_host_platform_device_count=N``) and
collectives across processes go through gloo (``jax_cpu_collectives_implementation='gloo'``,
set here before initialising).
"""
from __future__ import annotations

from typing import Any

import jax
from jax.sharding import AxisType, Mesh

from rl_repr.core.errors import ConfigError
from rl_repr.core.log import logger

DATA_AXIS = "data"


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
      ConfigError: ``num_devices`` is not positive, exceeds the device count,
        or leaves some process out.
    """
    available = jax.device_count()
    if num_devices is None:
        num_devices = available
    if num_devices <= 0:
        raise ConfigError(f"num_devices must be positive, got {num_devices}.")
    if num_devices > available:
        raise ConfigError(
            f"asked for a mesh of {num_devices} devices but only {available} are available "
            f"({jax.devices()[0].platform}); use num_devices <= {available}, or on CPU set "
            f"XLA_FLAGS=--xla_force_host_platform_device_count={num_devices} before JAX starts.")
    if jax.process_count() > 1 and num_devices != available:
        raise ConfigError(
            f"a multi-process mesh must span all {available} devices of the "
            f"{jax.process_count()} processes, got num_devices={num_devices}; leave it unset.")
    devices = jax.devices()[:num_devices]
    return jax.make_mesh((num_devices,), (axis_name,), axis_types=(AxisType.Auto,),
                         devices=devices)


def check_batch_divisible(global_batch_size: int, mesh: Mesh, axis: str = DATA_AXIS) -> None:
    """Raises ConfigError unless the global batch splits evenly over the ``axis`` devices."""
    devices = mesh.shape[axis]
    if global_batch_size <= 0 or global_batch_size % devices:
        below = (global_batch_size // devices) * devices
        above = below + devices
        examples = f"{below} or {above}" if below > 0 else f"{above}"
        raise ConfigError(
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

    The one way rl_repr asks for simulated CPU devices: the command line (``config.cpu_devices``),
    ``make demo`` (``--devices``) and sweeps (``--devices``) all call it. It sets
    ``jax_num_cpu_devices``; ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` set before
    Python starts does the same and wins when both are given.

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
        logger.warning(f"cpu_devices={count} not applied: JAX's backend is already running with "
                       f"{jax.local_device_count('cpu')} CPU device(s); set it before JAX starts "
                       "(a fresh process).")
        return False
    return True


def _get(config: Any, key: str, default: Any) -> Any:
    try:
        value = config[key]
    except (KeyError, TypeError, AttributeError):
        return default
    return default if value is None else value
