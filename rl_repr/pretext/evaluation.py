"""Evaluating a pretext encoder: the pretext tasks themselves, and the frozen h as SimCLR's.

* :func:`pretext_scores`: each task on held-out images (accuracy against chance for the
  classification tasks -- rotation 1/4, relative position 1/8, jigsaw 1/P -- and the masked
  pixels' mean squared error for inpainting, next to predicting ``fill`` everywhere; with several
  tasks, each scored with batch-norm statistics of its own inputs, :func:`task_statistics`);
* :func:`features`: h = f(x) of whole images, eval-mode batch norm, for
  ``rl_repr.evaluation.encoder_report`` (linear probe and kNN next to raw pixels and the
  random-init encoder: exactly SimCLR's report, ``rl_repr.simclr.evaluation``);
* :func:`zero_shot_results`: unseen classes recognised from their attributes (DAP), next to
  chance and a one-shot baseline, for h, the random-init encoder and raw pixels.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from rl_repr.core.drivers import local_copy
from rl_repr.data.images.character_attributes import dataset_class_attributes
from rl_repr.core.state import TrainState
from rl_repr.data.images.augment import to_float_images
from rl_repr.evaluation.features import embed
from rl_repr.evaluation.frozen import raw_pixels
from rl_repr.evaluation.zero_shot import zero_shot_report
from rl_repr.pretext import tasks
from rl_repr.pretext.model import build_model


@functools.partial(jax.jit, static_argnums=0)
def _encode(model, variables, images):
    # The model is static (flax modules hash by value): one compilation serves every state.
    return model.apply(variables, to_float_images(images), train=False, method=model.encode)


def features(config, state: TrainState, datasets, image_shape) -> list[np.ndarray]:
    """``h [N, feature_dim]`` of each dataset's images."""
    model = build_model(config, image_shape, bn_axis_name=None)
    variables = local_copy({"params": state.params, "batch_stats": state.batch_stats})
    apply = functools.partial(_encode, model, variables)
    return [embed(apply, dataset.images, batch_size=config.eval_batch_size) for dataset in datasets]


_RECALIBRATION_BATCHES = 50  # batch norm's momentum 0.9: the old statistics keep a weight of 0.9^50 < 0.01


def task_statistics(config, model, variables: dict, images: np.ndarray, permutations: jax.Array,
                    task: str, key: jax.Array) -> dict:
    """The encoder's batch-norm statistics re-estimated on ``task``'s inputs made from ``images``.

    Several tasks share one encoder but feed it different inputs (whole 32x32 images for rotation
    and inpainting, 8x8 patches for relative position and the jigsaw), so the running statistics
    that training leaves are a blend that matches none of them: in evaluation mode every head then
    reads features normalised for the wrong inputs (measured on the four-task model: rotation
    falls to chance). This runs ``_RECALIBRATION_BATCHES`` batches of ``config.batch_size``
    images (cycling through ``images``) through the encoder in training mode on ``task``'s
    inputs alone, so that each task is scored with statistics of its own inputs ("precise BN").
    """
    task_config = tasks.single_task(config, task)
    batch = min(config.batch_size, len(images))

    @jax.jit
    def update(batch_stats, batch_images, first_index):
        inputs, _ = tasks.task_inputs(task_config, key, to_float_images(batch_images), permutations,
                                      first_index=first_index)
        _, new = model.apply({"params": variables["params"], "batch_stats": batch_stats}, inputs, train=True,
                             mutable=["batch_stats"])
        return new["batch_stats"]

    stats = variables["batch_stats"]
    starts = range(0, len(images) - batch + 1, batch)
    for i in range(_RECALIBRATION_BATCHES):
        start = starts[i % len(starts)]
        stats = update(stats, images[start:start + batch], start)
    return stats


