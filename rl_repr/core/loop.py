"""The one training loop every method shares.

Reads top to bottom: resume from the latest intact checkpoint, then for each step fetch the
batch, run the compiled step, log, evaluate and checkpoint; stop early (with a checkpoint) on
SIGTERM or a cluster's preemption notice. The runner (``rl_repr.core.runner``) builds its pieces.

Non-finite values never reach a checkpoint: the loss of *every* step is checked (the metrics of
the steps since the last check are fetched together at each log or save step, so the device is
never waited on per step), and the whole state is checked on device before each save. A state
can also be finite but already lost: with a learning rate far too high, batch norm keeps the
loss finite while the weights grow by orders of magnitude a step, and resuming from such a
checkpoint fails again. So a save is also refused when the parameters' global norm grew more
than ``LoopConfig.max_growth``-fold since the previous save (or the start). The first such step
stops the run with :class:`~rl_repr.core.errors.NonFiniteError`, keeping the newest checkpoint,
from which the advised rerun (a lower rate) continues.
"""
from __future__ import annotations

import dataclasses
import math
import signal
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from rl_repr.core.drivers import Driver
from rl_repr.core.errors import NonFiniteError
from rl_repr.core.log import logger
from rl_repr.core.metrics import MetricsWriter, Progress


@dataclasses.dataclass
class LoopConfig:
    """How often the loop logs, evaluates and checkpoints.

    Attributes:
      total_steps: the step the run ends at (a resumed run continues up to it).
      log_every: steps between metric lines.
      eval_every: steps between calls of ``evaluate`` (0 = only at the end).
      stop_after: stop (with a checkpoint) once this step is reached, without ending the run;
        what a preempted job looks like. ``None`` runs to ``total_steps``.
      nan_fix: what the non-finite message tells the user to change (the method's own keys).
      rerun: how the message says to continue from the kept checkpoint with changed settings.
      max_growth: refuse to save when the parameters' global norm grew more than this factor
        since the previous save or the start (None: no check, for methods whose parameters
        start near zero, such as word vectors).
    """

    total_steps: int
    log_every: int = 10
    eval_every: int = 0
    stop_after: int | None = None
    nan_fix: str = "lower config.base_lr (or raise config.warmup_epochs)"
    rerun: str = "rerun the same command"
    max_growth: float | None = 1e3


def train_loop(
    *,
    state: Any,
    driver: Driver,
    step_fn: Callable[[Any, Any], tuple[Any, Mapping[str, Any]]],
    batch_for_step: Callable[[int], Any],
    loop: LoopConfig,
    checkpointer: Any,
    writer: MetricsWriter,
    evaluate: Callable[[Any, int], Mapping[str, float]] | None = None,
    on_restored: Callable[[Any, int], None] | None = None,
) -> tuple[Any, int]:
    """Runs ``step_fn`` from the latest checkpoint up to ``loop.total_steps``.

    Args:
      state: the freshly initialised global state (used as the restore target).
      driver: places state/batches for the compiled ``step_fn``.
      step_fn: ``(placed_state, placed_batch) -> (placed_state, metrics)``.
      batch_for_step: ``step -> placed batch``; must be a pure function of the step so a
        resumed run sees the batches an uninterrupted run would have seen.
      checkpointer: an ``rl_repr.core.checkpoint.Checkpointer``.
      writer: where metrics go; rows after the restored step are dropped on resume.
      evaluate: ``(global_state, step) -> metrics``, called every ``eval_every`` steps.
      on_restored: called with the restored state and the step training starts from (the
        runner checks the state there and writes ``config.json``: only a run that could start
        changes it).

    Returns:
      ``(global_state, step)`` where the loop stopped: ``loop.total_steps``, or earlier after
      SIGTERM, a preemption notice or ``loop.stop_after`` (a checkpoint is written there).

    Raises:
      NonFiniteError: a loss or the state became NaN/inf; no checkpoint after the last finite
        one is written, and the message says how to continue from it.
    """
    state, step = checkpointer.restore_latest(state)
    writer.drop_after(step)
    if on_restored is not None:
        on_restored(state, step)
    if step:
        logger.info(f"Resuming from the checkpoint at step {step}.")
    placed = driver.put_state(state)
    progress = Progress(loop.total_steps, every=loop.log_every)
    signalled = _SigtermFlag()
    end = loop.total_steps if loop.stop_after is None else min(loop.stop_after, loop.total_steps)
    unchecked: list[tuple[int, Mapping[str, Any]]] = []  # (step, metrics) not yet checked
    # the last saved (or initial) parameters' norm, from the placed state: the check then compiles
    # once for the layout every later call sees
    healthy = _Health(driver.get_state(placed), step, loop.max_growth)

    progress.start(step)
    try:
        while step < end:
            placed, metrics = step_fn(placed, batch_for_step(step))
            step += 1
            unchecked.append((step, metrics))
            last = step == end
            # Every process asks at every step (JAX's preemption sync point requires it).
            preempted = signalled.raised or checkpointer.reached_preemption(step)
            saving = last or preempted or step % checkpointer.save_every_steps == 0
            if step % loop.log_every == 0 or saving:
                metrics = _checked(jax.device_get(unchecked), checkpointer, loop)
                unchecked = []
                writer.write(step, metrics)
                if step % loop.log_every == 0 or last:
                    progress.update(step, metrics, force=last)
            if saving:
                problem = healthy.problem(driver.get_state(placed), step)
                if problem:
                    raise NonFiniteError(_advice(problem, checkpointer, loop))
            if evaluate is not None and loop.eval_every and step % loop.eval_every == 0 and not last:
                writer.write(step, evaluate(driver.get_state(placed), step))
            checkpointer.maybe_save(step, driver.get_state(placed), force=last or preempted)
            if preempted:
                reason = "a signal" if signalled.raised else "the cluster's preemption notice"
                logger.info(f"Stopped by {reason} at step {step}; rerun the same command to resume.")
                break
        checkpointer.wait()
    finally:
        signalled.restore()
    return driver.get_state(placed), step


