"""Frozen features of a whole split, sharded over the devices: no host ever holds all of them.

At ImageNet scale the training features are 1.28M x 2048 float32 (10 GB): a
:class:`FeatureBank` keeps them as one global ``jax.Array`` split by rows over the ``data``
axis of the mesh, each process contributing the rows of the examples it embedded (its part of
the split, ``rl_repr.data.images.streaming.eval_batches``). The sharded kNN
(``rl_repr.evaluation.sharded_knn``) and the SGD linear classifier
(``rl_repr.evaluation.linear_classifier``) read it where it lies.

Every row carries the example's index in the split (``ids``; -1 marks a padding row, and an
unreadable image keeps its id with label -1), so what a classifier draws for a step is a
function of the example indices, not of how many devices share the bank.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Callable, Iterable, Mapping

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from rl_repr.core.metrics import log_progress
from rl_repr.core.mesh import DATA_AXIS


@dataclasses.dataclass(frozen=True)
class FeatureBank:
    """Rows of features, sharded over ``mesh``'s ``data`` axis.

    Attributes:
      features: ``[R, d]`` float32, row-sharded (R a multiple of the device count).
      labels: ``[R]`` int32, row-sharded; -1 for padding rows and unreadable images.
      ids: ``[R]`` int32, row-sharded: the example's index in the split (-1: padding); the
        ids on each device increase with the row.
      num_examples: N, the examples of the split (ids are in ``[0, N)``).
      mesh: the mesh the rows are spread over.
    """

    features: jax.Array
    labels: jax.Array
    ids: jax.Array
    num_examples: int
    mesh: Mesh


def feature_bank(features: np.ndarray, labels: np.ndarray, ids: np.ndarray, mesh: Mesh, *,
                 num_examples: int) -> FeatureBank:
    """Builds a bank from this process's rows (every process calls it, with as many rows).

    Args:
      features: ``[n, d]`` this process's features, in increasing ``ids``.
      labels: ``[n]`` int labels (-1: leave the row out of every classifier).
      ids: ``[n]`` the rows' example indices in the split (-1: padding).
      mesh: a mesh with a ``data`` axis over every device.
      num_examples: N, the size of the split.

    The rows are padded (label and id -1) to a multiple of this process's device count, and
    laid out process after process (``jax.make_array_from_process_local_data``).
    """
    features = np.asarray(features, np.float32)
    if features.ndim != 2 or labels.shape != (len(features),) or ids.shape != (len(features),):
        raise ValueError(f"features {features.shape}, labels {labels.shape} and ids {ids.shape} must be [n, d], "
                         "[n] and [n]: one label and one example index per row.")
    devices = len(mesh.local_devices)
    pad = -len(features) % devices
    labels = np.where(ids >= 0, labels, -1)
    rows = {"features": np.concatenate([features, np.zeros((pad, features.shape[1]), np.float32)]),
            "labels": np.concatenate([labels, np.full(pad, -1)]).astype(np.int32),
            "ids": np.concatenate([ids, np.full(pad, -1)]).astype(np.int32)}
    sharding = NamedSharding(mesh, P(DATA_AXIS))
    placed = {k: jax.make_array_from_process_local_data(sharding, v) for k, v in rows.items()}
    return FeatureBank(placed["features"], placed["labels"], placed["ids"], int(num_examples), mesh)


def in_memory_bank(features: np.ndarray, labels: np.ndarray, mesh: Mesh) -> FeatureBank:
    """A bank of a whole in-memory split (one process): row i is example i."""
    ids = np.arange(len(features))
    return feature_bank(features, np.asarray(labels), ids, mesh, num_examples=len(features))


def embed_batches(apply_fn: Callable[[np.ndarray], np.ndarray], batches: Iterable[Mapping[str, np.ndarray]], *,
                  num_batches: int, what: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(features [n, d], labels [n], ids [n])`` of this process's evaluation batches.

    ``batches`` yield ``{'image', 'label', 'mask', 'id'}`` (``rl_repr.data.images.streaming.
    eval_batches``); masked rows get label -1 (they stay out of every classifier). Logs a
    progress line about every tenth of the way, naming ``what`` is embedded.
    """
    features, labels, ids = [], [], []
    started = time.perf_counter()
    every = max(1, num_batches // 10)
    for done, batch in enumerate(batches, start=1):
        features.append(np.asarray(apply_fn(batch["image"]), np.float32))
        labels.append(np.where(batch["mask"], batch["label"], -1))
        ids.append(batch["id"])
        if done % every == 0 or done == num_batches:
            log_progress(f"embedding {what}", done, num_batches, started)
    return np.concatenate(features), np.concatenate(labels), np.concatenate(ids)
