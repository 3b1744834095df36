"""MoCo v1/v2 pretraining (He et al. 2020, arXiv:1911.05722; Chen et al. 2020, arXiv:2003.04297):
the method's plan for the runner.

Story of a run (the runner, ``rl_repr.core.runner``, does the shared parts): load the images
(``rl_repr.data.images.sources``), or stream them as SimCLR does when they do not fit
(``rl_repr.simclr.streaming_input``: crops cut on the host, evaluation sharded) -> steps from
epochs -> SGD with a cosine (v2) or step (v1) schedule -> f_q, a copy f_k and a queue of random
unit keys (``state.py``), the queue split over the devices (``Plan.state_specs``) -> the
per-device step (``step.py``: shuffled key batch norm, InfoNCE against the sharded queue, momentum
update, enqueue the keys and their images' ids) -> the shared loop, with
SimCLR's kNN monitor every ``eval_every_steps`` -> SimCLR's final evaluation of f_q's
representation h: linear probe and kNN next to raw pixels and the random-init encoder, and
optional 1%/10% fine-tuning (``rl_repr.simclr.evaluation``, ``rl_repr.evaluation.encoder_report``),
and f_k's linear probe and kNN with ``evaluate_key_encoder`` (:func:`key_encoder_report`).

    python -m rl_repr.main --config=configs/moco_digits.py --workdir=/tmp/moco_digits
"""
from __future__ import annotations

import dataclasses
import functools
import math

import jax
import numpy as np
import optax

from rl_repr.core import optim
from rl_repr.core.config import ConfigError
from rl_repr.core.extras import require
from rl_repr.core.runner import Finished, Method, Plan
from rl_repr.data.images import augment, sources
from rl_repr.evaluation import frozen
from rl_repr.moco import state as moco_state
from rl_repr.moco.config import keys_per_step, moco_defaults, moco_rules
from rl_repr.moco.step import make_per_device_step
from rl_repr.simclr import evaluation, streaming_input
from rl_repr.simclr.trainer import optimizer_config

ml_collections = require("ml_collections")


def make_optimizer(config: ml_collections.ConfigDict, steps_per_epoch: int,
                   total_steps: int) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """SGD (momentum 0.9, weight decay) with lr ``base_lr x B/256``: cosine to 0 (v2, through
    ``rl_repr.core.optim.make_optimizer``, any of its optimizers) or MoCo v1's steps (x
    ``lr_decay_factor`` at each of ``lr_decay_epochs``); both after ``warmup_epochs`` of linear warmup."""
    warmup_steps = min(int(round(config.warmup_epochs * steps_per_epoch)), total_steps)
    if config.lr_schedule == "cosine":
        return optim.make_optimizer(optimizer_config(config, total_steps, warmup_steps))
    peak = optim.scaled_learning_rate(config.base_lr, config.batch_size, config.lr_scaling)
    drops = {max(1, int(round(epoch * steps_per_epoch)) - warmup_steps): config.lr_decay_factor
             for epoch in config.lr_decay_epochs}
    schedule = optax.join_schedules([optax.linear_schedule(0.0, peak, warmup_steps),
                                     optax.piecewise_constant_schedule(peak, drops)], [warmup_steps])
    tx = optax.chain(optax.add_decayed_weights(config.weight_decay, mask=optim.weight_decay_mask),
                     optax.sgd(schedule, momentum=config.momentum))
    return tx, schedule


def check_data_and_mesh(config: ml_collections.ConfigDict, examples: int, num_devices: int) -> int:
    """The checks that need the training set's size and the mesh; returns the key batch-norm group count."""
    if config.batch_size > examples:
        raise ConfigError(f"config.batch_size={config.batch_size} exceeds the {examples} training images; use a "
                          "smaller batch size.")
    per_step = keys_per_step(config)
    if config.queue_size > examples:
        raise ConfigError(f"config.queue_size={config.queue_size} exceeds the {examples} training images (the queue "
                          f"would hold several keys of one image); use a multiple of {per_step} (the keys each step "
                          f"enqueues) up to {examples // per_step * per_step}.")
    groups = config.key_bn_groups or num_devices
    if groups % num_devices:
        raise ConfigError(f"config.key_bn_groups={config.key_bn_groups} is not a multiple of the {num_devices} "
                          "devices (each device encodes whole groups of the key batch); use 0 for one per device.")
    return groups