@jax.jit
def _finite_and_norm(state: Any) -> tuple[jax.Array, jax.Array]:
    """Whether every floating leaf of ``state`` is finite, and the global norm of its parameters
    (``state.params``, or the whole state without one): one pass on device."""
    def floating(tree):
        return [leaf for leaf in jax.tree.leaves(tree) if jnp.issubdtype(jnp.result_type(leaf), jnp.inexact)]

    finite = [jnp.all(jnp.isfinite(leaf)) for leaf in floating(state)]
    params = floating(getattr(state, "params", state))
    norm = jnp.sqrt(sum(jnp.sum(jnp.square(leaf.astype(jnp.float32))) for leaf in params)) if params else 0.0
    return (jnp.all(jnp.stack(finite)) if finite else jnp.array(True)), jnp.asarray(norm)


class _Health:
    """Checks a state before it is saved: finite, and parameters not exploding."""

    def __init__(self, state: Any, step: int, max_growth: float | None):
        self.max_growth, self.step = max_growth, step
        self.norm = float(_finite_and_norm(state)[1]) if max_growth else 0.0

    def problem(self, state: Any, step: int) -> str | None:
        """Why ``state`` must not be saved, or None (then it becomes the reference)."""
        finite, norm = (np.asarray(x) for x in jax.device_get(_finite_and_norm(state)))
        if not finite:
            return f"The training state became non-finite by step {step} (its loss was still finite)"
        if self.max_growth and self.norm > 0 and norm > self.max_growth * self.norm:
            return (f"The parameters grew {norm / self.norm:.3g}-fold between step {self.step} and step {step} "
                    "(diverging, though still finite)")
        self.norm, self.step = float(norm), step
        return None


def _checked(fetched: list[tuple[int, Mapping[str, Any]]], checkpointer: Any, loop: LoopConfig) -> Mapping:
    """The last step's metrics, after checking every fetched step's loss is finite."""
    for step, metrics in fetched:
        loss = metrics.get("loss")
        if loss is not None and not math.isfinite(float(np.asarray(loss))):
            raise NonFiniteError(_advice(f"The training loss became {float(np.asarray(loss))} at step {step}",
                                         checkpointer, loop))
    return fetched[-1][1]


def _advice(what: str, checkpointer: Any, loop: LoopConfig) -> str:
    last = checkpointer.latest_step()
    if last:
        return (f"{what}; the checkpoint at step {last} is kept and finite: {loop.nan_fix} and {loop.rerun} "
                "to continue from it, or pass a fresh --workdir to start over.")
    return f"{what}; no checkpoint was written: {loop.nan_fix} and rerun the same command."


class _SigtermFlag:
    """Turns SIGTERM (a preempted TPU/GPU job) into 'checkpoint now, then stop'."""

    def __init__(self):
        self.raised = False
        self._previous = None
        try:
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not the main thread: leave signals alone
            self._previous = None

    def _handle(self, signum, frame):  # noqa: ARG002
        self.raised = True

    def restore(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
