"""The methods rl_repr can run, found by name (``config.method``).

Method ``name`` lives in the package ``rl_repr.<name>``, whose ``trainer`` module defines
``METHOD``, a :class:`rl_repr.core.runner.Method`. Adding a method is one line here.
"""
from __future__ import annotations

import importlib

from rl_repr.core.config import ConfigError

METHODS = ("simclr", "moco", "metric_learning", "word2vec", "supervised", "pretext")


def get_method(name: str):
    """The :class:`~rl_repr.core.runner.Method` called ``name``.

    Raises ``ConfigError`` (one sentence) for a name that is not a method.
    """
    if name not in METHODS:
        raise ConfigError(f"config.method={name!r} is not a method; choose one of {METHODS}.")
    return importlib.import_module(f"rl_repr.{name}.trainer").METHOD
