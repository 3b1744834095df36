"""One runner for every method: ``run(method, config, workdir)``.

The set-up and tear-down every method shares live here once; a method supplies only what
differs, as a :class:`Method` (its config defaults and rules, and ``plan``: the data, model,
optimizer, initial state, per-device step, batches, monitor and final evaluation of a run).

Story of a run:

    validate the config (unknown keys, system + method rules)    -- nothing has started yet
    -> the workdir: writable, locked for this run, holding no run of another config
    -> simulated CPU devices, multi-host start-up, the device mesh
    -> the method's plan (its data, model, optimizer, state, step)
    -> compile the per-device step under the configured driver
    -> checkpointer, metrics writer; restore the latest intact checkpoint; config.json
    -> the shared loop (log, monitor, checkpoint, stop on SIGTERM / preemption / NaN)
    -> the method's final evaluation -> results.json

Every mistake in the config, the data or the workdir is a ``rl_repr.core.errors.UserError``
with one sentence that names it, raised before anything is written.

Methods are found by name through :mod:`rl_repr.core.registry`, by the command line, the demo
and sweeps alike.
"""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import time
from typing import Any, Callable, Iterator, Mapping

import jax
import numpy as np

from rl_repr.core import config as cfg
from rl_repr.core import mesh as mesh_lib
from rl_repr.core import registry
from rl_repr.core import workdir as workdir_lib
from rl_repr.core.checkpoint import Checkpointer
from rl_repr.core.drivers import Driver, PerDeviceStep
from rl_repr.core.errors import WorkdirError
from rl_repr.core.extras import require
from rl_repr.core.files import write_json
from rl_repr.core.loop import LoopConfig, train_loop
from rl_repr.core.metrics import MetricsWriter
from rl_repr.core.prefetch import DevicePrefetch
from rl_repr.core.recipes import config_to_json
from rl_repr.core.system import system_rules

ml_collections = require("ml_collections")


@dataclasses.dataclass(frozen=True)
class Method:
    """What a method supplies to the runner.

    Attributes:
      name: ``config.method`` and the name of its package (``rl_repr.<name>``).
      defaults: ``() -> ConfigDict`` with every key the method reads (from
        ``rl_repr.core.system.system_defaults``); a key it lacks is an error.
      rules: ``() -> [Rule]``, the method's own rules (the runner adds the system rules).
      global_batch_size: ``(config, num_devices) -> int``, checked against the mesh before any
        data is read.
      plan: ``(config, mesh) -> Plan``: everything method-specific before the first step.
      nan_fix: what the NaN-loss message tells the user to change (the method's own keys).
      max_growth: the loop refuses to save parameters whose global norm grew more than this
        factor since the last save (diverging though finite); None turns the check off (for
        parameters that start near zero, as word vectors do).
    """

    name: str
    defaults: Callable[[], ml_collections.ConfigDict]
    rules: Callable[[], list[cfg.Rule]]
    global_batch_size: Callable[[ml_collections.ConfigDict, int], int]
    plan: Callable[[ml_collections.ConfigDict, Any], "Plan"]
    nan_fix: str = "lower config.base_lr"
    max_growth: float | None = 1e3


@dataclasses.dataclass(frozen=True)
class Finished:
    """What the final evaluation may want to know about the training that just ended.

    ``first_step`` is where this process resumed (0 for a fresh run), ``started`` the
    ``time.perf_counter()`` at which its loop began, ``seconds`` / ``cpu_seconds`` how long
    the loop took (wall and this process's CPU), ``workdir`` where the run's files go.
    """

    workdir: str
    first_step: int
    last_step: int
    started: float
    seconds: float
    cpu_seconds: float


