"""One SimCLR update, written once as a per-device program (``rl_repr.core.drivers``).

Per device (``axis_name`` set) or on the global batch (``axis_name=None``): two augmented views
of each image, drawn on device with a key per *global* example index (so every driver and
device count sees the same views) -> both views through f and g in one batch (batch-norm
statistics over both views, over all devices when ``global_bn``) -> NT-Xent with negatives from
every device -> gradients summed across devices -> the optimizer (LARS by default).
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax

from rl_repr import losses
from rl_repr.core.drivers import sum_gradients
from rl_repr.core.extras import require
from rl_repr.core.state import TrainState
from rl_repr.data.images import augment
from rl_repr.simclr import gradient_cache
from rl_repr.simclr.model import build_model

ml_collections = require("ml_collections")


def make_per_device_step(config: ml_collections.ConfigDict, optimizer: optax.GradientTransformation,
                         schedule: optax.Schedule, augment_config: augment.AugmentConfig, base_key: jax.Array,
                         data_position: Callable[[jax.Array], jax.Array] | None = None):
    """``per_device_step(state, batch, axis_name) -> (state, {'loss', 'learning_rate'})``;
    ``batch['image']`` is ``[n, H, W, C]`` uint8, this device's rows (all rows under jit), or
    ``batch['views']`` ``[n, 2, H, W, C]``, the two crops of each image cut on the host (a
    streaming run; ``augment_config`` then has no crop). ``data_position(step)``, if given, is
    stored in the state's ``data_position`` after each update (a streaming run's checkpoints)."""

    def per_device_step(state: TrainState, batch: dict, axis_name: str | None):
        model = build_model(config, axis_name if config.global_bn else None)
        images = batch["views"] if "views" in batch else batch["image"]
        n = images.shape[0]
        first_index = 0 if axis_name is None else jax.lax.axis_index(axis_name) * n
        view_1, view_2 = augment.two_views(jax.random.fold_in(base_key, state.step), images, augment_config,
                                           first_index=first_index)

        def embed(params, x):  # -> (z, updated batch_stats; {} for a model without batch norm)
            (_, z, _), updates = model.apply({"params": params, "batch_stats": state.batch_stats}, x,
                                             train=True, mutable=["batch_stats"])
            return z, updates.get("batch_stats", {})

        def contrastive_loss(z1, z2):
            return losses.nt_xent(z1, z2, config.temperature, axis_name=axis_name,
                                  chunk_size=config.loss_chunk_size or None)

        def loss_fn(params):
            z, batch_stats = embed(params, jnp.concatenate([view_1, view_2]))
            return contrastive_loss(z[:n], z[n:]), batch_stats

        if config.gradient_cache_chunks:  # representation caching: activations of one chunk
            loss, batch_stats, grads = gradient_cache.two_view_value_and_grad(
                embed, contrastive_loss, state.params, view_1, view_2, config.gradient_cache_chunks)
        else:
            (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        grads = sum_gradients(grads, axis_name)
        if axis_name is not None and not config.global_bn:  # keep one copy of the running statistics
            batch_stats = jax.lax.pmean(batch_stats, axis_name)
        new_state = state.apply_gradients(grads, optimizer, batch_stats)
        if data_position is not None:
            new_state = new_state.replace(data_position=data_position(new_state.step))
        return new_state, {"loss": loss, "learning_rate": schedule(state.step)}

    return per_device_step
