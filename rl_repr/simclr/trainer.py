"""SimCLR pretraining (Chen et al. 2020, arXiv:2002.05709): the method's plan for the runner.

Story of a run (the runner, ``rl_repr.core.runner``, does the shared parts): load the images
(``rl_repr.data.images.sources``), or stream them when they do not fit
(``streaming_input.py``: crops cut on the host, evaluation sharded) -> steps from epochs -> LARS with warmup + cosine -> encoder
f and head g (``model.py``) at their initial state -> the per-device step (``step.py``) ->
the shared loop, with a kNN monitor every ``eval_every_steps`` -> linear probe and kNN on the
frozen h, next to raw pixels and the random-init encoder, and optional 1%/10% fine-tuning
(``evaluation.py``).

    python -m rl_repr.main --config=configs/simclr_digits.py --workdir=/tmp/simclr_digits
"""
from __future__ import annotations

import dataclasses
import functools
import math
import os

import jax
import jax.numpy as jnp

from rl_repr.core import optim
from rl_repr.core.errors import ConfigError
from rl_repr.core.extras import require
from rl_repr.core.runner import Finished, Method, Plan
from rl_repr.core.state import TrainState
from rl_repr.data.images import augment, sources
from rl_repr.simclr import evaluation, streaming_input
from rl_repr.simclr.config import simclr_defaults, simclr_rules
from rl_repr.simclr.model import build_model
from rl_repr.simclr.step import make_per_device_step

ml_collections = require("ml_collections")


def optimizer_config(config: ml_collections.ConfigDict, total_steps: int,
                     warmup_steps: int) -> ml_collections.ConfigDict:
    """The fields ``optim.make_optimizer`` reads, with the step counts derived from epochs."""
    keys = ("optimizer", "base_lr", "lr_scaling", "batch_size", "weight_decay", "momentum")
    return ml_collections.ConfigDict({**{k: config[k] for k in keys},
                                      "total_steps": total_steps, "warmup_steps": warmup_steps})


def init_state(config: ml_collections.ConfigDict, optimizer, key: jax.Array, image_shape) -> TrainState:
    """f and g initialised for images of ``image_shape`` (no batch-norm axis: one device)."""
    model = build_model(config, bn_axis_name=None)
    variables = jax.jit(functools.partial(model.init, train=False))(key, jnp.zeros((2, *image_shape)))
    return TrainState.create(variables["params"], variables.get("batch_stats", {}), optimizer)


def plan(config: ml_collections.ConfigDict, mesh) -> Plan:
    """Data, schedule, optimizer, initial state and step of a SimCLR run on ``mesh``."""
    data = streaming_input.open_streaming_input(config) if streaming_input.streams(config) else None
    if data is None:
        train_set, test_set = sources.load_train_test(config)
        steps_per_epoch, image_shape = sources.global_steps_per_epoch(config, train_set), train_set.image_shape
        num_images = train_set.num_examples
    else:
        steps_per_epoch, image_shape = data.steps_per_epoch, (config.image_size, config.image_size, 3)
        num_images = data.train.num_examples
    if steps_per_epoch == 0:
        raise ConfigError(f"config.batch_size={config.batch_size} exceeds the {num_images} training images; use a "
                          "smaller batch size.")
    total_steps = max(1, math.ceil(config.epochs * steps_per_epoch))
    warmup_steps = min(int(round(config.warmup_epochs * steps_per_epoch)), total_steps)
    optimizer, schedule = optim.make_optimizer(optimizer_config(config, total_steps, warmup_steps))
    # Parameter init uses the 'rbg' generator: XLA compiles ResNet init ~7x faster than with
    # threefry on CPU, and init runs once on one device, so sharding invariance is moot. The
    # augmentation keys stay threefry, whose draws do not depend on how the batch is sharded.
    init_key = jax.random.key(config.seed, impl="rbg")
    base_key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 1)
    augment_config = augment.AugmentConfig(**config.augment.to_dict())
    random_state = functools.partial(init_state, config, optimizer, init_key, image_shape)
    if data is not None:
        return streaming_input.streaming_plan(data, mesh, random_state, total_steps, make_per_device_step(
            config, optimizer, schedule, dataclasses.replace(augment_config, crop=False), base_key,
            data_position=data.position))
    process_shard = sources.is_process_shard(config)

    def batch_for_step(step: int) -> dict:
        rows = sources.process_rows(config.seed, step, train_set.num_examples, config.batch_size,
                                    process_shard=process_shard)
        return {"image": train_set.images[rows]}

    def monitor(state, step):
        del step
        return {"knn_accuracy": evaluation.knn_monitor(config, state, train_set, test_set)}

    def final_evaluation(state, finished: Finished) -> dict:
        results = evaluation.final_evaluation(config, state, random_state(), train_set, test_set,
                                              subsets_dir=config.label_subsets_dir or
                                              os.path.join(finished.workdir, "label_subsets"))
        results.update(epochs=config.epochs, batch_size=config.batch_size)
        return results

    return Plan(state=random_state(),
                per_device_step=make_per_device_step(config, optimizer, schedule, augment_config, base_key),
                batch_for_step=batch_for_step, total_steps=total_steps, final_evaluation=final_evaluation,
                monitor=monitor, eval_every=config.eval_every_steps)


METHOD = Method(name="simclr", defaults=simclr_defaults, rules=simclr_rules,
                global_batch_size=lambda config, num_devices: config.batch_size, plan=plan,
                nan_fix="lower config.base_lr (or raise config.warmup_epochs)")
