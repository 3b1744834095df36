"""The metric-learning network: a trunk (a small conv net or a ResNet), then a dense layer to
``embedding_dim`` and L2 normalisation (FaceNet's embedding on the unit sphere)."""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from rl_repr.core.extras import require
from rl_repr.core.system import compute_dtype
from rl_repr.models import ResNet, norm_factory

ml_collections = require("ml_collections")


class ConvTrunk(nn.Module):
    """A small conv net: 3x3 conv -> norm -> ReLU per width (stride 2 after the first), then
    global average pooling ``[N, H, W, C] -> [N, widths[-1]]``, or with ``global_pool=False``
    flattening, which keeps where each feature is (``[N, H' * W' * widths[-1]]``), float32."""

    widths: Sequence[int] = (32, 64, 128)
    global_pool: bool = True
    norm: str = "batch"
    dtype: Any = jnp.float32
    bn_axis_name: str | None = None
    num_groups: int = 8

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        norm = norm_factory(self.norm, train=train, dtype=self.dtype, bn_axis_name=self.bn_axis_name,
                            num_groups=self.num_groups)
        x = x.astype(self.dtype)
        for i, width in enumerate(self.widths):
            x = nn.Conv(width, (3, 3), strides=1 if i == 0 else 2, padding=((1, 1), (1, 1)), use_bias=False,
                        dtype=self.dtype, param_dtype=jnp.float32, name=f"conv{i + 1}")(x)
            x = nn.relu(norm(name=f"norm{i + 1}")(x))
        x = x.astype(jnp.float32)
        return jnp.mean(x, axis=(1, 2)) if self.global_pool else x.reshape(x.shape[0], -1)


class EmbeddingNet(nn.Module):
    """``f(x) = W trunk(x) / ||W trunk(x)||``: images ``[N, H, W, C]`` -> unit vectors
    ``[N, embedding_dim]`` float32 (FaceNet's L2-normalised embedding)."""

    trunk: nn.Module
    embedding_dim: int

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        if x.ndim != 4:
            raise ValueError(f"EmbeddingNet: x has shape {x.shape}; pass images [N, H, W, C].")
        z = nn.Dense(self.embedding_dim, name="embedding")(self.trunk(x, train=train))
        # rsqrt(max(|z|^2, eps)): finite value and gradient even for a zero vector.
        return z * jax.lax.rsqrt(jnp.maximum(jnp.sum(z * z, axis=-1, keepdims=True), 1e-12))


def build_model(config: ml_collections.ConfigDict, bn_axis_name: str | None) -> EmbeddingNet:
    """The embedding network of ``config.model``; ``bn_axis_name`` gives batch norm its axis."""
    dtype = compute_dtype(config)
    m = config.model
    if m.architecture == "resnet":
        trunk = ResNet(depth=m.depth, num_classes=None, width_multiplier=m.width_multiplier,
                       small_image_stem=m.small_image_stem, norm=m.norm, dtype=dtype,
                       bn_axis_name=bn_axis_name, num_groups=m.num_groups)
    else:
        trunk = ConvTrunk(widths=tuple(m.conv_widths), global_pool=m.global_pool, norm=m.norm, dtype=dtype,
                          bn_axis_name=bn_axis_name, num_groups=m.num_groups)
    return EmbeddingNet(trunk=trunk, embedding_dim=m.embedding_dim)
