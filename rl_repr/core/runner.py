"""One runner for every method: ``run(method, config, workdir)``.

The set-up and tear-down every method shares live here once; a method supplies only what
differs, as a :class:`Method` (its config defaults and rules, and ``plan``: the data, model,
optimizer, initial state, per-device step, batches, monitor and final evaluation of a run).

Story of a run:

    validate the config (unknown keys, system + method rules)    -- nothing has started yet
    -> simulated CPU devices, multi-host start-up, the device mesh
    -> the method's plan (its data, model, optimizer, state, step)
    -> compile the per-device step under the configured driver
    -> config.json, checkpointer, metrics writer
    -> the shared loop (resume, log, monitor, checkpoint, stop on SIGTERM / preemption / NaN)
    -> the method's final evaluation -> results.json

Methods are found by name through :mod:`rl_repr.core.registry`, by the command line, the demo
and sweeps alike.
"""
from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Callable, Mapping

import jax
import ml_collections
import numpy as np

from rl_repr.core import config as cfg
from rl_repr.core import mesh as mesh_lib
from rl_repr.core import registry
from rl_repr.core.checkpoint import Checkpointer
from rl_repr.core.drivers import Driver, PerDeviceStep
from rl_repr.core.files import write_json
from rl_repr.core.loop import LoopConfig, train_loop
from rl_repr.core.metrics import MetricsWriter
from rl_repr.core.recipes import config_to_json
from rl_repr.core.system import system_rules


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
    """

    name: str
    defaults: Callable[[], ml_collections.ConfigDict]
    rules: Callable[[], list[cfg.Rule]]
    global_batch_size: Callable[[ml_collections.ConfigDict, int], int]
    plan: Callable[[ml_collections.ConfigDict, Any], "Plan"]
    nan_fix: str = "lower config.base_lr"


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


@dataclasses.dataclass
class Run:
    """A validated, compiled run: what :func:`run` trains, and what tests step by hand::

        run = runner.build(config)
        placed = run.driver.put_state(run.state)
        placed, metrics = run.step_fn(placed, run.batch_for_step(0))
    """

    config: ml_collections.ConfigDict
    method: Method
    plan: Plan
    driver: Driver
    step_fn: Callable[[Any, Any], tuple[Any, Any]]

    @property
    def state(self) -> Any:
        return self.plan.state

    def batch_for_step(self, step: int) -> Any:
        """Step ``step``'s batch, placed for the compiled step."""
        return self.driver.put_batch(dict(self.plan.batch_for_step(step)))


def validate(config: ml_collections.ConfigDict) -> Method:
    """Checks ``config`` against its method (``config.method``): unknown keys, the system
    rules and the method's rules; returns the method. Raises ``ConfigError`` (one sentence per
    problem) before anything starts."""
    method = registry.get_method(config.get("method"))
    defaults = method.defaults()
    cfg.check_known_keys(config, defaults, f"rl_repr/{method.name}/config.py")
    cfg.validate_config(config, system_rules() + method.rules())
    return method


def build(config: ml_collections.ConfigDict) -> Run:
    """Validates, starts the devices and the mesh, plans the method's run and compiles its step."""
    method = validate(config)
    mesh_lib.request_cpu_devices(config.cpu_devices)  # before anything starts JAX's backend
    mesh_lib.maybe_initialize_distributed(config)
    mesh = mesh_lib.make_mesh(config.num_devices or None)
    mesh_lib.check_batch_divisible(method.global_batch_size(config, mesh.devices.size), mesh)
    plan = method.plan(config, mesh)
    driver = Driver(config.parallel, mesh)
    return Run(config, method, plan, driver, driver.compile_step(plan.per_device_step))


def run(method: str, config: ml_collections.ConfigDict, workdir: str, *,
        stop_after_step: int | None = None) -> dict:
    """Trains ``config`` (a ``method`` config) in ``workdir``, evaluates it, returns the results.

    Writes ``config.json``, ``checkpoints/``, ``metrics.jsonl``, ``tensorboard/`` and finally
    ``results.json`` under ``workdir``. Rerunning with the same ``workdir`` resumes from the
    latest checkpoint. ``stop_after_step`` stops early with a checkpoint, as a preempted job
    would, and returns ``{'stopped_at_step': step}`` (so does SIGTERM); evaluation then waits
    for the run that finishes.
    """
    if config.get("method") != method:
        raise cfg.ConfigError(f"config.method is {config.get('method')!r} but the run was asked for "
                              f"{method!r}; set config.method={method!r} or run the config's own method.")
    built = build(config)
    plan = built.plan
    os.makedirs(workdir, exist_ok=True)
    if jax.process_index() == 0:
        config_to_json(config, os.path.join(workdir, "config.json"))
    checkpointer = Checkpointer(os.path.join(workdir, "checkpoints"),
                                save_every_steps=config.checkpoint_every_steps)
    writer = MetricsWriter(workdir)
    loop = LoopConfig(total_steps=plan.total_steps, log_every=config.log_every_steps,
                      eval_every=plan.eval_every, stop_after=stop_after_step, nan_fix=built.method.nan_fix)
    step_fn = plan.wrap_step(built.step_fn) if plan.wrap_step else built.step_fn
    first_step = checkpointer.latest_step() or 0
    start, cpu_start = time.perf_counter(), time.process_time()
    try:
        state, step = train_loop(state=plan.state, driver=built.driver, step_fn=step_fn,
                                 batch_for_step=built.batch_for_step, loop=loop, checkpointer=checkpointer,
                                 writer=writer, evaluate=plan.monitor)
        jax.block_until_ready(state)
        finished = Finished(workdir, first_step, step, start, time.perf_counter() - start,
                            time.process_time() - cpu_start)
    finally:
        checkpointer.close()
    if step < plan.total_steps:  # stopped early (preemption): evaluate on the run that finishes
        writer.close()
        return {"stopped_at_step": step}
    results = plan.final_evaluation(state, finished)
    results.update(steps=plan.total_steps, train_seconds=round(finished.seconds, 1),
                   devices=built.driver.num_devices)
    writer.write(step, {k: v for k, v in results.items() if isinstance(v, float)})
    writer.close()
    if jax.process_index() == 0:
        write_json(os.path.join(workdir, "results.json"), results)
    return results
