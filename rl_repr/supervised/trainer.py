"""Supervised training (``config.method = "supervised"``): the method's plan for the runner.

The course's classic experiments run through it: batch norm against group norm as the
per-device batch shrinks, plain against residual depth, input standardisation, label
smoothing under label noise, distillation, adversarial training and greedy layer-wise
pretraining (``configs/studies/``, ``experiments/``).

Story of a run (the runner, ``rl_repr.core.runner``, does the shared parts): the data with its
label fraction, label noise and input scaling (``data.py``) -> steps from epochs -> the
optimizer (SGD with momentum by default; warmup + cosine) -> the classifier (``model.py``) at its
initial state, optionally from torchvision's weights or greedily pretrained (``greedy.py``), and
the frozen teacher when distilling -> the per-device step (``step.py``) -> the shared loop, with
a train/test monitor every ``eval_every_steps`` -> test accuracy, calibration, accuracy under
attack (``evaluation.py``).

    python -m rl_repr.main --config=configs/supervised_characters.py --workdir=/tmp/supervised
"""
from __future__ import annotations

import functools
import json
import math
import os

import jax
import numpy as np

from rl_repr.core import optim
from rl_repr.core.checkpoint import Checkpointer
from rl_repr.core.config import ConfigError
from rl_repr.core.extras import require
from rl_repr.core.runner import Finished, Method, Plan
from rl_repr.data.images import augment, sources
from rl_repr.models import import_torchvision_resnet
from rl_repr.supervised import evaluation
from rl_repr.supervised.config import supervised_defaults, supervised_rules
from rl_repr.supervised.data import SupervisedData, load_supervised_data
from rl_repr.supervised.greedy import greedy_layerwise_pretraining
from rl_repr.supervised.model import build_model
from rl_repr.supervised.step import SupervisedState, make_per_device_step

ml_collections = require("ml_collections")


def optimizer_config(config: ml_collections.ConfigDict, total_steps: int,
                     warmup_steps: int) -> ml_collections.ConfigDict:
    """The fields ``optim.make_optimizer`` reads, with the step counts derived from epochs."""
    keys = ("optimizer", "base_lr", "lr_scaling", "batch_size", "weight_decay", "momentum", "end_lr")
    return ml_collections.ConfigDict({**{k: config[k] for k in keys},
                                      "total_steps": total_steps, "warmup_steps": warmup_steps})


def initial_variables(config, data: SupervisedData, model, key: jax.Array) -> dict:
    """The classifier's variables before training: random, from torchvision's weights
    (``model.torchvision_weights``) or greedily pretrained (``greedy_pretraining.enabled``; a
    resumed run pretrains again, deterministically, before its checkpoint replaces the result)."""
    sample = np.zeros((2, *data.train_inputs.shape[1:]), np.float32)
    variables = jax.jit(functools.partial(model.init, train=False))(key, sample)
    variables = {"params": variables["params"], "batch_stats": variables.get("batch_stats", {})}
    if config.model.torchvision_weights:
        with np.load(os.path.expanduser(config.model.torchvision_weights)) as stored:
            state_dict = dict(stored)
        fits = state_dict.get("fc.bias", np.zeros(0)).shape == (data.num_classes,)
        imported = import_torchvision_resnet(state_dict, include_classifier=fits)
        variables = {name: {**variables[name], **imported[name]} for name in ("params", "batch_stats")}
    if config.greedy_pretraining.enabled:
        g = config.greedy_pretraining
        variables = greedy_layerwise_pretraining(
            model, variables, data.model_input(data.unlabelled_inputs), jax.random.fold_in(key, 1),
            steps_per_layer=g.steps_per_layer, learning_rate=g.learning_rate, batch_size=g.batch_size)
    return variables


