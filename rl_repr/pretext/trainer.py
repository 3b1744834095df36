"""Self-supervised pretext tasks, alone or together: the method's plan for the runner.

Rotation prediction (Gidaris et al. 2018), the relative position of two patches (Doersch et al.
2015), jigsaw puzzles (Noroozi & Favaro 2016), inpainting with a central, random-block or
random-region mask (Pathak et al. 2016), and any set of them at once with one shared encoder and
a weighted sum of the losses (Doersch & Zisserman 2017, "Multi-task Self-Supervised Visual
Learning", arXiv:1708.07860).

Story of a run (the runner, ``rl_repr.core.runner``, does the shared parts): load the images
(``rl_repr.data.images.sources``; with ``zero_shot.unseen_classes`` the last classes are set
aside) -> steps from epochs -> the optimizer -> encoder and heads (``model.py``) -> the
per-device step (``step.py``: each task's inputs made on device from the images) -> the shared
loop, with a kNN monitor every ``eval_every_steps`` -> the tasks scored on held-out images,
then linear probe and kNN on the frozen h next to raw pixels and the random-init encoder
(SimCLR's report) and, with unseen classes, zero-shot recognition from their attributes.

    python -m rl_repr.main --config=configs/pretext_characters.py:jigsaw --workdir=/tmp/jigsaw
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from rl_repr.core import optim
from rl_repr.core.config import ConfigError
from rl_repr.core.drivers import local_copy
from rl_repr.core.extras import require
from rl_repr.core.runner import Finished, Method, Plan
from rl_repr.core.state import TrainState
from rl_repr.data.images import sources
from rl_repr.data.images.digits import ImageDataset
from rl_repr.evaluation.encoder_report import encoder_report
from rl_repr.evaluation.knn import knn_accuracy
from rl_repr.pretext import evaluation, tasks
from rl_repr.pretext.config import pretext_defaults, pretext_rules
from rl_repr.pretext.model import build_model
from rl_repr.pretext.permutations import maximal_hamming_permutations
from rl_repr.pretext.step import init_variables, make_per_device_step
from rl_repr.simclr.trainer import optimizer_config

ml_collections = require("ml_collections")


def split_unseen(dataset: ImageDataset, unseen_classes: int) -> tuple[ImageDataset, ImageDataset]:
    """``(seen, unseen)``: the images of the first ``C - U`` classes, and of the last ``U``."""
    seen_count = dataset.num_classes - unseen_classes
    if seen_count < 5 or unseen_classes < 2:
        raise ConfigError(f"config.zero_shot.unseen_classes={unseen_classes} leaves {seen_count} of "
                          f"{dataset.num_classes} classes to train on; hold out 2 to {dataset.num_classes - 5}.")
    unseen = dataset.labels >= seen_count

    def rows(keep, num_classes):
        return ImageDataset(images=dataset.images[keep], labels=dataset.labels[keep], num_classes=num_classes,
                            name=dataset.name)

    return rows(~unseen, seen_count), rows(unseen, dataset.num_classes)


def training_schedule(config: ml_collections.ConfigDict, train_set: ImageDataset):
    """``(total_steps, optimizer, schedule)``: ``config.epochs`` (and ``warmup_epochs``) of the training
    set in global batches, SimCLR's optimizer fields (``rl_repr.simclr.trainer.optimizer_config``)."""
    per_epoch = sources.global_steps_per_epoch(config, train_set)
    if not per_epoch:
        raise ConfigError(f"config.batch_size={config.batch_size} is more than the {train_set.num_examples} "
                          "training images; lower it.")
    total = max(1, math.ceil(per_epoch * config.epochs))
    return (total, *optim.make_optimizer(optimizer_config(
        config, total, warmup_steps=min(total, round(per_epoch * config.warmup_epochs)))))


def image_batches(config: ml_collections.ConfigDict, train_set: ImageDataset):
    """``step -> {'image': this process's rows of step's global batch}``, a pure function of the step
    (epochs of a seeded permutation, ``sources.process_rows``; a resumed run reads the same batches)."""
    shard = sources.is_process_shard(config)
    return lambda step: {"image": train_set.images[sources.process_rows(
        config.seed, step, train_set.num_examples, config.batch_size, process_shard=shard)]}


