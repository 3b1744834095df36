"""Where training numbers go: a JSONL file, TensorBoard, and a progress line."""
from __future__ import annotations

import json
import os
import time
from typing import Mapping

import jax
import numpy as np

from rl_repr.core.files import atomic_open
from rl_repr.core.log import logger


def _to_float(value) -> float:
    return float(np.asarray(value))


def _row_step(line: str) -> int | None:
    """The step of a ``metrics.jsonl`` line, or None for a line that is not a whole row."""
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None


class MetricsWriter:
    """Appends ``{"step": s, **metrics}`` lines to ``<workdir>/metrics.jsonl`` and writes the
    same scalars as TensorBoard summaries under ``<workdir>/tensorboard``.

    Only process 0 writes, so a multi-host run produces one copy. TensorBoard is optional:
    without TensorFlow, or when writing a summary fails, the JSONL file is still written and
    one warning says why the summaries stopped.
    """

    def __init__(self, workdir: str, *, tensorboard: bool = True):
        self._active = jax.process_index() == 0
        self._path = os.path.join(workdir, "metrics.jsonl")
        self._tb = None
        if self._active and tensorboard:
            try:
                os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
                import tensorflow as tf  # noqa: PLC0415 (heavy, optional)

                tf.config.set_visible_devices([], "GPU")  # TF must never take accelerator memory
                self._tf = tf
                self._tb = tf.summary.create_file_writer(os.path.join(workdir, "tensorboard"))
            except Exception as error:  # noqa: BLE001 - summaries are a convenience, never fatal
                self._give_up_tensorboard(error)

    def _give_up_tensorboard(self, error: BaseException) -> None:
        self._tb = None
        logger.warning(f"TensorBoard summaries are off for this run ({type(error).__name__}: "
                       f"{str(error).splitlines()[0] if str(error) else 'no message'}); metrics.jsonl "
                       "has every number.")

    def drop_after(self, step: int) -> None:
        """Drops the rows of steps after ``step`` (and any half-written line), atomically.

        A run resumed from the checkpoint at ``step`` writes those steps again, so
        ``metrics.jsonl`` never holds a step twice.
        """
        if not self._active or not os.path.exists(self._path):
            return
        with open(self._path) as f:
            lines = f.read().splitlines()
        kept = [line for line in lines if _row_step(line) is not None and _row_step(line) <= step]
        if len(kept) != len(lines):
            with atomic_open(self._path) as f:
                f.write("".join(line + "\n" for line in kept))

    def write(self, step: int, metrics: Mapping[str, float]) -> None:
        if not self._active:
            return
        scalars = {k: _to_float(v) for k, v in metrics.items()}
        with open(self._path, "a") as f:
            f.write(json.dumps({"step": int(step), **scalars}) + "\n")
        if self._tb is not None:
            try:
                with self._tb.as_default(step=int(step)):
                    for name, value in scalars.items():
                        self._tf.summary.scalar(name, value)
            except Exception as error:  # noqa: BLE001 - never lose the run to a summary
                self._give_up_tensorboard(error)

    def close(self) -> None:
        if self._tb is not None:
            try:
                self._tb.flush()
                self._tb.close()
            except Exception as error:  # noqa: BLE001
                self._give_up_tensorboard(error)


class Progress:
    """Logs ``step 120/500 | loss 4.123 | 3.2 steps/s | ETA 1m58s`` every ``every`` steps."""

    def __init__(self, total_steps: int, *, every: int = 10):
        self.total_steps = total_steps
        self.every = max(1, every)
        self._t0 = None
        self._s0 = 0

    def start(self, step: int) -> None:
        self._t0 = time.perf_counter()
        self._s0 = step

    def update(self, step: int, metrics: Mapping[str, float], *, force: bool = False) -> None:
        if jax.process_index() != 0 or (step % self.every and not force):
            return
        elapsed = time.perf_counter() - (self._t0 or time.perf_counter())
        rate = (step - self._s0) / elapsed if elapsed > 0 else float("nan")
        eta = (self.total_steps - step) / rate if rate > 0 else float("nan")
        shown = " | ".join(f"{k} {_to_float(v):.4g}" for k, v in metrics.items())
        logger.info(f"step {step}/{self.total_steps} | {shown} | {rate:.2f} steps/s | ETA {format_seconds(eta)}")


def format_seconds(seconds: float) -> str:
    """``95.2`` -> ``'1m35s'``; ``'?'`` for NaN or infinity."""
    if not np.isfinite(seconds):
        return "?"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def log_progress(what: str, done: int, total: int, started: float, extra: str = "") -> None:
    """Logs ``embedding train split 40/312 | 12.3 s | ETA 1m20s`` from process 0: the progress
    of a phase other than the training loop (embedding, an evaluation classifier, fine-tuning)."""
    if jax.process_index() != 0:
        return
    elapsed = time.perf_counter() - started
    eta = elapsed / done * (total - done) if done else float("nan")
    logger.info(f"{what} {done}/{total}{' | ' + extra if extra else ''} | {elapsed:.1f} s | "
                f"ETA {format_seconds(eta)}")
