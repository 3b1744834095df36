"""Writing files so that a crash never leaves a half-written one in place of a good one.

Every file rl_repr writes into a workdir (``config.json``, ``results.json``, a sweep's
summary, exported word vectors) goes through :func:`atomic_path`: the content is written to
a temporary file in the same directory and renamed over the destination, which POSIX makes
atomic. A failed write (disk full, a killed process) leaves the previous file untouched.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from typing import Any, Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yields a temporary path beside ``path``; renames it to ``path`` when the block succeeds.

    For writers that want a file name (``KeyedVectors.save_word2vec_format``, ``np.save``)::

        with atomic_path("vectors.bin") as tmp:
            keyed_vectors.save_word2vec_format(tmp, binary=True)

    The temporary file is removed if the block raises, so nothing is left behind.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix="-" + os.path.basename(path))
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w") -> Iterator[Any]:
    """``open(path, mode)`` that replaces ``path`` only once the whole file is written.

    ``mode`` is ``'w'`` (UTF-8 text) or ``'wb'``.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes whole files; mode must be 'w' or 'wb', not {mode!r}.")
    with atomic_path(path) as tmp:
        with open(tmp, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f


def write_json(path: str | os.PathLike, data: Any) -> str:
    """Writes ``data`` as indented, key-sorted JSON (objects JSON cannot hold as their ``str``),
    atomically; returns the path."""
    with atomic_open(path) as f:
        json.dump(data, f, indent=2, sort_keys=True, default=str)
        f.write("\n")
    return os.fspath(path)
