"""One supervised update, written once as a per-device program (``rl_repr.core.drivers``).

Per device (``axis_name`` set) or on the global batch (``axis_name=None``): stored inputs ->
pixels in [0, 1] (optionally augmented, with a key per *global* example) -> optionally
attacked (adversarial training: ``rl_repr.adversarial.adversarial_batch``, the attack run on the
model in training mode) -> standardised -> the classifier -> the loss, per example:

    label-smoothed cross-entropy (eps = 0: cross-entropy)            rl_repr.losses
    or, with a teacher, alpha T^2 KL(p_T(teacher) || p_T(student)) + (1 - alpha) CE

weighted ``sum_i w_i loss_i / N`` (w from the adversarial mix, else 1) -> gradients summed
across devices -> the optimizer. Batch norm normalises over the batch the model sees: the
global batch under ``jit`` or with ``global_bn``; each device's own rows under
``shard_map``/``pmap`` with ``global_bn=False`` (the per-device statistics of Wu & He 2018),
whose running statistics are then averaged over the devices so that one copy is kept.
"""
from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax

from rl_repr import losses
from rl_repr.adversarial import Attack, adversarial_batch
from rl_repr.core.drivers import sum_gradients
from rl_repr.core.extras import require
from rl_repr.core.state import TrainState
from rl_repr.data.images import augment
from rl_repr.supervised.data import SupervisedData
from rl_repr.supervised.model import build_model

ml_collections = require("ml_collections")


@flax.struct.dataclass
class SupervisedState(TrainState):
    """:class:`~rl_repr.core.state.TrainState` plus the frozen distillation teacher's variables
    (``{'params', 'batch_stats'}``; ``{}`` without a teacher), replicated and checkpointed with it."""

    teacher: Any


def training_attack(config: ml_collections.ConfigDict) -> Attack | None:
    """The attack of ``config.adversarial`` (None when adversarial training is off)."""
    a = config.adversarial
    if a.attack == "none" or a.weight == 0:
        return None
    return Attack(a.attack, a.epsilon, steps=a.steps, step_size=a.step_size, random_start=a.random_start)


def per_example_loss(config: ml_collections.ConfigDict, logits, labels, teacher_logits=None):
    """``[N]`` losses: distillation with a teacher, else label-smoothed cross-entropy."""
    if teacher_logits is not None:
        t = config.teacher
        return jax.vmap(lambda s, z, y: losses.distillation_loss(s, z, y, temperature=t.temperature, alpha=t.alpha))(
            logits[:, None], teacher_logits[:, None], labels[:, None])
    return jax.vmap(lambda z, y: losses.label_smoothing_cross_entropy(z, y, config.label_smoothing))(
        logits[:, None], labels[:, None])


def make_per_device_step(config: ml_collections.ConfigDict, data: SupervisedData, teacher_model,
                         optimizer: optax.GradientTransformation, schedule: optax.Schedule,
                         augment_config: augment.AugmentConfig | None, base_key: jax.Array):
    """``per_device_step(state, batch, axis_name) -> (state, {'loss', 'batch_accuracy', 'learning_rate'})``
    for ``batch = {'input': [n, ...], 'label': [n]}``, this device's rows (all rows under jit).

    ``teacher_model`` is the teacher's module (None without distillation); its variables are
    ``state.teacher``. ``batch_accuracy`` is measured on the inputs trained on, in training mode
    (the attacked ones when ``adversarial.weight`` is 1).
    """
    attack = training_attack(config)

    def per_device_step(state: SupervisedState, batch: dict, axis_name: str | None):
        model = build_model(config, data.num_classes, axis_name if config.global_bn else None)
        stored, labels = batch["input"], batch["label"]
        n = labels.shape[0]
        devices = 1 if axis_name is None else jax.lax.psum(1, axis_name)
        first_index = 0 if axis_name is None else jax.lax.axis_index(axis_name) * n
        augment_key, attack_key = jax.random.split(jax.random.fold_in(base_key, state.step))
        if augment_config is not None:
            x = augment.augment_batch(augment_key, stored, augment_config, first_index=first_index)
        else:
            x = data.pixels(stored)

        def forward(params, inputs):  # -> (logits, updated batch_stats; {} without batch norm)
            logits, updates = model.apply({"params": params, "batch_stats": state.batch_stats},
                                          data.standardize(inputs), train=True, mutable=["batch_stats"])
            return logits, updates.get("batch_stats", state.batch_stats)

        weights = jnp.ones((n,), jnp.float32)
        if attack is not None:
            x, labels, weights = adversarial_batch(
                attack, config.adversarial.weight, lambda z: forward(state.params, z)[0], x, labels,
                augment.example_keys(attack_key, n, first_index))
        teacher_logits = None
        if teacher_model is not None:
            teacher_logits = teacher_model.apply(state.teacher, data.standardize(x), train=False)

        def loss_fn(params):
            logits, batch_stats = forward(params, x)
            loss = jnp.sum(weights * per_example_loss(config, logits, labels, teacher_logits)) / n
            return loss / devices, (logits, batch_stats)  # psum over devices: the global mean

        (loss, (logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        accuracy = jnp.mean(jnp.argmax(logits[:n], axis=-1) == labels[:n])
        grads = sum_gradients(grads, axis_name)
        if axis_name is not None:
            loss, accuracy = jax.lax.psum(loss, axis_name), jax.lax.pmean(accuracy, axis_name)
            if not config.global_bn:  # keep one copy of the running statistics
                batch_stats = jax.lax.pmean(batch_stats, axis_name)
        new_state = state.apply_gradients(grads, optimizer, batch_stats)
        return new_state, {"loss": loss, "batch_accuracy": accuracy, "learning_rate": schedule(state.step)}

    return per_device_step
