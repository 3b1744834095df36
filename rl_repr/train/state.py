"""The training state: one small pytree that checkpoints, shards and donates as a unit."""
from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax


@flax.struct.dataclass
class TrainState:
    """Everything a trainer updates, in one pytree.

    Attributes:
      step: scalar int32, the number of optimizer updates applied so far.
      params: the model's ``params`` collection (float32 whatever the compute dtype).
      batch_stats: running statistics of the batch norms (empty dict for a model without BN).
      opt_state: the optax state for ``params``.
      extra: method-specific state that is not trained by the optimizer (e.g. MoCo's
        key encoder and queue); an empty dict when unused.

    Random keys are not stored: each step derives its key as
    ``jax.random.fold_in(base_key, step)``, so a resumed run draws exactly the
    augmentations an uninterrupted run would have drawn.
    """

    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any
    extra: Any = flax.struct.field(default_factory=dict)

    @classmethod
    def create(cls, params: Any, batch_stats: Any, optimizer: optax.GradientTransformation,
               extra: Any = None) -> "TrainState":
        return cls(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
                   opt_state=optimizer.init(params), extra={} if extra is None else extra)

    def apply_gradients(self, grads: Any, optimizer: optax.GradientTransformation,
                        batch_stats: Any) -> "TrainState":
        updates, opt_state = optimizer.update(grads, self.opt_state, self.params)
        return self.replace(step=self.step + 1, params=optax.apply_updates(self.params, updates),
                            opt_state=opt_state, batch_stats=batch_stats)
