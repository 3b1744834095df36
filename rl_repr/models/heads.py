"""Projection heads g(h) for contrastive learning (SimCLR v1/v2).

SimCLR (Chen et al. 2020, arXiv:2002.05709, Section 4.2 and Figure 8) compares
no head (``z = h``), a linear head and a 2-layer MLP; SimCLR v2 (Chen et al.
2020, arXiv:2006.10029) uses a 3-layer MLP and fine-tunes from its middle
layer. The layers follow the SimCLR reference code: each dense layer is
followed by batch norm (the dense then has no bias, the norm supplies it);
ReLU after every layer but the last; the last norm has a scale but no bias.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from rl_repr.models.norm_choice import norm_factory
from rl_repr.models.precision import parameter_dtype

__all__ = ["ProjectionHead", "HEAD_NORMS"]

# A head's norm after each dense layer ('none': dense layers with biases and no norm).
HEAD_NORMS = ("batch", "layer", "none")


class ProjectionHead(nn.Module):
    """``z = g(h)``: identity, linear, or a k-layer MLP, returning every layer's output.

    For ``num_layers = k >= 1`` and ``a_0 = h``::

        a_i = relu(norm(W_i a_{i-1}))   for i < k      (width hidden_dim)
        z   = a_k = norm(W_k a_{k-1})                  (width output_dim)

    ``num_layers = 0`` is no head (``z = h``); ``1`` is linear; ``2`` is SimCLR v1;
    ``3`` is SimCLR v2. Without norm each dense layer has its own bias.

    Attributes:
      num_layers: number of dense layers k (0 = identity).
      hidden_dim: width of the hidden layers; default the input width.
      output_dim: width of z (128 in SimCLR).
      use_norm: batch norm (or ``norm``) after each dense layer.
      norm: 'batch', 'layer' or 'group' (see ``norm_factory``).
      dtype: compute dtype (params and outputs float32; float64 for a float64 head).
      bn_momentum: batch norm's weight of the old running value.
      bn_axis_name: mapped axis for global batch norm under shard_map/pmap.
      num_groups: G when ``norm='group'``.
    """

    num_layers: int = 2
    hidden_dim: int | None = None
    output_dim: int = 128
    use_norm: bool = True
    norm: str = "batch"
    dtype: Any = jnp.float32
    bn_momentum: float = 0.9
    bn_axis_name: str | None = None
    num_groups: int = 32

    @nn.compact
    def __call__(self, h: jax.Array, train: bool = False) -> tuple[jax.Array, tuple[jax.Array, ...]]:
        """Representation ``h: [N, D]`` -> ``(z, (h, a_1, ..., a_k))``, all float32.

        ``z`` is ``[N, output_dim]`` (``[N, D]`` when ``num_layers == 0``); the
        tuple holds h and each layer's output (after ReLU for hidden layers), so
        fine-tuning can start from ``intermediates[j]``.
        """
        if h.ndim != 2:
            raise ValueError(f"ProjectionHead: h has shape {h.shape}; pass pooled features [N, D].")
        if self.num_layers < 0:
            raise ValueError(f"ProjectionHead: num_layers={self.num_layers} must be >= 0.")
        param_dtype = parameter_dtype(self.dtype, "ProjectionHead")
        norm = norm_factory(self.norm, train=train, dtype=self.dtype, param_dtype=param_dtype,
                            bn_momentum=self.bn_momentum, bn_axis_name=self.bn_axis_name,
                            num_groups=self.num_groups)
        hidden_dim = self.hidden_dim or h.shape[-1]
        outputs = [h.astype(param_dtype)]
        a = h.astype(self.dtype)
        for i in range(self.num_layers):
            last = i == self.num_layers - 1
            a = nn.Dense(self.output_dim if last else hidden_dim, use_bias=not self.use_norm,
                         dtype=self.dtype, param_dtype=param_dtype, name=f"dense{i + 1}")(a)
            if self.use_norm:
                a = norm(use_bias=not last, name=f"norm{i + 1}")(a)
            if not last:
                a = nn.relu(a)
            outputs.append(a.astype(param_dtype))
        return outputs[-1], tuple(outputs)
