"""MoCo's training state: the query encoder's, plus the key encoder and the queue of keys.

Everything a resumed run needs is in one pytree, so the runner's checkpoints hold it: the key
encoder's parameters and batch statistics, the queue and its write slot. The key encoder's
momentum is a pure function of the step (:func:`key_momentum`), which the state holds too.
"""
from __future__ import annotations

import functools
import math
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax
from jax.sharding import PartitionSpec as P

from rl_repr.core.extras import require
from rl_repr.core.state import TrainState
from rl_repr.simclr.model import build_model

ml_collections = require("ml_collections")


@flax.struct.dataclass
class MoCoState(TrainState):
    """``TrainState`` (step, the query encoder f_q's params, batch_stats, opt_state) and:

    Attributes:
      key_params: the key encoder f_k's parameters (updated by momentum, never by gradients).
      key_batch_stats: f_k's running batch-norm statistics (keys are always computed in training
        mode; these are kept so f_k can be evaluated too).
      queue: ``[B, K/B, d]`` unit-norm keys of the last K/B global batches, split over the
        devices along its first axis (``rl_repr.losses.moco`` describes the layout).
      queue_slot: int32, the slot the next batch's keys overwrite (the oldest).
      queue_ids: ``[B, K/B]`` int32, the data set index of each queued key's image (-1 for the
        random initial keys), laid out and split as ``queue``.
    """

    key_params: Any
    key_batch_stats: Any
    queue: jax.Array
    queue_slot: jax.Array
    queue_ids: jax.Array


@flax.struct.dataclass
class StreamingMoCoState(MoCoState):
    """A streaming run's MoCo state: ``data_position``, int32 ``[3]`` (epoch, batch in the epoch,
    fingerprint of the training split) of the next batch (``rl_repr.simclr.streaming_input``)."""

    data_position: jax.Array


def state_specs(data_axis: str = "data", streaming: bool = False) -> MoCoState:
    """Which parts of the state are split over the devices: only the queue and its ids (``Plan.state_specs``)."""
    specs = dict(step=P(), params=P(), batch_stats=P(), opt_state=P(), key_params=P(), key_batch_stats=P(),
                 queue=P(data_axis), queue_slot=P(), queue_ids=P(data_axis))
    return StreamingMoCoState(**specs, data_position=P()) if streaming else MoCoState(**specs)


def init_state(config: ml_collections.ConfigDict, optimizer: optax.GradientTransformation, key: jax.Array,
               image_shape: tuple[int, ...]) -> MoCoState:
    """f_q and f_k initialised identically (MoCo copies f_q into f_k), the queue random unit vectors."""
    model = build_model(config, bn_axis_name=None)
    init_key, queue_key = jax.random.split(key)
    variables = jax.jit(functools.partial(model.init, train=False))(init_key, jnp.zeros((2, *image_shape)))
    params, batch_stats = variables["params"], variables.get("batch_stats", {})
    _, z, _ = jax.eval_shape(functools.partial(model.apply, train=False), variables, jnp.zeros((2, *image_shape)))
    slots = config.queue_size // config.batch_size
    queue = jax.random.normal(queue_key, (config.batch_size, slots, z.shape[-1]), jnp.float32)
    queue = queue / jnp.linalg.norm(queue, axis=-1, keepdims=True)
    copy = functools.partial(jax.tree.map, jnp.copy)  # separate buffers: the step donates both
    return MoCoState.create(params, batch_stats, optimizer, key_params=copy(params),
                            key_batch_stats=copy(batch_stats), queue=queue, queue_slot=jnp.zeros((), jnp.int32),
                            queue_ids=jnp.full(queue.shape[:2], -1, jnp.int32))


def key_momentum(config: ml_collections.ConfigDict, total_steps: int):
    """``step -> m``: the key encoder's momentum after update ``step`` (0-based).

    'constant': m (MoCo). 'cosine': ``1 - (1 - m)(cos(pi t / T) + 1) / 2``, from m at the first
    step up to 1 at the last (BYOL, Grill et al. 2020).
    """
    base = config.key_momentum
    if config.key_momentum_schedule == "constant":
        return lambda step: jnp.asarray(base, jnp.float32)
    return lambda step: 1.0 - (1.0 - base) * (jnp.cos(math.pi * step / total_steps) + 1.0) / 2.0


def momentum_update(key_params: Any, query_params: Any, momentum: jax.Array) -> Any:
    """``theta_k <- m theta_k + (1 - m) theta_q`` (He et al. 2020, eq. 2), leaf by leaf."""
    return optax.incremental_update(query_params, key_params, 1.0 - momentum)
