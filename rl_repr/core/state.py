"""The training state: one small pytree that checkpoints, shards and donates as a unit."""
from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax


@flax.struct.dataclass
class TrainState:
    """Everything a gradient-trained method updates, in one pytree.

    Attributes:
      step: scalar int32, the number of optimizer updates applied so far.
      params: the model's ``params`` collection (float32 whatever the compute dtype).
      batch_stats: running statistics of the batch norms (empty dict for a model without BN).
      opt_state: the optax state for ``params``.

    A method with more state (MoCo's key encoder and queue) subclasses it with more fields.
    Random keys are not stored: each step derives its key as ``jax.random.fold_in(base_key,
    step)``, so a resumed run draws exactly the augmentations an uninterrupted run would have.
    """

    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any

    @classmethod
    def create(cls, params: Any, batch_stats: Any, optimizer: optax.GradientTransformation,
               **fields: Any) -> "TrainState":
        """A state at step 0; ``fields`` fill a subclass's extra fields."""
        return cls(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
                   opt_state=optimizer.init(params), **fields)

    def apply_gradients(self, grads: Any, optimizer: optax.GradientTransformation,
                        batch_stats: Any) -> "TrainState":
        """One optimizer update of ``params``; ``batch_stats`` are the step's new statistics."""
        updates, opt_state = optimizer.update(grads, self.opt_state, self.params)
        return self.replace(step=self.step + 1, params=optax.apply_updates(self.params, updates),
                            opt_state=opt_state, batch_stats=batch_stats)