def jigsaw_permutations(config: ml_collections.ConfigDict) -> jax.Array:
    """The jigsaw's ``[P, 9]`` label set (a placeholder row when the jigsaw is not a task)."""
    if "jigsaw" not in config.tasks:
        return jnp.zeros((1, 9), jnp.int32)
    return jnp.asarray(maximal_hamming_permutations(config.jigsaw.num_permutations, 9,
                                                    config.jigsaw.permutation_seed))


def init_state(config, optimizer, key, image_shape, permutations) -> TrainState:
    variables = init_variables(config, key, image_shape, permutations)
    return TrainState.create(variables["params"], variables.get("batch_stats", {}), optimizer)


def plan(config: ml_collections.ConfigDict, mesh) -> Plan:
    """Data, schedule, optimizer, initial state and step of a pretext run on ``mesh``."""
    del mesh  # the runner places everything
    train_set, test_set = sources.load_train_test(config)
    unseen = None
    if config.zero_shot.unseen_classes:
        (train_set, unseen_train), (test_set, unseen_test) = (
            split_unseen(data, config.zero_shot.unseen_classes) for data in (train_set, test_set))
        unseen = ImageDataset(images=np.concatenate([unseen_train.images, unseen_test.images]),
                              labels=np.concatenate([unseen_train.labels, unseen_test.labels]),
                              num_classes=unseen_train.num_classes, name=unseen_train.name)
    image_shape = train_set.image_shape
    tasks.check_fits(config, image_shape)
    total_steps, optimizer, schedule = training_schedule(config, train_set)
    permutations = jigsaw_permutations(config)
    init_key = jax.random.key(config.seed, impl="rbg")  # fast to compile; init runs once (see SimCLR)
    task_key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 1)  # the tasks' draws (threefry)

    def monitor(state, step):
        del step
        train_h, test_h = evaluation.features(config, state, (train_set, test_set), image_shape)
        return {"knn_accuracy": knn_accuracy(train_h, train_set.labels, test_h, test_set.labels, k=config.knn_k)}

    def final_evaluation(state, finished: Finished) -> dict:
        del finished
        random_state = init_state(config, optimizer, init_key, image_shape, permutations) if config.baselines else None

        def extract(model_state):
            def features_of(train, test):
                train_h, test_h = evaluation.features(config, model_state, (train, test), image_shape)
                return {"h": (train_h, test_h)}
            return features_of

        results = evaluation.pretext_scores(config, state, test_set, image_shape, permutations,
                                             train_images=train_set.images)
        results.update(encoder_report(
            extract=extract(state), random_extract=extract(random_state), train_set=train_set, test_set=test_set,
            knn_k=config.knn_k, baselines=config.baselines, prefixes={"h": ""},
            encoder=build_model(config, image_shape, bn_axis_name=None).encoder,
            pretrained=local_copy({"params": state.params["encoder"],
                                   "batch_stats": state.batch_stats.get("encoder", {})}),
            finetune_fractions=tuple(config.finetune_fractions), finetune_steps=config.finetune_steps,
            seed=config.seed))
        if unseen is not None:
            states = {"": state, **({"random_init_": random_state} if random_state is not None else {})}
            results.update(evaluation.zero_shot_results(config, states, train_set, unseen, image_shape))
        results.update(tasks=list(config.tasks), epochs=config.epochs, batch_size=config.batch_size)
        return results

    return Plan(state=init_state(config, optimizer, init_key, image_shape, permutations),
                per_device_step=make_per_device_step(config, optimizer, schedule, task_key, image_shape, permutations),
                batch_for_step=image_batches(config, train_set), total_steps=total_steps,
                final_evaluation=final_evaluation,
                monitor=monitor, eval_every=config.eval_every_steps,
                extras={"train_set": train_set, "test_set": test_set, "unseen_set": unseen})


METHOD = Method(name="pretext", defaults=pretext_defaults, rules=pretext_rules,
                global_batch_size=lambda config, num_devices: config.batch_size, plan=plan,
                nan_fix="lower config.base_lr (or raise config.warmup_epochs)")
