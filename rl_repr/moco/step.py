"""One MoCo update, written once as a per-device program (``rl_repr.core.drivers``).

He et al. 2020, Algorithm 1, per device (``axis_name`` set) or on the global batch
(``axis_name=None``, ``jax.jit``):

    x_q, x_k = two augmented views of each image (keyed by the global example index)
    k = f_k(x_k)        no gradient; batch norm shuffled across devices (``shuffle_bn``),
                        synchronised, or per device (``config.key_bn``)
    q = f_q(x_q)        batch norm over the global batch
    loss = InfoNCE(q, k, queue) / tau; the queue is split over the devices and the negatives'
                        log-sum-exp combined across them (``rl_repr.losses.queue_info_nce``);
                        ``config.queue_excludes_own_image``: queued keys of q's own image are
                        not among its negatives (the queue keeps each key's image index)
    (``config.symmetric_loss``: also k' = f_k(x_q), q' = f_q(x_k), and
     loss = [InfoNCE(q, k, queue) + InfoNCE(q', k', queue)] / 2, both k and k' enqueued, as the
     MoCo authors' CIFAR-10 demo (which sums the two terms); twice the encoder work of a step)
    f_q <- SGD(grad, summed over devices)
    f_k <- m f_k + (1 - m) f_q
    enqueue k and its images' indices (each device into its own shard), drop the oldest batch

Under jit the step sees the global ``[B, K/B, d]`` queue sharded over the devices; sharding
constraints keep the key groups and the keys on the devices that own them, so no device ever
holds the whole queue or encodes another device's group.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from rl_repr import losses
from rl_repr.core.drivers import sum_gradients
from rl_repr.core.extras import require
from rl_repr.data.images import augment
from rl_repr.moco import shuffle_bn
from rl_repr.moco.state import MoCoState, momentum_update
from rl_repr.simclr.model import build_model

ml_collections = require("ml_collections")


def make_per_device_step(config: ml_collections.ConfigDict, optimizer: optax.GradientTransformation,
                         schedule: optax.Schedule, key_momentum, augment_config: augment.AugmentConfig,
                         base_key: jax.Array, mesh: Mesh, key_bn_groups: int,
                         data_position: Callable[[jax.Array], jax.Array] | None = None):
    """``per_device_step(state, batch, axis_name) -> (state, {'loss', 'learning_rate', 'key_momentum'})``.

    ``batch['image']`` is ``[n, H, W, C]`` uint8, this device's rows (all rows under jit), or
    ``batch['views']`` ``[n, 2, H, W, C]``, the two crops of each image cut on the host (a
    streaming run; ``augment_config`` then has no crop); ``batch['id']`` ``[n]`` int is their
    images' indices in the data set (unique across processes). ``key_momentum`` is
    ``step -> m`` (``rl_repr.moco.state.key_momentum``); ``key_bn_groups`` the number of
    batch-norm groups of the key batch (a multiple of the device count); ``data_position(step)``,
    if given, is stored in the state's ``data_position`` after each update (a streaming run).
    """
    augment_key, shuffle_key = jax.random.split(base_key)

    def per_device_step(state: MoCoState, batch: dict, axis_name: str | None):
        query_model = build_model(config, axis_name)
        key_model = build_model(config, axis_name if config.key_bn == "global" else None)
        sharded = NamedSharding(mesh, P(mesh.axis_names[0]))

        def shard(x):  # under jit: keep the array's leading axis split over the devices
            return jax.lax.with_sharding_constraint(x, sharded) if axis_name is None else x

        images = batch["views"] if "views" in batch else batch["image"]
        n = images.shape[0]
        first_index = 0 if axis_name is None else jax.lax.axis_index(axis_name) * n
        view_q, view_k = augment.two_views(jax.random.fold_in(augment_key, state.step), images, augment_config,
                                           first_index=first_index)

        # ---- keys: the momentum encoder, no gradient
        def key_encoder(key_batch_stats):
            def encode(x):
                (_, z, _), updates = key_model.apply({"params": state.key_params, "batch_stats": key_batch_stats},
                                                     x, train=True, mutable=["batch_stats"])
                return z, updates.get("batch_stats", {})
            return encode

        def keys_of(view, key_batch_stats, view_index):
            encode = key_encoder(key_batch_stats)
            if config.key_bn == "global":
                keys, stats = encode(view)
            elif config.key_bn == "local":
                keys, stats = shuffle_bn.local_keys(encode, view, key_bn_groups, axis_name=axis_name, shard=shard)
            else:
                global_batch = n if axis_name is None else n * jax.lax.axis_size(axis_name)
                # the key view's permutation; the symmetric loss's second key batch gets its own
                permutation_key = shuffle_key if view_index == 0 else jax.random.fold_in(shuffle_key, view_index)
                permutation = shuffle_bn.key_permutation(permutation_key, state.step, global_batch)
                keys, stats = shuffle_bn.shuffled_keys(encode, view, permutation, key_bn_groups,
                                                       axis_name=axis_name, shard=shard)
            return shard(jax.lax.stop_gradient(keys)), stats

        keys, key_batch_stats = keys_of(view_k, state.key_batch_stats, 0)
        # (query view, its positive keys): MoCo's one pair, or both directions (symmetric loss)
        pairs = [(view_q, keys)]
        if config.symmetric_loss:
            keys_of_q, key_batch_stats = keys_of(view_q, key_batch_stats, 1)
            pairs.append((view_k, keys_of_q))

        # ---- queries and the loss against the (sharded) queue
        ids = batch["id"]
        own_image = dict(query_ids=ids, queue_ids=state.queue_ids) if config.queue_excludes_own_image else {}

        def loss_fn(params):
            batch_stats, total = state.batch_stats, 0.0
            for view, positive_keys in pairs:
                (_, z, _), updates = query_model.apply({"params": params, "batch_stats": batch_stats}, view,
                                                       train=True, mutable=["batch_stats"])
                batch_stats = updates.get("batch_stats", {})
                total = total + losses.queue_info_nce(z, positive_keys, state.queue, config.temperature,
                                                      axis_name=axis_name, **own_image)
            return total / len(pairs), batch_stats

        (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        new_state = state.apply_gradients(sum_gradients(grads, axis_name), optimizer, batch_stats)

        # ---- the key encoder follows by momentum; this step's keys replace the oldest batch (or,
        # with the symmetric loss, both views' keys the two oldest, as the authors' CIFAR-10 demo)
        momentum = key_momentum(state.step)
        queue, slot, queue_ids = state.queue, state.queue_slot, state.queue_ids
        for _, positive_keys in pairs:
            queue_ids = losses.enqueue_ids(queue_ids, slot, ids)
            queue, slot = losses.enqueue_keys(queue, slot, positive_keys)
        new_state = new_state.replace(key_params=momentum_update(state.key_params, new_state.params, momentum),
                                      key_batch_stats=key_batch_stats, queue=queue, queue_slot=slot,
                                      queue_ids=queue_ids)
        if data_position is not None:
            new_state = new_state.replace(data_position=data_position(new_state.step))
        metrics = {"loss": loss, "learning_rate": schedule(state.step), "key_momentum": jnp.asarray(momentum)}
        return new_state, metrics

    return per_device_step
