"""The labelled subsets of semi-supervised evaluation, as saved lists of image ids.

SimCLR's Table 7 fine-tunes on 1% and 10% of ImageNet's labels, fixed lists of images that
the authors published (``imagenet_subsets/1percent.txt`` and ``10percent.txt`` in
google-research/simclr: one file name per line, e.g. ``n01440764_10026.JPEG``). Here a
subset is such a text file: :func:`label_subset_rows` reads it when it exists, and otherwise
draws a class-balanced subset (``round(fraction x class size)`` images of each class, at least
one, chosen with ``seed``), writes the file and uses it. A run is therefore reproducible from
its file, and the file can be replaced by the published list.

An image's id is its path inside the split folder (``n01440764/n01440764_10026.JPEG``) for
``folder:DIR`` datasets and its row number for in-memory sets; a listed id also matches by
file name alone, as the published lists give it.
"""
from __future__ import annotations

import os

import numpy as np

from rl_repr.core.errors import DataError
from rl_repr.core.files import atomic_open
from rl_repr.evaluation.finetune import label_fraction_subset


def label_subset_rows(path: str, ids: np.ndarray, labels: np.ndarray, fraction: float, *, seed: int = 0
                      ) -> np.ndarray:
    """Sorted rows of the subset listed in ``path``; drawn and written there first if it is missing.

    Args:
      path: the id list (one id per line).
      ids: ``[N]`` the split's image ids (strings).
      labels: ``[N]`` their labels (to draw a class-balanced subset).
      fraction: the share of labels to draw, e.g. 0.01 (used only when ``path`` is missing).
      seed: the draw's seed.
    """
    if not os.path.exists(path):
        rows = label_fraction_subset(np.asarray(labels), fraction, seed=seed)
        write_id_list(path, [str(i) for i in np.asarray(ids)[rows]])
    return rows_of_ids(read_id_list(path), ids, path)


def write_id_list(path: str, ids: list[str]) -> None:
    """Writes ``ids``, one per line (atomically: a crash leaves no half-written list)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_open(path) as f:
        f.write("".join(f"{i}\n" for i in ids))


def read_id_list(path: str) -> list[str]:
    """The ids of a list file (blank lines ignored)."""
    with open(path) as f:
        ids = [line.strip() for line in f if line.strip()]
    if not ids:
        raise DataError(f"The label subset {path!r} lists no image; delete it to draw a new one, or write one "
                        "image id per line.")
    return ids


def rows_of_ids(listed: list[str], ids: np.ndarray, path: str = "the list") -> np.ndarray:
    """Sorted rows of ``ids`` that ``listed`` names, by full id or by file name alone."""
    ids = [str(i) for i in np.asarray(ids)]
    row_of = {name: row for row, name in enumerate(ids)}
    names = [os.path.basename(i) for i in ids]
    if len(set(names)) == len(names):
        row_of.update({name: row for row, name in enumerate(names)})
    missing = [name for name in listed if name not in row_of]
    if missing:
        raise DataError(f"The label subset {path!r} names {len(missing)} image(s) that are not in the training split "
                        f"(first: {missing[0]!r}); list images of this split, or delete the file to draw a new subset.")
    return np.unique([row_of[name] for name in listed])
