"""Parallel drivers: one per-device training step, three ways to run it across a mesh.

A method writes ``per_device_step(state, batch, axis_name) -> (state, metrics)``:

* with ``axis_name=None`` it sees the *global* batch and uses no collectives;
* with ``axis_name='data'`` it sees its device's slice of the batch and must reduce across
  devices itself (global batch norm, negatives gathered from every device, the gradient sum).

The drivers (``config.parallel``):

* ``jit`` -- the primary path (pjit style): ``jax.jit`` over arrays with named shardings on a
  1-D ``data`` mesh; state replicated, batch sharded on its leading axis. XLA inserts the
  collectives, so batch statistics and the contrastive loss are global automatically.
* ``shard_map`` -- the same per-device program under ``jax.shard_map`` with explicit
  collectives and ``check_vma=False``: pmap semantics, so one program serves both per-device
  drivers. (With ``check_vma=True`` JAX would itself sum the gradient of a replicated input
  across devices, and the program's own ``psum`` would count every device n times; both
  behaviours are pinned in ``tests/test_parallel.py``.)
* ``pmap`` -- the per-device program under ``jax.pmap`` for users of older code; the state
  carries a leading device axis (``flax.jax_utils.replicate``), which ``Driver.get_state``
  strips for checkpoints and evaluation. It runs on every local device.

State split over the devices (``state_specs``): by default every state leaf is replicated. A
method whose state has a part too large to copy to every device (MoCo's queue of negatives)
passes a pytree prefix of its state with a ``PartitionSpec`` per subtree: ``P()`` replicated,
``P('data')`` split along the leaf's leading axis. Under ``jit`` that leaf is a global array
sharded over the mesh; under ``shard_map`` and ``pmap`` each device's program sees only its
own rows, ``[rows / devices, ...]``. ``get_state`` always returns the global array (sharded
under ``jit`` and ``shard_map``), so checkpoints do not depend on the driver.

Gradients in a per-device program: rl_repr's collective-aware losses (``nt_xent``,
``info_nce`` ... with ``axis_name``) return the *global* loss on every device, and their
backward pass gives each device d(global loss)/d(its local inputs). The gradient of a
replicated parameter on one device is then that device's share of the total, and
``jax.lax.psum`` over the devices is the full gradient (:func:`sum_gradients`). The tests
compare the three drivers parameter for parameter.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import numpy as np
from flax import jax_utils
from flax.training import common_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from rl_repr.core.errors import ConfigError

DRIVERS = ("jit", "shard_map", "pmap")
PerDeviceStep = Callable[[Any, Any, "str | None"], tuple[Any, Any]]


class Driver:
    """Places state and batches on devices and compiles the step for one parallel driver.

    Args:
      name: one of ``DRIVERS``.
      mesh: a 1-D mesh whose single axis is ``axis_name`` (``rl_repr.core.mesh.make_mesh``).
      axis_name: the mesh axis the batch is split over.
      donate: donate the state's buffers to the step (the old state is dead after it).
      state_specs: a pytree prefix of the state, ``P()`` (replicated) or ``P(axis_name)`` (split
        along the leading axis) per subtree; None replicates the whole state (module docstring).
    """

    def __init__(self, name: str, mesh: Mesh, *, axis_name: str = "data", donate: bool = True,
                 state_specs: Any = None):
        if name not in DRIVERS:
            raise ConfigError(f"config.parallel={name!r} is not a driver; choose one of {DRIVERS}.")
        if name == "pmap" and list(mesh.local_devices) != jax.local_devices():
            raise ConfigError(f"parallel='pmap' runs on all {jax.local_device_count()} local devices, but the "
                             f"mesh has {len(mesh.local_devices)}; leave config.num_devices at 0 or use "
                             "parallel='jit' or 'shard_map' for a subset.")
        self.name, self.mesh, self.axis_name, self.donate = name, mesh, axis_name, donate
        self.state_specs = P() if state_specs is None else state_specs
        specs = jax.tree.leaves(self.state_specs)
        if any(spec not in (P(), P(axis_name)) for spec in specs):
            raise ValueError(f"state_specs may hold only P() and P({axis_name!r}), got {specs}.")
        if name == "pmap" and P(axis_name) in specs and jax.process_count() > 1:
            raise ConfigError("config.parallel='pmap' splits this method's state over the devices of one "
                              "process only; use parallel='jit' or 'shard_map' for a multi-process run.")
        self.state_sharding = jax.tree.map(lambda spec: NamedSharding(mesh, spec), self.state_specs)
        self.replicated = NamedSharding(mesh, P())
        self.batch_sharding = NamedSharding(mesh, P(axis_name))
        self.num_devices = mesh.devices.size

    # ----------------------------------------------------------------- placement
    def put_state(self, state: Any) -> Any:
        """Host or global state -> the layout the compiled step expects."""
        if self.name == "pmap":
            return jax.tree.map(lambda spec, part: jax_utils.replicate(part) if spec == P() else
                                jax.tree.map(_split_over_local_devices, part), self.state_specs, jax.device_get(state))
        return jax.device_put(state, self.state_sharding)

    def get_state(self, placed: Any) -> Any:
        """The compiled step's layout -> one global copy (for checkpoints and evaluation)."""
        if self.name == "pmap":
            return jax.tree.map(lambda spec, part: jax_utils.unreplicate(part) if spec == P() else jax.tree.map(
                lambda x: x.reshape(-1, *x.shape[2:]), part), self.state_specs, placed)
        return placed

    def put_batch(self, local_batch: dict[str, np.ndarray]) -> dict[str, jax.Array]:
        """This process's rows of the global batch -> a batch laid out for the step.

        Every process passes its own ``global_batch / process_count`` rows, in process order
        (``jax.make_array_from_process_local_data``); under pmap the rows are split over the
        local devices (``flax.training.common_utils.shard``), the same contiguous split.
        """
        if self.name == "pmap":
            return common_utils.shard(local_batch)
        return jax.tree.map(
            lambda x: jax.make_array_from_process_local_data(self.batch_sharding, x), local_batch)

    # ----------------------------------------------------------------- compilation
    def compile_step(self, per_device_step: PerDeviceStep) -> Callable[[Any, Any], tuple[Any, Any]]:
        """Returns ``step(placed_state, placed_batch) -> (placed_state, metrics)``; metrics are
        replicated scalars (``float(metrics['loss'])`` works on every driver)."""
        donate = (0,) if self.donate else ()
        if self.name == "jit":
            fn = functools.partial(per_device_step, axis_name=None)
            return jax.jit(fn, in_shardings=(self.state_sharding, self.batch_sharding),
                           out_shardings=(self.state_sharding, self.replicated), donate_argnums=donate)
        per_device = functools.partial(per_device_step, axis_name=self.axis_name)
        if self.name == "shard_map":
            mapped = jax.shard_map(per_device, mesh=self.mesh, in_specs=(self.state_specs, P(self.axis_name)),
                                   out_specs=(self.state_specs, P()), check_vma=False)
            return jax.jit(mapped, donate_argnums=donate)
        pmapped = jax.pmap(per_device, axis_name=self.axis_name, donate_argnums=donate)

        def step(state, batch):
            state, metrics = pmapped(state, batch)
            return state, jax.tree.map(lambda x: x[0], metrics)

        return step


def _split_over_local_devices(x: np.ndarray) -> jax.Array:
    """``[rows, ...]`` -> ``[devices, rows / devices, ...]``, device i holding the i-th block (pmap's layout)."""
    devices = jax.local_devices()
    mesh = Mesh(np.array(devices), ("local",))
    return jax.device_put(x.reshape(len(devices), -1, *x.shape[1:]), NamedSharding(mesh, P("local")))


def sum_gradients(grads: Any, axis_name: str | None) -> Any:
    """The full gradient from per-device shares (identity on the global batch)."""
    return grads if axis_name is None else jax.lax.psum(grads, axis_name)


def local_copy(tree: Any) -> Any:
    """A host copy of a replicated pytree that works on every process of a multi-host run
    (where a global array is not fully addressable): the first local shard of each leaf."""
    def leaf(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return np.asarray(x.addressable_data(0))
        return np.asarray(x)
    return jax.tree.map(leaf, tree)
