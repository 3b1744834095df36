"""A multilayer perceptron for tabular data and toy studies: any activation, an optional norm.

Each hidden layer is an :class:`MLPBlock`, ``a = activation(norm(W x + b))`` (a norm brings
its own shift, so the dense layer then has no bias), and the classifier is a dense layer on
the last block. Blocks are submodules named ``block1``, ``block2``, ... so that one can be
trained on its own and dropped in (greedy layer-wise pretraining,
``rl_repr.supervised.greedy``). Images are flattened first.

Initialisation: He-normal (fan-in, variance 2/fan_in) for ReLU-like activations, LeCun-normal
(variance 1/fan_in) for sigmoid and tanh, as each activation's variance analysis prescribes.
"""
from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from rl_repr.models.norm_choice import norm_factory
from rl_repr.models.precision import parameter_dtype

__all__ = ["MLP", "MLPBlock", "ACTIVATIONS", "MLP_NORMS"]

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": nn.relu, "gelu": nn.gelu, "tanh": jnp.tanh, "sigmoid": nn.sigmoid}
MLP_NORMS = ("none", "batch", "layer")


def _kernel_init(activation: str):
    scale = 2.0 if activation in ("relu", "gelu") else 1.0
    return nn.initializers.variance_scaling(scale, "fan_in", "truncated_normal")


class _Layers(nn.Module):
    """What every layer of an MLP shares (documented on :class:`MLP`)."""

    activation: str = "relu"
    norm: str = "none"
    dtype: Any = jnp.float32
    bn_momentum: float = 0.9
    bn_axis_name: str | None = None


class MLPBlock(_Layers):
    """``activation(norm(dense(x)))``: one hidden layer of :class:`MLP`.

    Attributes:
      features: the layer's width.
      activation, norm, dtype, bn_momentum, bn_axis_name: as for :class:`MLP`.
    """

    features: int = 256

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        """``x: [N, D] -> [N, features]``."""
        param_dtype = parameter_dtype(self.dtype, "MLPBlock")
        x = nn.Dense(self.features, use_bias=self.norm == "none", dtype=self.dtype, param_dtype=param_dtype,
                     kernel_init=_kernel_init(self.activation), name="dense")(x)
        if self.norm != "none":
            x = norm_factory(self.norm, train=train, dtype=self.dtype, param_dtype=param_dtype,
                             bn_momentum=self.bn_momentum, bn_axis_name=self.bn_axis_name)(name="norm")(x)
        return ACTIVATIONS[self.activation](x)


class MLP(_Layers):
    """Hidden blocks of widths ``hidden`` and a dense classifier.

    Attributes:
      hidden: widths of the hidden layers (``()`` is a linear classifier).
      num_classes: classifier size; None returns the last hidden layer's output.
      activation: a key of :data:`ACTIVATIONS`.
      norm: 'none', 'batch' or 'layer' after every hidden dense layer.
      dtype: compute dtype (parameters and outputs float32).
      bn_momentum: batch norm's weight of the old running value.
      bn_axis_name: mapped axis for cross-device batch norm under shard_map/pmap.
    """

    hidden: tuple[int, ...] = (256, 256)
    num_classes: int | None = 10

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        """``x: [N, ...]`` (flattened) -> logits ``[N, num_classes]``, float32."""
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"MLP: activation={self.activation!r} is not one of {tuple(ACTIVATIONS)}.")
        if self.norm not in MLP_NORMS:
            raise ValueError(f"MLP: norm={self.norm!r} is not one of {MLP_NORMS}.")
        param_dtype = parameter_dtype(self.dtype, "MLP")
        x = x.reshape(x.shape[0], -1).astype(self.dtype)
        for i, width in enumerate(self.hidden):
            x = MLPBlock(activation=self.activation, norm=self.norm, dtype=self.dtype, bn_momentum=self.bn_momentum,
                         bn_axis_name=self.bn_axis_name, features=width, name=f"block{i + 1}")(x, train=train)
        if self.num_classes is None:
            return x.astype(param_dtype)
        logits = nn.Dense(self.num_classes, dtype=self.dtype, param_dtype=param_dtype, name="classifier")(x)
        return logits.astype(param_dtype)
