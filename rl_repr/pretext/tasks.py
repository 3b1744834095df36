"""A batch of images -> every configured task's inputs and targets, and each task's loss terms.

Randomness is drawn per *global* example index (``augment.example_keys``) and per task, so the
same images give the same puzzles on one device or eight, and adding a task changes no other
task's draws. Loss terms are ``(sum over examples, count)`` pairs: the mean is their ratio, and
a per-device program divides its own sum by the count summed over every device, so that the
per-device gradients add up to the gradient of the global mean (``rl_repr.core.drivers``).

Losses: cross-entropy for the classification tasks (rotation 4-way, relative position 8-way,
jigsaw P-way), the squared error of the masked pixels for inpainting
(:func:`rl_repr.pretext.inpainting.masked_squared_error`).
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from rl_repr.core.extras import require
from rl_repr.data.images.augment import example_keys
from rl_repr.pretext import inpainting, patches, rotation
from rl_repr.pretext.model import TASKS

ml_collections = require("ml_collections")


class LossTerms(NamedTuple):
    """One task's loss on a batch as a ratio: ``loss = total / count``; ``correct`` counts the
    examples classified right (classification tasks; 0 for inpainting)."""

    total: jax.Array
    count: jax.Array
    correct: jax.Array


def task_inputs(config: ml_collections.ConfigDict, key: jax.Array, images: jax.Array, permutations: jax.Array,
                *, first_index: int | jax.Array = 0, all_four_rotations: bool | None = None) -> tuple[dict, dict]:
    """``(inputs, targets)`` of every task in ``config.tasks`` for float ``images [N, H, H, C]``.

    ``inputs`` is what :class:`rl_repr.pretext.model.PretextModel` reads; ``targets`` holds the
    labels ``[N]`` (``[4N]`` for all four rotations) or, for inpainting, ``(images, mask [N, H, H])``.
    ``permutations``: the jigsaw's ``[P, 9]`` label set. ``all_four_rotations`` overrides
    ``config.rotation.all_four`` (evaluation scores all four turns).
    """
    keys = example_keys(key, images.shape[0], first_index)
    inputs, targets = {}, {}
    for task in config.tasks:
        task_keys = jax.vmap(lambda k, t=TASKS.index(task): jax.random.fold_in(k, t))(keys)
        if task == "rotation":
            all_four = config.rotation.all_four if all_four_rotations is None else all_four_rotations
            inputs[task], targets[task] = rotation.rotation_batch(task_keys, images, all_four=all_four)
        elif task == "relative_position":
            p = config.relative_position
            centre, neighbour, targets[task] = jax.vmap(
                lambda k, x: patches.relative_position_pair(k, x, p.patch_size, p.gap, p.jitter))(task_keys, images)
            inputs[task] = (centre, neighbour)
        elif task == "jigsaw":
            inputs[task], targets[task] = jax.vmap(
                lambda k, x: patches.jigsaw_tiles(k, x, permutations, config.jigsaw.tile_size))(task_keys, images)
        else:
            m = config.inpainting
            masks = jax.vmap(lambda k: inpainting.mask_for(m.mask, k, images.shape[1], m.fraction, m.num_blocks))(
                task_keys)
            inputs[task] = jnp.where(masks[..., None], m.fill, images)
            targets[task] = (images, masks)
    return inputs, targets


def single_task(config: ml_collections.ConfigDict, task: str) -> ml_collections.ConfigDict:
    """A copy of ``config`` with ``tasks = (task,)``: that task's inputs alone, drawn as in ``config``
    (each task folds its own index into the example keys)."""
    task_config = config.copy_and_resolve_references()
    task_config.tasks = (task,)
    return task_config


def loss_terms(outputs: dict[str, jax.Array], targets: dict) -> dict[str, LossTerms]:
    """Each task's :class:`LossTerms` from the model's outputs and :func:`task_inputs`' targets."""
    terms = {}
    for task, output in outputs.items():
        if task == "inpainting":
            images, masks = targets[task]
            total, count = inpainting.masked_squared_error(output, images, masks)
            terms[task] = LossTerms(total, count, jnp.zeros(()))
        else:
            labels = targets[task]
            total = jnp.sum(optax.softmax_cross_entropy_with_integer_labels(output, labels))
            correct = jnp.sum(jnp.argmax(output, axis=-1) == labels)
            terms[task] = LossTerms(total, jnp.asarray(labels.shape[0], jnp.float32), correct.astype(jnp.float32))
    return terms


def task_weights(config: ml_collections.ConfigDict) -> dict[str, float]:
    """``{task: weight}`` (``config.task_weights``, or 1 for each task)."""
    weights = tuple(config.task_weights) or (1.0,) * len(config.tasks)
    return dict(zip(config.tasks, (float(w) for w in weights)))


def check_fits(config: ml_collections.ConfigDict, image_shape: tuple[int, int, int]) -> None:
    """Raises ValueError (one sentence) when the tasks' patches or masks do not fit the images."""
    height, width, _ = image_shape
    if height != width:
        raise ValueError(f"pretext tasks need square images; config.dataset gives {height}x{width}: set "
                         "config.image_size to resize them.")
    if "relative_position" in config.tasks:
        p = config.relative_position
        needed = patches.relative_position_extent(p.patch_size, p.gap, p.jitter)
        if needed > height:
            raise ValueError(f"relative_position: 3 patches of {p.patch_size} pixels with gap {p.gap} and jitter "
                             f"{p.jitter} need {needed} pixels per side, the images have {height}; lower "
                             "config.relative_position.patch_size/gap/jitter or use larger images.")
    if "jigsaw" in config.tasks and config.jigsaw.tile_size > height // 3:
        raise ValueError(f"jigsaw: config.jigsaw.tile_size={config.jigsaw.tile_size} exceeds the {height // 3}-pixel "
                         f"cells of {height}-pixel images; use a tile size of at most {height // 3}.")
