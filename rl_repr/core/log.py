"""rl_repr's one logger: library messages go through ``logging.getLogger('rl_repr')``.

The library never prints. Entry points (``rl_repr.main``, ``rl_repr.demo``, ``rl_repr.sweep``)
call :func:`show_messages` once: the ``rl_repr`` logger's INFO lines (progress a person reads)
go to stdout as plain text, its warnings to stderr, and TensorFlow's, tfds's and orbax's INFO
and WARNING chatter stays out of sight unless ``verbose``. In a notebook or another program,
configure ``logging`` as usual; without any configuration Python shows WARNING and above on
stderr.
"""
from __future__ import annotations

import logging
import os
import sys

logger = logging.getLogger("rl_repr")

# Libraries whose own lines drown a run's (orbax writes ~250 INFO lines per run).
_NOISY = ("absl", "orbax", "jax._src", "tensorflow", "etils")


class _Below(logging.Filter):
    """Passes records below ``level`` (INFO to stdout; warnings have their own handler)."""

    def __init__(self, level: int):
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < self.level


def show_messages(*, verbose: bool = False) -> None:
    """INFO lines of ``rl_repr`` to stdout, its warnings to stderr; other libraries quiet. Idempotent."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1" if verbose else "3")
    if not verbose:  # TensorFlow announces oneDNN before its log level applies; rl_repr uses TF
        os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # only to read data and write summaries
    if not any(getattr(h, "_rl_repr", False) for h in logger.handlers):
        progress = logging.StreamHandler(sys.stdout)
        progress.addFilter(_Below(logging.WARNING))
        warnings = logging.StreamHandler(sys.stderr)
        warnings.setLevel(logging.WARNING)
        for handler in (progress, warnings):
            handler.setFormatter(logging.Formatter("%(message)s"))
            handler._rl_repr = True  # noqa: SLF001 (marks our handlers for idempotence)
            logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    if not verbose:  # other libraries' warnings are about their internals, not the user's input
        for name in _NOISY:
            logging.getLogger(name).setLevel(logging.ERROR)
        try:
            from absl import logging as absl_logging  # noqa: PLC0415

            absl_logging.set_verbosity(absl_logging.ERROR)
        except ImportError:  # absl is only needed by the command line
            pass
