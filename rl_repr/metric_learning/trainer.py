"""Triplet and Siamese training with online mining, evaluated one-shot on held-out classes.

A similarity ``d(x1, x2) = ||f(x1) - f(x2)||^2`` is learned on some classes and used to
recognise others from one example. Story of a run (the runner, ``rl_repr.core.runner``, does
the shared parts): split the classes (training vs held-out; ``rl_repr.data.images.pk_batches``)
-> the set the PK batches draw from (the training classes, optionally enlarged with their
rotations / mirror images, rendered letters and made-up characters) -> the embedding network
(``model.py``) at its initial state -> the per-device step (``step.py``) -> the shared loop,
with a held-out one-shot monitor -> N-way K-shot episodes, pair verification and recall@k on
the held-out classes next to raw pixels and the random-init network (``evaluation.py``).

    python -m rl_repr.main --config=configs/metric_digits.py:semi_hard --workdir=/tmp/metric
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from rl_repr.core import optim
from rl_repr.core.errors import ConfigError
from rl_repr.core.extras import require
from rl_repr.core.runner import Finished, Method, Plan
from rl_repr.core.state import TrainState
from rl_repr.data.images import augment
from rl_repr.data.images.digits import ImageDataset
from rl_repr.data.images.pk_batches import ClassSplit, load_class_split, pk_batch_indices, training_set
from rl_repr.metric_learning import evaluation
from rl_repr.metric_learning.config import metric_learning_defaults, metric_learning_rules
from rl_repr.metric_learning.model import build_model
from rl_repr.metric_learning.step import make_per_device_step

ml_collections = require("ml_collections")


def global_batch_size(config: ml_collections.ConfigDict, num_devices: int = 0) -> int:
    """P classes x K images."""
    return config.classes_per_batch * config.examples_per_class


def optimizer_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The fields ``optim.make_optimizer`` reads."""
    keys = ("optimizer", "base_lr", "lr_scaling", "weight_decay", "momentum", "warmup_steps")
    return ml_collections.ConfigDict({**{k: config[k] for k in keys}, "total_steps": config.num_steps,
                                      "batch_size": global_batch_size(config)})


def init_state(config, optimizer, key: jax.Array, image_shape) -> TrainState:
    """The embedding network initialised for images of ``image_shape``."""
    model = build_model(config, bn_axis_name=None)
    variables = jax.jit(functools.partial(model.init, train=False))(key, jnp.zeros((2, *image_shape)))
    return TrainState.create(variables["params"], variables.get("batch_stats", {}), optimizer)


def check_class_split(config, data: ClassSplit, train_set: ImageDataset) -> None:
    """Fails before compiling when the split cannot feed the PK batches or the episodes."""
    num_train = len(np.unique(train_set.labels))
    if num_train < config.classes_per_batch:
        raise ConfigError(f"config.classes_per_batch={config.classes_per_batch} exceeds the {num_train} "
                          "training classes; lower it or hold out fewer classes.")
    num_heldout = len(np.unique(data.heldout.labels))
    if num_heldout < config.eval.n_way:
        raise ConfigError(f"only {num_heldout} held-out classes of {config.dataset!r} have images but "
                          f"config.eval.n_way={config.eval.n_way}; hold out more classes (config.eval_classes "
                          "or config.eval_every_nth_class) or lower n_way.")


def plan(config: ml_collections.ConfigDict, mesh) -> Plan:
    """Class split, PK batches, optimizer, initial state and step of a metric-learning run."""
    del mesh
    data = load_class_split(config)
    train_set = training_set(config, data.train)  # data.train plus the configured extra classes
    check_class_split(config, data, train_set)
    augment_config = augment.AugmentConfig(**config.augment.to_dict()) if config.augment_enabled else None
    optimizer, schedule = optim.make_optimizer(optimizer_config(config))
    # 'rbg' keys compile parameter init ~7x faster on CPU (see rl_repr.simclr.trainer); augmentation
    # and mining keys stay threefry, whose draws do not depend on the sharding.
    init_key = jax.random.key(config.seed, impl="rbg")
    base_key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 1)

    def batch_for_step(step: int) -> dict:
        rows = pk_batch_indices(train_set.labels, config.classes_per_batch, config.examples_per_class,
                                seed=config.seed, step=step)
        rows = np.array_split(rows, jax.process_count())[jax.process_index()]  # this process's rows
        return {"image": train_set.images[rows], "label": train_set.labels[rows]}

    def final_evaluation(state, finished: Finished) -> dict:
        del finished
        random_state = init_state(config, optimizer, init_key, data.heldout.image_shape)
        results = evaluation.final_evaluation(config, state, random_state, data)
        heldout = data.heldout
        results.update(loss=config.loss, batch_size=global_batch_size(config),
                       train_classes=[int(c) for c in np.unique(data.train.labels)],
                       heldout_classes=[int(c) for c in np.unique(heldout.labels)],
                       num_train_images=data.train.num_examples, num_heldout_images=heldout.num_examples,
                       num_batch_classes=int(len(np.unique(train_set.labels))),
                       num_batch_images=train_set.num_examples)
        return results

    return Plan(state=init_state(config, optimizer, init_key, data.train.image_shape),
                per_device_step=make_per_device_step(config, optimizer, schedule, augment_config, base_key),
                batch_for_step=batch_for_step, total_steps=config.num_steps, final_evaluation=final_evaluation,
                monitor=lambda state, step: evaluation.heldout_monitor(config, state, data),
                eval_every=config.eval_every_steps, extras={"data": data, "train_set": train_set})


METHOD = Method(name="metric_learning", defaults=metric_learning_defaults, rules=metric_learning_rules,
                global_batch_size=global_batch_size, plan=plan,
                nan_fix="lower config.base_lr (or raise config.warmup_steps)")
