"""The workdir of a run: usable, used by one run at a time, holding one config.

* :func:`check_usable` fails in one sentence, before anything is built or written, when the
  workdir is a file or cannot be created or written;
* :class:`WorkdirLock` lets one process at a time train in a workdir: a POSIX record lock
  (``fcntl.lockf``) on ``<workdir>/.lock``, which the kernel releases when the process ends,
  however it ends (a killed run leaves no stale lock), and which NFS honours across hosts;
  the second run is refused naming the process that holds it;
* :func:`config_changes` compares a config with the workdir's ``config.json``: a run that
  would continue checkpoints written with other settings is refused unless asked for.

Remote workdirs (``gs://...``) are not locked (object stores have no locks): run one job per
remote workdir.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import time
from typing import Any

from rl_repr.core.errors import WorkdirError
from rl_repr.core.recipes import config_as_json_data


def is_remote(workdir: str) -> bool:
    return "://" in workdir


def check_usable(workdir: str) -> None:
    """Raises :class:`WorkdirError` if ``workdir`` is a file, or if it (or, when it does not exist
    yet, its nearest existing parent) is not a writable directory. Writes nothing."""
    if is_remote(workdir):
        return
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise WorkdirError(f"--workdir {workdir} is a file; pass a directory (it is created if missing).")
    existing = os.path.abspath(workdir)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise WorkdirError(f"cannot create --workdir {workdir}: {existing} is a file; pass a directory path.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise WorkdirError(f"cannot write to --workdir {workdir} ({existing} is not writable); pass a directory "
                           "you can write to.")


class WorkdirLock:
    """Holds ``<workdir>/.lock`` while a run trains there (a context manager); creates the workdir.

    Raises :class:`WorkdirError` naming the holder (pid, host, start time) when another process
    has it. Only one process of a multi-host run should take it. If the run fails with the
    workdir it created still empty, the workdir is removed again: a refused run writes nothing.
    """

    def __init__(self, workdir: str):
        self.workdir = workdir
        self.path = os.path.join(workdir, ".lock")
        self._file = None
        self._created = False

    def __enter__(self) -> "WorkdirLock":
        if is_remote(self.path):
            return self
        self._created = not os.path.isdir(self.workdir)
        try:
            os.makedirs(self.workdir, exist_ok=True)
            handle = open(self.path, "a+")
        except OSError as error:
            raise WorkdirError(f"cannot write to --workdir {self.workdir} ({error.strerror or error}); pass a "
                               "directory you can write to.") from None
        try:
            fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise WorkdirError(f"{os.path.dirname(self.path)} is in use by {holder}; wait for that run to "
                               "finish (or stop it), or pass another --workdir.") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()} on {socket.gethostname()} (started "
                     f"{time.strftime('%Y-%m-%d %H:%M:%S')})\n")
        handle.flush()
        self._file = handle
        return self

    def __exit__(self, exc_type, *exc_info) -> None:
        if self._file is not None:
            self._file.close()  # closing releases the lock
            self._file = None
            if exc_type is not None and self._created and os.listdir(self.workdir) == [".lock"]:
                shutil.rmtree(self.workdir, ignore_errors=True)


def config_changes(workdir: str, config: Any) -> list[str]:
    """``'key: old -> new'`` for every key where ``config`` differs from ``<workdir>/config.json``
    (empty when there is no config.json).

    Only keys both configs have count: a key added to rl_repr after the run started takes its
    default, which keeps the behaviour the run was made with, and a key rl_repr no longer has
    cannot be set; neither is a change the user made.
    """
    path = os.path.join(workdir, "config.json")
    if is_remote(workdir) or not os.path.exists(path):
        return []
    with open(path) as f:
        existing = json.load(f)
    return _differences(existing, config_as_json_data(config))


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        return [d for key in sorted(set(old) & set(new))
                for d in _differences(old[key], new[key], f"{prefix}{key}.")]
    return [] if old == new else [f"{prefix.rstrip('.')}: {old!r} -> {new!r}"]


def has_progress(workdir: str) -> bool:
    """Whether ``workdir`` holds checkpoints or results, i.e. something a changed config would
    continue or contradict."""
    if is_remote(workdir):
        return False
    checkpoints = os.path.join(workdir, "checkpoints")
    has_steps = os.path.isdir(checkpoints) and any(name.isdigit() for name in os.listdir(checkpoints))
    return has_steps or os.path.exists(os.path.join(workdir, "results.json"))
