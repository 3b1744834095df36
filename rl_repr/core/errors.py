"""The errors a user can cause, each one sentence that names the problem and the fix.

Entry points (``rl_repr.main``, ``rl_repr.demo``, ``rl_repr.sweep``) catch :class:`UserError`
and print its message, without a traceback, exit status 1. Everything else is a bug and keeps
its traceback. The subclasses also derive from the built-in exception a caller would expect
(``ValueError`` for a bad value, ``FileNotFoundError`` for a missing dataset, ``OSError`` for a
workdir problem), so ``except ValueError`` keeps working.
"""
from __future__ import annotations


class UserError(Exception):
    """A problem with what the user gave: config, data, workdir or checkpoint."""


class ConfigError(UserError, ValueError):
    """A config value is missing, unknown or outside what is allowed (one sentence per problem)."""


class DatasetNotFoundError(UserError, FileNotFoundError):
    """A dataset, split or file that the config names is not where it was looked for."""


class DataError(UserError, ValueError):
    """Data that is there but cannot be used (unreadable, empty, not text)."""


class WorkdirError(UserError, OSError):
    """The workdir cannot be used: a file, not writable, full, in use, or holding another run."""


class NonFiniteError(UserError, FloatingPointError):
    """The loss or the state became NaN or infinite; the message says what was kept and what to do."""