def load_teacher(config: ml_collections.ConfigDict, data: SupervisedData):
    """``(teacher model, its variables)`` from ``config.teacher.workdir``: a supervised run's
    ``config.json`` (the architecture) and its latest checkpoint (the weights), frozen."""
    workdir = os.path.expanduser(config.teacher.workdir)
    config_path = os.path.join(workdir, "config.json")
    if not os.path.isfile(config_path):
        raise ConfigError(f"config.teacher.workdir={workdir!r} holds no config.json; point it at the workdir of a "
                          "finished supervised run (train the teacher first).")
    with open(config_path) as f:
        teacher_config = ml_collections.ConfigDict(json.load(f))
    same = ("method", "dataset", "standardize_inputs")
    if any(teacher_config.get(k) != config.get(k) for k in same) or teacher_config.teacher.workdir:
        raise ConfigError(f"the teacher in {workdir} must be an undistilled supervised run on the same data "
                          f"({', '.join(same)} equal to the student's); train one with the student's dataset.")
    model = build_model(teacher_config, data.num_classes, bn_axis_name=None)
    optimizer, _ = optim.make_optimizer(optimizer_config(teacher_config, total_steps=1, warmup_steps=0))
    key = jax.random.key(0, impl="rbg")
    sample = np.zeros((2, *data.train_inputs.shape[1:]), np.float32)
    target = jax.eval_shape(lambda: _state(model.init(key, sample, train=False), optimizer, {}))
    checkpointer = Checkpointer(os.path.join(workdir, "checkpoints"), save_every_steps=1)
    try:
        state, step = checkpointer.restore_latest(target)
    finally:
        checkpointer.close()
    if step == 0:
        raise ConfigError(f"config.teacher.workdir={workdir!r} has no checkpoint; train the teacher first.")
    return model, {"params": state.params, "batch_stats": state.batch_stats}


def _state(variables, optimizer, teacher) -> SupervisedState:
    return SupervisedState.create(variables["params"], variables.get("batch_stats", {}), optimizer, teacher=teacher)


def _check_data(config: ml_collections.ConfigDict, data: SupervisedData) -> int:
    """Steps per epoch; one sentence for settings the data cannot take."""
    if not data.is_image and (config.augment_enabled or config.model.kind != "mlp"):
        raise ConfigError(f"{config.dataset} is a table: use model.kind='mlp' and augment_enabled=False.")
    steps_per_epoch = len(data.train_labels) // config.batch_size
    if steps_per_epoch == 0:
        raise ConfigError(f"config.batch_size={config.batch_size} exceeds the {len(data.train_labels)} labelled "
                          "training examples; use a smaller batch size.")
    return steps_per_epoch


def plan(config: ml_collections.ConfigDict, mesh) -> Plan:
    """Data, schedule, optimizer, initial state and step of a supervised run on ``mesh``."""
    del mesh  # the runner places everything
    data = load_supervised_data(config)
    steps_per_epoch = _check_data(config, data)
    total_steps = max(1, math.ceil(config.epochs * steps_per_epoch))
    warmup_steps = min(int(round(config.warmup_epochs * steps_per_epoch)), total_steps)
    optimizer, schedule = optim.make_optimizer(optimizer_config(config, total_steps, warmup_steps))
    # 'rbg' keys compile parameter init faster on CPU (see rl_repr.simclr.trainer); the step's
    # augmentation and attack keys stay threefry, keyed per global example.
    init_key = jax.random.key(config.seed, impl="rbg")
    base_key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 1)
    teacher_model, teacher_variables = load_teacher(config, data) if config.teacher.workdir else (None, {})
    model = build_model(config, data.num_classes, bn_axis_name=None)
    state = _state(initial_variables(config, data, model, init_key), optimizer, teacher_variables)
    augment_config = augment.AugmentConfig(**config.augment.to_dict()) if config.augment_enabled else None
    process_shard = data.is_image and sources.is_process_shard(config)
    rows = evaluation.monitor_rows(config, data)
    predictor = evaluation.Predictor(config, data)

    def batch_for_step(step: int) -> dict:
        batch = sources.process_rows(config.seed, step, len(data.train_labels), config.batch_size,
                                     process_shard=process_shard)
        return {"input": data.train_inputs[batch], "label": data.train_labels[batch]}

    def final_evaluation(final_state, finished: Finished) -> dict:
        del finished
        results = evaluation.final_evaluation(predictor, final_state, teacher_model, rows)
        results.update(epochs=config.epochs, batch_size=config.batch_size, num_classes=data.num_classes,
                       train_examples=int(len(data.train_labels)), test_examples=int(len(data.test_labels)))
        return results

    return Plan(state=state,
                per_device_step=make_per_device_step(config, data, teacher_model, optimizer, schedule,
                                                     augment_config, base_key),
                batch_for_step=batch_for_step, total_steps=total_steps, final_evaluation=final_evaluation,
                monitor=lambda s, step: evaluation.monitor(predictor, s, rows),
                eval_every=config.eval_every_steps, extras={"data": data})


METHOD = Method(name="supervised", defaults=supervised_defaults, rules=supervised_rules,
                global_batch_size=lambda config, num_devices: config.batch_size, plan=plan,
                nan_fix="lower config.base_lr (or raise config.warmup_epochs)")
