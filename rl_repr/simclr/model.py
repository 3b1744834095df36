"""SimCLR's network: encoder f (a ResNet returning the pooled h) and projection head g."""
from __future__ import annotations

import flax.linen as nn
import jax

from rl_repr.core.extras import require
from rl_repr.core.system import compute_dtype
from rl_repr.models import ProjectionHead, ResNet

ml_collections = require("ml_collections")


class SimCLRModel(nn.Module):
    """Encoder f followed by projection head g.

    ``__call__(x, train) -> (h, z, head_layers)``: h ``[N, feature_dim]``, z ``[N, output_dim]``
    and the outputs of every head layer (h first) for fine-tuning from a middle layer.
    """

    encoder: nn.Module
    head: nn.Module

    def __call__(self, x, train: bool = False):
        h = self.encoder(x, train=train)
        z, layers = self.head(h, train=train)
        return h, z, layers


def explicit_conv_gradients(config: ml_collections.ConfigDict) -> bool:
    """``model.explicit_conv_gradients``: 'auto' turns them on for representation caching on a
    CPU, the one place measured to need them (``benchmarks/large_batch.py``)."""
    choice = config.model.explicit_conv_gradients
    if choice == "auto":
        return bool(config.gradient_cache_chunks) and jax.default_backend() == "cpu"
    return choice == "on"


def build_encoder(config: ml_collections.ConfigDict, bn_axis_name: str | None) -> ResNet:
    """The ResNet of ``config.model`` without a classifier (returns h)."""
    m = config.model
    return ResNet(depth=m.depth, num_classes=None, width_multiplier=m.width_multiplier,
                  small_image_stem=m.small_image_stem, norm=m.norm, residual=m.residual,
                  zero_init_last_norm=m.zero_init_last_norm, dtype=compute_dtype(config),
                  bn_axis_name=bn_axis_name, num_groups=m.num_groups,
                  explicit_conv_gradients=explicit_conv_gradients(config))


def build_model(config: ml_collections.ConfigDict, bn_axis_name: str | None) -> SimCLRModel:
    """f and g as configured; ``bn_axis_name`` gives batch norm its cross-device axis."""
    head = ProjectionHead(num_layers=config.head.num_layers, hidden_dim=config.head.hidden_dim or None,
                          output_dim=config.head.output_dim, use_norm=config.head.norm != "none",
                          norm="batch" if config.head.norm == "none" else config.head.norm,
                          dtype=compute_dtype(config), bn_axis_name=bn_axis_name)
    return SimCLRModel(encoder=build_encoder(config, bn_axis_name), head=head)