@dataclasses.dataclass
class Plan:
    """A method's run, ready for its first step.

    Attributes:
      state: the initial global state (the restore target of a resumed run).
      per_device_step: ``(state, batch, axis_name) -> (state, metrics)``, see
        ``rl_repr.core.drivers``; ``metrics['loss']`` is checked for NaN.
      batch_for_step: ``step -> {name: array}``, this process's rows of the global batch as
        host arrays; a pure function of the step (a resumed run sees the same batches).
      total_steps: the step the run ends at.
      final_evaluation: ``(global_state, finished) -> results`` once training has ended.
      monitor: ``(global_state, step) -> metrics`` every ``eval_every`` steps (None: none).
      eval_every: steps between monitor calls (0: only the final evaluation).
      wrap_step: optionally wraps the compiled step (e.g. to measure throughput).
      extras: method-specific objects a caller may inspect (its datasets, say).
      state_specs: which parts of the state are split over the devices instead of replicated
        (a pytree prefix of ``state`` with ``P()`` / ``P('data')``; ``rl_repr.core.drivers``).
      batches_from: ``step -> iterator`` of this process's host batches of steps ``step, step + 1,
        ...`` (a stream, e.g. images decoded from disk); when given, the runner reads it and
        places each batch on the devices a step ahead (``rl_repr.core.prefetch``).
      on_restored: ``(state, step) -> None``, checks a state restored from a checkpoint before
        training continues (a streaming run: that the checkpoint read the same dataset).
    """

    state: Any
    per_device_step: PerDeviceStep
    batch_for_step: Callable[[int], Mapping[str, np.ndarray]]
    total_steps: int
    final_evaluation: Callable[[Any, Finished], dict]
    monitor: Callable[[Any, int], Mapping[str, float]] | None = None
    eval_every: int = 0
    wrap_step: Callable[[Callable], Callable] | None = None
    extras: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    state_specs: Any = None
    batches_from: Callable[[int], Iterator[Mapping[str, np.ndarray]]] | None = None
    on_restored: Callable[[Any, int], None] | None = None


@dataclasses.dataclass
class Run:
    """A validated, compiled run: what :func:`run` trains, and what tests step by hand::

        run = runner.build(config)
        placed = run.driver.put_state(run.state)
        placed, metrics = run.step_fn(placed, run.batch_for_step(0))

    :func:`build` makes one from a config.
    """

    config: ml_collections.ConfigDict
    method: Method
    plan: Plan
    driver: Driver
    step_fn: Callable[[Any, Any], tuple[Any, Any]]
    _prefetch: DevicePrefetch | None = dataclasses.field(default=None, init=False, repr=False)

    @property
    def state(self) -> Any:
        return self.plan.state

    def batch_for_step(self, step: int) -> Any:
        """Step ``step``'s batch, placed for the compiled step (a plan's stream: read in order,
        the next batch placed while this one is used)."""
        if self.plan.batches_from is None:
            return self.driver.put_batch(dict(self.plan.batch_for_step(step)))
        if self._prefetch is None:
            self._prefetch = DevicePrefetch(self.plan.batches_from, lambda b: self.driver.put_batch(dict(b)))
        return self._prefetch(step)

    def close(self) -> None:
        """Stops reading the plan's stream (a later ``batch_for_step`` reopens it)."""
        if self._prefetch is not None:
            self._prefetch.close()


def validate(config: ml_collections.ConfigDict) -> Method:
    """Checks ``config`` against its method (``config.method``): unknown keys, the system
    rules and the method's rules; returns the method. Raises ``ConfigError`` (one sentence per
    problem) before anything starts."""
    method = registry.get_method(config.get("method"))
    defaults = method.defaults()
    cfg.check_known_keys(config, defaults, f"rl_repr/{method.name}/config.py")
    cfg.validate_config(config, system_rules() + method.rules())
    return method


def start_devices(config: ml_collections.ConfigDict):
    """Simulated CPU devices, multi-host start-up and the mesh; checks the batch splits over it."""
    method = validate(config)
    mesh_lib.request_cpu_devices(config.cpu_devices)  # before anything starts JAX's backend
    mesh_lib.maybe_initialize_distributed(config)
    mesh = mesh_lib.make_mesh(config.num_devices or None)
    mesh_lib.check_batch_divisible(method.global_batch_size(config, mesh.devices.size), mesh)
    return method, mesh


def build(config: ml_collections.ConfigDict, *, started: tuple | None = None) -> Run:
    """Validates, starts the devices and the mesh, plans the method's run and compiles its step."""
    method, mesh = started or start_devices(config)
    plan = method.plan(config, mesh)
    driver = Driver(config.parallel, mesh, state_specs=plan.state_specs)
    return Run(config, method, plan, driver, driver.compile_step(plan.per_device_step))