def _task_scorer(config, model, task: str, key: jax.Array, permutations: jax.Array):
    """``(variables, images, first_index) -> (loss terms, fill terms)`` of ``task`` alone, jitted."""
    task_config = tasks.single_task(config, task)

    @jax.jit
    def score(variables, images, first_index):
        inputs, targets = tasks.task_inputs(task_config, key, to_float_images(images), permutations,
                                            first_index=first_index, all_four_rotations=True)
        terms = tasks.loss_terms(model.apply(variables, inputs, train=False), targets)
        fill = tasks.loss_terms({"inpainting": inputs["inpainting"]}, targets) if "inpainting" in inputs else {}
        return terms, fill

    return score


def pretext_scores(config, state: TrainState, dataset, image_shape, permutations: jax.Array,
                   train_images: np.ndarray | None = None) -> dict[str, float]:
    """Each task on ``dataset``'s images with eval-mode batch norm: ``pretext_<task>_accuracy`` (and
    ``..._chance``), or for inpainting ``pretext_inpainting_mse`` and ``..._fill_mse`` (the error of
    leaving the hole at the fill value). All four rotations of every image are scored; the
    other tasks draw one puzzle per image from a fixed key (the same for every run).

    With several tasks and ``train_images``, each task is scored with batch-norm statistics
    re-estimated on its own inputs (:func:`task_statistics`); one task uses the running statistics."""
    model = build_model(config, image_shape, bn_axis_name=None)
    variables = local_copy({"params": state.params, "batch_stats": state.batch_stats})
    key = jax.random.PRNGKey(12345)
    recalibrate = len(config.tasks) > 1 and train_images is not None
    sums: dict[str, np.ndarray] = {}
    for task in config.tasks:
        batch_stats = (task_statistics(config, model, variables, train_images, permutations, task,
                                       jax.random.fold_in(key, 1)) if recalibrate else variables["batch_stats"])
        score = _task_scorer(config, model, task, key, permutations)
        for start in range(0, dataset.num_examples, config.eval_batch_size):  # a smaller last batch compiles once more
            terms, fill = score({"params": variables["params"], "batch_stats": batch_stats},
                                dataset.images[start:start + config.eval_batch_size], start)
            for name, term in [*terms.items(), *((f"{t}_fill", v) for t, v in fill.items())]:
                sums[name] = sums.get(name, 0) + np.asarray(jax.device_get(jnp.stack(term)), np.float64)
    results = {}
    for name, (total, count, correct) in sums.items():
        if name.startswith("inpainting"):
            results[f"pretext_{name}_mse"] = float(total / count)
        else:
            results[f"pretext_{name}_accuracy"] = float(correct / count)
    for task, classes in (("rotation", 4), ("relative_position", 8), ("jigsaw", config.jigsaw.num_permutations)):
        if task in config.tasks:
            results[f"pretext_{task}_chance"] = 1.0 / classes
    return results


def zero_shot_results(config, states: dict, seen_set, unseen_set, image_shape) -> dict[str, float]:
    """``rl_repr.evaluation.zero_shot.zero_shot_report`` of the h of each state (``{prefix: state}``)
    and, with ``config.baselines``, of raw pixels (``raw_pixels_``): attribute classifiers fitted on
    ``seen_set``, unseen classes recognised from their descriptions
    (``rl_repr.data.images.character_attributes``)."""
    attributes = dataset_class_attributes(config.dataset)
    report = functools.partial(zero_shot_report, seen_labels=seen_set.labels, unseen_labels=unseen_set.labels,
                               class_attributes=attributes, episodes=config.zero_shot.episodes, seed=config.seed)
    representations = {prefix: features(config, state, (seen_set, unseen_set), image_shape)
                       for prefix, state in states.items()}
    if config.baselines:
        representations["raw_pixels_"] = (raw_pixels(seen_set.images), raw_pixels(unseen_set.images))
    results = {}
    for prefix, (seen_h, unseen_h) in representations.items():
        results.update({prefix + key: value for key, value in report(seen_h, unseen_features=unseen_h).items()})
    return results