def plan(config: ml_collections.ConfigDict, mesh) -> Plan:
    """Data, schedule, optimizer, initial state and step of a MoCo run on ``mesh``: images in memory,
    or streamed as SimCLR's are (``rl_repr.simclr.streaming_input``; ``config.streaming``)."""
    data = streaming_input.open_streaming_input(config) if streaming_input.streams(config) else None
    if data is None:
        train_set, test_set = sources.load_train_test(config)
        process_shard = sources.is_process_shard(config)
        examples = train_set.num_examples * (jax.process_count() if process_shard else 1)
        steps_per_epoch, image_shape = sources.global_steps_per_epoch(config, train_set), train_set.image_shape
    else:
        examples, steps_per_epoch = data.train.num_examples, data.steps_per_epoch
        image_shape = (config.image_size, config.image_size, 3)
        if config.queue_excludes_own_image and data.train.folder is None:
            raise ConfigError(f"config.queue_excludes_own_image needs each training image's index, which the stream "
                              f"of the tfds set {config.dataset!r} does not carry; set it to False, or stream a "
                              "folder (folder:DIR), or load the set in memory (config.streaming='off').")
        if config.evaluate_key_encoder:
            raise ConfigError("config.evaluate_key_encoder is for data loaded in memory; a streamed run evaluates "
                              "f_q only: set it to False, or config.streaming='off'.")
    key_bn_groups = check_data_and_mesh(config, examples, mesh.devices.size)
    total_steps = max(1, math.ceil(config.epochs * steps_per_epoch))
    optimizer, schedule = make_optimizer(config, steps_per_epoch, total_steps)
    # 'rbg' for parameter init (fast to compile on CPU), threefry for augmentation and shuffling
    # (their draws must not depend on how the batch is sharded), as in SimCLR's trainer.
    init_key = jax.random.key(config.seed, impl="rbg")
    base_key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 1)
    augment_config = augment.AugmentConfig(**config.augment.to_dict())
    random_state = functools.partial(moco_state.init_state, config, optimizer, init_key, image_shape)
    make_step = functools.partial(make_per_device_step, config, optimizer, schedule,
                                  moco_state.key_momentum(config, total_steps), base_key=base_key, mesh=mesh,
                                  key_bn_groups=key_bn_groups)
    if data is not None:  # crops cut on the host; the stream's position in every checkpoint
        return streaming_input.streaming_plan(
            data, mesh, random_state, total_steps,
            make_step(dataclasses.replace(augment_config, crop=False), data_position=data.position),
            state_class=moco_state.StreamingMoCoState, state_specs=moco_state.state_specs(mesh.axis_names[0], True))

    def final_evaluation(state, finished: Finished) -> dict:  # SimCLR's protocol on f_q's h
        del finished  # the runner adds the training's wall and CPU seconds
        results = evaluation.final_evaluation(config, state, random_state(), train_set, test_set)
        if config.evaluate_key_encoder:
            results.update(key_encoder_report(config, state, train_set, test_set))
        return dict(results, epochs=config.epochs, batch_size=config.batch_size, queue_size=config.queue_size)

    def batch_for_step(step: int) -> dict:  # this process's rows of the step's global batch, and their ids
        rows = sources.process_rows(config.seed, step, train_set.num_examples, config.batch_size,
                                    process_shard=process_shard)
        # an image's index, unique over processes (each holds its own shard with process_shard)
        ids = rows * jax.process_count() + jax.process_index() if process_shard else rows
        return {"image": train_set.images[rows], "id": ids.astype(np.int32)}

    return Plan(state=random_state(), per_device_step=make_step(augment_config), batch_for_step=batch_for_step,
                total_steps=total_steps, final_evaluation=final_evaluation,
                monitor=lambda state, _: {"knn_accuracy": evaluation.knn_monitor(config, state, train_set, test_set)},
                eval_every=config.eval_every_steps, state_specs=moco_state.state_specs(mesh.axis_names[0]))


def key_encoder_report(config: ml_collections.ConfigDict, state: moco_state.MoCoState, train_set, test_set) -> dict:
    """``key_encoder_linear_probe_accuracy`` and ``key_encoder_knn_accuracy``: the frozen protocol on
    the key encoder f_k's h (its parameters and running batch-norm statistics, eval mode)."""
    key_state = state.replace(params=state.key_params, batch_stats=state.key_batch_stats)
    train_f, test_f = evaluation.features(config, key_state, (train_set, test_set))
    return frozen.linear_and_knn("key_encoder_", train_f["h"], train_set.labels, test_f["h"], test_set.labels,
                                 k=config.knn_k)


METHOD = Method(name="moco", defaults=moco_defaults, rules=moco_rules,
                global_batch_size=lambda config, num_devices: config.batch_size, plan=plan,
                nan_fix="lower config.base_lr (or raise config.temperature)")