def run(method: str, config: ml_collections.ConfigDict, workdir: str, *,
        stop_after_step: int | None = None, allow_config_change: bool = False) -> dict:
    """Trains ``config`` (a ``method`` config) in ``workdir``, evaluates it, returns the results.

    Writes ``config.json``, ``checkpoints/``, ``metrics.jsonl``, ``tensorboard/`` and finally
    ``results.json`` under ``workdir``. Rerunning with the same ``workdir`` resumes from the
    latest intact checkpoint. ``stop_after_step`` stops early with a checkpoint, as a preempted
    job would, and returns ``{'stopped_at_step': step}`` (so does SIGTERM); evaluation then
    waits for the run that finishes.

    A workdir whose checkpoints or results were made with other settings is refused (the
    message lists the changed keys) unless ``allow_config_change``: then the run continues
    from its checkpoint with the new values and the old ``config.json`` is kept beside the new
    one. Another process training in the same workdir is refused.
    """
    if config.get("method") != method:
        raise cfg.ConfigError(f"config.method is {config.get('method')!r} but the run was asked for "
                              f"{method!r}; set config.method={method!r} or run the config's own method.")
    validate(config)
    workdir_lib.check_usable(workdir)  # a file, or not writable: one sentence before anything starts
    _refuse_changed_config(workdir, config, allow_config_change)
    started = start_devices(config)
    with workdir_lib.WorkdirLock(workdir) if jax.process_index() == 0 else contextlib.nullcontext():
        built = build(config, started=started)
        try:
            return _train_and_evaluate(built, workdir, stop_after_step, allow_config_change)
        except Exception as error:  # noqa: BLE001 - orbax and tensorstore wrap OSError in their own types
            if _disk_full(error):
                raise WorkdirError(f"the disk under {workdir} is full ({error}); free some space and rerun the "
                                   "same command: it resumes from the newest checkpoint, which is intact.") from None
            raise


def _refuse_changed_config(workdir: str, config: ml_collections.ConfigDict, allowed: bool) -> None:
    changes = workdir_lib.config_changes(workdir, config)
    if changes and workdir_lib.has_progress(workdir) and not allowed:
        more = f" and {len(changes) - 3} more" if len(changes) > 3 else ""
        raise cfg.ConfigError(f"{workdir} holds a run made with other settings ({'; '.join(changes[:3])}{more}); "
                              "rerun with the config it was made with, pass --allow_config_change to continue "
                              "its checkpoints with the new values, or pass a fresh --workdir.")


def _train_and_evaluate(built: Run, workdir: str, stop_after_step: int | None, allow_config_change: bool) -> dict:
    config, plan = built.config, built.plan
    checkpointer = Checkpointer(os.path.join(workdir, "checkpoints"),
                                save_every_steps=config.checkpoint_every_steps)
    writer = MetricsWriter(workdir)
    rerun = "rerun with --allow_config_change" if not allow_config_change else "rerun"
    loop = LoopConfig(total_steps=plan.total_steps, log_every=config.log_every_steps, eval_every=plan.eval_every,
                      stop_after=stop_after_step, nan_fix=built.method.nan_fix, rerun=rerun,
                      max_growth=built.method.max_growth)
    step_fn = plan.wrap_step(built.step_fn) if plan.wrap_step else built.step_fn
    first_step = checkpointer.latest_step() or 0
    start, cpu_start = time.perf_counter(), time.process_time()
    try:
        try:
            state, step = train_loop(state=plan.state, driver=built.driver, step_fn=step_fn,
                                     batch_for_step=built.batch_for_step, loop=loop, checkpointer=checkpointer,
                                     writer=writer, evaluate=plan.monitor,
                                     on_restored=lambda state, step: _restored(workdir, config, plan, state, step))
            jax.block_until_ready(state)
        finally:
            built.close()
            checkpointer.close()
        if step < plan.total_steps:  # stopped early (preemption): evaluate on the run that finishes
            return {"stopped_at_step": step}
        finished = Finished(workdir, first_step, step, start, time.perf_counter() - start,
                            time.process_time() - cpu_start)
        results = plan.final_evaluation(state, finished)
        results.update(steps=plan.total_steps, train_seconds=round(finished.seconds, 1),
                       train_cpu_seconds=round(finished.cpu_seconds, 1), devices=built.driver.num_devices)
        writer.write(step, {k: v for k, v in results.items() if isinstance(v, float)})
    finally:
        writer.close()
    if jax.process_index() == 0:
        write_json(os.path.join(workdir, "results.json"), results)
    return results


def _restored(workdir: str, config: ml_collections.ConfigDict, plan: Plan, state: Any, step: int) -> None:
    """Once the state is restored: the plan's check, then ``config.json``."""
    if plan.on_restored is not None:
        plan.on_restored(state, step)
    _write_config(workdir, config, step)


def _write_config(workdir: str, config: ml_collections.ConfigDict, step: int) -> None:
    """``config.json`` once the run can start; a changed one keeps its predecessor beside it."""
    if jax.process_index() != 0:
        return
    path = os.path.join(workdir, "config.json")
    if workdir_lib.config_changes(workdir, config):
        os.replace(path, os.path.join(workdir, f"config.before-step-{step}.json"))
    config_to_json(config, path)


def _disk_full(error: BaseException | None) -> bool:
    """Whether ``error`` (or what caused it) is 'no space left on device'."""
    while error is not None:
        if getattr(error, "errno", None) == errno.ENOSPC or "No space left on device" in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False
