"""The one training loop every method shares.

Reads top to bottom: resume from the latest checkpoint, then for each step fetch the batch, run
the compiled step, log, evaluate and checkpoint; stop early (with a checkpoint) on SIGTERM or a
cluster's preemption notice. The runner (``rl_repr.core.runner``) builds its pieces.
"""
from __future__ import annotations

import dataclasses
import math
import signal
from typing import Any, Callable, Mapping

import jax
import numpy as np

from rl_repr.core.drivers import Driver
from rl_repr.core.log import logger
from rl_repr.core.metrics import MetricsWriter, Progress


class NonFiniteLossError(FloatingPointError):
    """Raised when the training loss becomes NaN or infinite."""


@dataclasses.dataclass
class LoopConfig:
    """How often the loop logs, evaluates and checkpoints.

    Attributes:
      total_steps: the step the run ends at (a resumed run continues up to it).
      log_every: steps between metric lines and the NaN check.
      eval_every: steps between calls of ``evaluate`` (0 = only at the end).
      stop_after: stop (with a checkpoint) once this step is reached, without ending the run;
        what a preempted job looks like. ``None`` runs to ``total_steps``.
      nan_fix: what the NaN-loss message tells the user to change (the method's own keys).
    """

    total_steps: int
    log_every: int = 10
    eval_every: int = 0
    stop_after: int | None = None
    nan_fix: str = "lower config.base_lr (or raise config.warmup_epochs)"


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
) -> tuple[Any, int]:
    """Runs ``step_fn`` from the latest checkpoint up to ``loop.total_steps``.

    Args:
      state: the freshly initialised global state (used as the restore target).
      driver: places state/batches for the compiled ``step_fn``.
      step_fn: ``(placed_state, placed_batch) -> (placed_state, metrics)``.
      batch_for_step: ``step -> placed batch``; must be a pure function of the step so a
        resumed run sees the batches an uninterrupted run would have seen.
      checkpointer: an ``rl_repr.core.checkpoint.Checkpointer``.
      writer: where metrics go.
      evaluate: ``(global_state, step) -> metrics``, called every ``eval_every`` steps.

    Returns:
      ``(global_state, step)`` where the loop stopped: ``loop.total_steps``, or earlier after
      SIGTERM, a preemption notice or ``loop.stop_after`` (a checkpoint is written there).

    Raises:
      NonFiniteLossError: the loss became NaN/inf; the last good checkpoint is kept and the
        message says how to resume with a smaller learning rate.
    """
    state, step = checkpointer.restore_latest(state)
    if step:
        logger.info(f"Resuming from the checkpoint at step {step}.")
    placed = driver.put_state(state)
    progress = Progress(loop.total_steps, every=loop.log_every)
    signalled = _SigtermFlag()
    end = loop.total_steps if loop.stop_after is None else min(loop.stop_after, loop.total_steps)

    progress.start(step)
    try:
        while step < end:
            placed, metrics = step_fn(placed, batch_for_step(step))
            step += 1
            last = step == end
            # Every process asks at every step (JAX's preemption sync point requires it).
            preempted = signalled.raised or checkpointer.reached_preemption(step)
            saving = last or preempted or step % checkpointer.save_every_steps == 0
            if step % loop.log_every == 0 or saving:  # never checkpoint a NaN state
                metrics = jax.device_get(metrics)
                _check_finite(metrics, step, checkpointer, loop.nan_fix)
                writer.write(step, metrics)
                if step % loop.log_every == 0 or last:
                    progress.update(step, metrics, force=last)
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


def _check_finite(metrics: Mapping[str, Any], step: int, checkpointer: Any, fix: str) -> None:
    loss = metrics.get("loss")
    if loss is not None and not math.isfinite(float(np.asarray(loss))):
        last = checkpointer.latest_step()
        kept = f"the checkpoint at step {last} is kept" if last else "no checkpoint was written"
        raise NonFiniteLossError(
            f"The training loss became {float(np.asarray(loss))} at step {step}; {kept}: {fix} "
            "and rerun the same command to resume.")


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
