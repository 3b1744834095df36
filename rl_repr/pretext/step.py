"""One pretext update, written once as a per-device program (``rl_repr.core.drivers``).

Per device (``axis_name`` set) or on the global batch (``axis_name=None``): the images -> each
configured task's inputs and targets (``tasks.task_inputs``, keyed by global example index) ->
the shared encoder and the tasks' heads in one apply (batch-norm statistics over the global
batch when ``global_bn``) -> the multi-task loss

    L = sum_t w_t * (sum of task t's per-example losses over the global batch) / (its count)

-> gradients summed across devices -> the optimizer. Metrics: ``loss`` and, per task,
``<task>_loss`` and ``<task>_accuracy`` (classification tasks) on the global batch.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from rl_repr.core.drivers import sum_gradients
from rl_repr.core.extras import require
from rl_repr.core.state import TrainState
from rl_repr.data.images.augment import to_float_images
from rl_repr.pretext import tasks
from rl_repr.pretext.model import build_model

ml_collections = require("ml_collections")


def global_sum(x, axis_name: str | None):
    """``x`` summed over the devices (itself on the global batch)."""
    return x if axis_name is None else jax.lax.psum(x, axis_name)


def make_per_device_step(config: ml_collections.ConfigDict, optimizer: optax.GradientTransformation,
                         schedule: optax.Schedule, base_key: jax.Array, image_shape: tuple[int, int, int],
                         permutations: jax.Array):
    """``per_device_step(state, batch, axis_name) -> (state, metrics)``; ``batch['image']`` is
    ``[n, H, W, C]`` uint8, this device's rows (all rows under jit)."""
    weights = tasks.task_weights(config)

    def per_device_step(state: TrainState, batch: dict, axis_name: str | None):
        model = build_model(config, image_shape, axis_name if config.global_bn else None)
        images = to_float_images(batch["image"])
        n = images.shape[0]
        first_index = 0 if axis_name is None else jax.lax.axis_index(axis_name) * n
        inputs, targets = tasks.task_inputs(config, jax.random.fold_in(base_key, state.step), images,
                                            permutations, first_index=first_index)

        def loss_fn(params):
            outputs, updates = model.apply({"params": params, "batch_stats": state.batch_stats}, inputs,
                                           train=True, mutable=["batch_stats"])
            terms = tasks.loss_terms(outputs, targets)
            counts = {task: global_sum(term.count, axis_name) for task, term in terms.items()}
            # this device's share of the global weighted mean: psum of it (and of its gradient) is the whole
            loss = sum(weights[task] * term.total / counts[task] for task, term in terms.items())
            return loss, (updates.get("batch_stats", {}), terms, counts)

        (loss, (batch_stats, terms, counts)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        grads = sum_gradients(grads, axis_name)
        if axis_name is not None and not config.global_bn:  # keep one copy of the running statistics
            batch_stats = jax.lax.pmean(batch_stats, axis_name)
        new_state = state.apply_gradients(grads, optimizer, batch_stats)
        metrics = {"loss": global_sum(loss, axis_name), "learning_rate": schedule(state.step)}
        for task, term in terms.items():
            metrics[f"{task}_loss"] = global_sum(term.total, axis_name) / counts[task]
            if task != "inpainting":
                metrics[f"{task}_accuracy"] = global_sum(term.correct, axis_name) / counts[task]
        return new_state, metrics

    return per_device_step


def init_variables(config: ml_collections.ConfigDict, key: jax.Array, image_shape: tuple[int, int, int],
                   permutations: jax.Array) -> dict:
    """The network's variables for ``image_shape`` images (every configured head initialised)."""
    model = build_model(config, image_shape, bn_axis_name=None)
    inputs, _ = tasks.task_inputs(config, jax.random.PRNGKey(0), jnp.zeros((2, *image_shape)), permutations)
    return jax.jit(lambda k, x: model.init(k, x, train=False))(key, inputs)
