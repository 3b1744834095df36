"""Optional dependencies: which extra installs which package, and the error when one is missing.

``rl_repr.losses``, ``rl_repr.norms``, ``rl_repr.models``, ``rl_repr.evaluation`` and the
on-device parts of ``rl_repr.data`` need only the core (jax, flax, optax, chex, numpy). The rest
comes with an extra named for what it is for (``pyproject.toml`` lists their packages)::

    pip install "rl_repr[train]"   # runner, recipes, methods, checkpoints: ml-collections, orbax, absl
    pip install "rl_repr[data]"    # image sets: TensorFlow Datasets, scikit-learn's digits, fonts
    pip install "rl_repr[words]"   # corpora, word-vector benchmarks and export: gensim
    pip install "rl_repr[plots]"   # sweep charts: matplotlib
    pip install "rl_repr[all]"     # all four

A module that needs an optional package imports it through :func:`require`, at module level or
inside the function that uses it::

    ml_collections = require("ml_collections")
    tf = require("tensorflow")

so that a missing package raises :class:`MissingExtra` with one sentence naming the module that
needs it and the command that installs it, instead of a bare ``ModuleNotFoundError`` from deep
inside. This module imports nothing outside the standard library.
"""

from __future__ import annotations

import importlib
import sys
import types

__all__ = ["EXTRA_OF_PACKAGE", "MissingExtra", "install_command", "require"]

# Top-level import name -> the extra that installs it (``pyproject.toml`` agrees; tested).
EXTRA_OF_PACKAGE = {
    "ml_collections": "train",
    "orbax": "train",
    "absl": "train",
    "tensorflow": "data",
    "tensorflow_datasets": "data",
    "sklearn": "data",
    "PIL": "data",
    "gensim": "words",
    "matplotlib": "plots",
}


class MissingExtra(ModuleNotFoundError):
    """An optional package is not installed; the message names the extra that installs it.

    A ``ModuleNotFoundError`` (so an ``ImportError``), so ``except ImportError`` still catches it;
    ``name`` is the missing package and ``extra`` the extra to install.
    """

    def __init__(self, message: str, *, name: str, extra: str):
        super().__init__(message, name=name)
        self.extra = extra


def install_command(extra: str) -> str:
    """The pip command that installs ``extra``, e.g. ``pip install "rl_repr[data]"``."""
    return f'pip install "rl_repr[{extra}]"'


def require(module: str, extra: str | None = None) -> types.ModuleType:
    """Imports ``module`` (e.g. ``"tensorflow"``, ``"orbax.checkpoint"``) and returns it.

    Args:
      module: the dotted module name, as after ``import``.
      extra: the extra that installs it; by default ``EXTRA_OF_PACKAGE`` of its top-level name.

    Returns:
      The module, as ``importlib.import_module(module)`` returns it.

    Raises:
      MissingExtra: the package is not installed. One sentence, e.g. ``rl_repr.data.images.tfds
        needs tensorflow, which is not installed: pip install "rl_repr[data]".`` Any other
        missing module (a broken installation of the package itself) raises its own
        ``ModuleNotFoundError`` unchanged.
      ValueError: no ``extra`` was given and ``EXTRA_OF_PACKAGE`` does not know the package.
    """
    package = module.partition(".")[0]
    if extra is None:
        if package not in EXTRA_OF_PACKAGE:
            raise ValueError(f"require({module!r}) needs extra=...: {package!r} is not in "
                             f"EXTRA_OF_PACKAGE ({', '.join(sorted(EXTRA_OF_PACKAGE))}).")
        extra = EXTRA_OF_PACKAGE[package]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name is None or error.name.partition(".")[0] != package:
            raise
        # The module whose import (or function) asked: what the reader of the message knows.
        needed_by = sys._getframe(1).f_globals.get("__name__", "rl_repr")
        raise MissingExtra(f"{needed_by} needs {package}, which is not installed: "
                           f"{install_command(extra)}.", name=package, extra=extra) from error
