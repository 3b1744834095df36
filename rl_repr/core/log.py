"""rl_repr's one logger: library messages go through ``logging.getLogger('rl_repr')``.

The library never prints. Entry points (``rl_repr.main``, ``rl_repr.demo``,
``rl_repr.sweep``) call :func:`show_messages` once, which sends the ``rl_repr`` logger's
INFO lines to stdout as plain text (no level or time prefix: they are progress lines a
person reads) and keeps TensorFlow's and orbax's start-up chatter out of sight unless
``verbose``. In a notebook or another program, configure ``logging`` as usual; without any
configuration Python shows WARNING and above on stderr.
"""
from __future__ import annotations

import logging
import os
import sys

logger = logging.getLogger("rl_repr")

# Libraries whose INFO lines drown a run's own (orbax writes ~250 per run).
_NOISY = ("absl", "orbax", "jax._src", "tensorflow", "etils")


def show_messages(*, verbose: bool = False, stream=None) -> None:
    """Shows rl_repr's progress lines on ``stream`` (stdout); quiets other libraries' INFO.

    Idempotent. ``verbose=True`` leaves the other libraries' logging as it was.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1" if verbose else "3")
    if not verbose:  # TensorFlow announces oneDNN before its log level applies; rl_repr uses TF
        os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # only to read data and write summaries
    if not any(getattr(h, "_rl_repr", False) for h in logger.handlers):
        handler = logging.StreamHandler(stream or sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._rl_repr = True  # noqa: SLF001 (marks our handler for idempotence)
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    if not verbose:
        for name in _NOISY:
            logging.getLogger(name).setLevel(logging.WARNING)
        try:
            from absl import logging as absl_logging  # noqa: PLC0415

            absl_logging.set_verbosity(absl_logging.WARNING)
        except ImportError:  # absl is only needed by the command line
            pass
