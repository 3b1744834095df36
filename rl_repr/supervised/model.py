"""The supervised trainer's classifier, chosen by ``config.model.kind`` (its norm built once).

* ``'cifar_resnet'``: ``rl_repr.models.CifarResNet`` (He et al. 2016 Section 4.2, 6n + 2 layers);
* ``'resnet'``: ``rl_repr.models.ResNet`` (18...152, torchvision's layout; a torchvision state
  dict can initialise it, ``model.torchvision_weights``);
* ``'mlp'``: ``rl_repr.models.MLP`` (tabular data, flattened images).
"""
from __future__ import annotations

import flax.linen as nn

from rl_repr.core.extras import require
from rl_repr.core.system import compute_dtype
from rl_repr.models import MLP, CifarResNet, ResNet

ml_collections = require("ml_collections")


def build_model(config: ml_collections.ConfigDict, num_classes: int, bn_axis_name: str | None) -> nn.Module:
    """The classifier of ``config.model`` with ``num_classes`` outputs; ``bn_axis_name`` gives batch
    norm its cross-device axis (None: the statistics of the batch the model sees)."""
    m, dtype = config.model, compute_dtype(config)
    if m.kind == "cifar_resnet":
        return CifarResNet(depth=m.depth, num_classes=num_classes, width_multiplier=m.width_multiplier,
                           residual=m.residual, shortcut=m.shortcut, norm=m.norm, num_groups=m.num_groups,
                           dtype=dtype, bn_axis_name=bn_axis_name)
    if m.kind == "resnet":
        return ResNet(depth=m.depth, num_classes=num_classes, width_multiplier=m.width_multiplier,
                      small_image_stem=m.small_image_stem, norm=m.norm, residual=m.residual,
                      num_groups=m.num_groups, dtype=dtype, bn_axis_name=bn_axis_name)
    return MLP(hidden=tuple(m.hidden), num_classes=num_classes, activation=m.activation, norm=m.norm,
               dtype=dtype, bn_axis_name=bn_axis_name)
