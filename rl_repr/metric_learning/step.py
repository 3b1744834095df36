"""One metric-learning update, written once as a per-device program (``rl_repr.core.drivers``).

A PK batch (P classes x K images) -> per-example augmentation keyed by the *global* example
index (two views per image when the instance term is on) -> f on the batch (global batch norm
across devices) -> embeddings and labels of the *whole* global batch on every device -> mining
and loss on the global batch (``rl_repr.losses.metric_loss``, or ``metric_and_instance_loss``:
plus NT-Xent between the two views) -> gradients summed across devices -> optimizer.

Mining sees the global batch on every driver. Under ``jit`` the batch is one global array and
XLA inserts the collectives. Under ``shard_map``/``pmap`` each device gathers every device's
embeddings with ``rl_repr.losses.gather_global_batch`` and computes the same global loss; that
gather's backward pass hands each device d(loss)/d(its own rows), so summing the parameter
gradients over devices (``sum_gradients``) gives the single-device gradient.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from rl_repr import losses
from rl_repr.core.drivers import sum_gradients
from rl_repr.core.extras import require
from rl_repr.core.state import TrainState
from rl_repr.data.images import augment
from rl_repr.metric_learning.model import build_model

ml_collections = require("ml_collections")


def make_per_device_step(config: ml_collections.ConfigDict, optimizer: optax.GradientTransformation,
                         schedule: optax.Schedule, augment_config: augment.AugmentConfig | None,
                         base_key: jax.Array):
    """``per_device_step(state, batch, axis_name) -> (state, metrics)`` for ``batch['image']``
    ``[n, H, W, C]`` uint8 and ``batch['label']`` ``[n]``, this device's rows.

    With ``config.instance_weight > 0`` each image is augmented twice and the loss is
    ``metric_and_instance_loss`` of the two views' embeddings; otherwise one view (none when
    ``augment_config`` is None) and ``metric_loss``.
    """
    metric_kwargs = dict(loss=config.loss, margin=config.margin, pair_margin=config.pair_margin,
                         distance=config.distance)
    two_views = config.instance_weight > 0

    def per_device_step(state: TrainState, batch: dict, axis_name: str | None):
        model = build_model(config, axis_name if config.global_bn else None)
        images, labels = batch["image"], batch["label"]
        n = images.shape[0]
        first_index = 0 if axis_name is None else jax.lax.axis_index(axis_name) * n
        augment_key, mining_key = jax.random.split(jax.random.fold_in(base_key, state.step))
        if augment_config is None:
            pixels = augment.to_float_images(images)
        elif two_views:  # keys per global example: any sharding draws the same views
            pixels = jnp.concatenate(augment.two_views(augment_key, images, augment_config, first_index=first_index))
        else:
            pixels = augment.augment_batch(augment_key, images, augment_config, first_index=first_index)
        all_labels = labels if axis_name is None else jax.lax.all_gather(labels, axis_name, tiled=True)

        def global_rows(local):  # this device's rows -> the global batch's, in the global order
            return local if axis_name is None else losses.gather_global_batch(local, axis_name)

        def loss_fn(params):
            embeddings, updates = model.apply({"params": params, "batch_stats": state.batch_stats}, pixels,
                                              train=True, mutable=["batch_stats"])
            if two_views:
                value, diagnostics = losses.metric_and_instance_loss(
                    global_rows(embeddings[:n]), global_rows(embeddings[n:]), all_labels, mining_key,
                    metric_weight=config.metric_weight, instance_weight=config.instance_weight,
                    instance_temperature=config.instance_temperature, **metric_kwargs)
            else:
                value, diagnostics = losses.metric_loss(global_rows(embeddings), all_labels, mining_key,
                                                        **metric_kwargs)
            return value, (diagnostics, updates.get("batch_stats", state.batch_stats))

        (loss, (diagnostics, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        grads = sum_gradients(grads, axis_name)
        if axis_name is not None and not config.global_bn:  # keep one copy of the running statistics
            batch_stats = jax.lax.pmean(batch_stats, axis_name)
        new_state = state.apply_gradients(grads, optimizer, batch_stats)
        return new_state, {"loss": loss, "learning_rate": schedule(state.step), **diagnostics}

    return per_device_step
