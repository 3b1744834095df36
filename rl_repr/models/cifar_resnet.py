"""The CIFAR-10 ResNets of He et al. 2016 (arXiv:1512.03385, Section 4.2), plain or residual.

``6n + 2`` weighted layers: a 3x3 conv with 16 filters, then three stages of ``n`` basic
blocks (two 3x3 convs each) on feature maps of 32, 16 and 8 pixels (for 32x32 inputs) with
16, 32 and 64 filters, the first conv of stages 2 and 3 striding by 2; global average
pooling and a dense classifier. ``n = 3, 5, 7, 9, 18`` give ResNet-20/32/44/56/110 with
0.27M / 0.46M / 0.66M / 0.85M / 1.7M parameters (the paper's Table 6; 269,722 / 464,154 /
658,586 / 853,018 / 1,727,962 counted with batch norm and 10 classes, tested).

Shortcuts (Section 3.3): option ``'A'`` (the paper's choice on CIFAR) is the identity, and
where a stage halves the resolution and doubles the width it takes every second pixel and
pads the new channels with zeros: no parameters. Option ``'B'`` projects with a strided 1x1
conv and a norm there instead. ``residual=False`` is the *plain* network of Figure 6 (same
layers, no shortcuts): the degradation experiment, where plain-56 trains to a higher error
than plain-20 and residual-56 to a lower one than residual-20.

``norm`` is any of :data:`rl_repr.models.NORM_KINDS` or ``'none'`` (convs then get a bias),
for the normalisation-vs-batch-size study (Wu & He 2018, Figure 5). Layers are initialised as
in ``rl_repr.models.resnet`` (He-normal, fan-out). Inputs may have any number of channels and
any size divisible by 4.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from rl_repr.models.norm_choice import NORM_KINDS, norm_factory
from rl_repr.models.precision import parameter_dtype
from rl_repr.models.resnet import conv_kernel_init, dense_kernel_init, scaled_width

__all__ = ["CifarResNet", "CIFAR_NORM_KINDS", "CIFAR_SHORTCUTS", "CIFAR_RESNET_DEPTHS", "cifar_blocks_per_stage"]

CIFAR_NORM_KINDS = NORM_KINDS + ("none",)
CIFAR_SHORTCUTS = ("A", "B")
CIFAR_RESNET_DEPTHS = (20, 32, 44, 56, 110)  # the paper's; any 6n + 2 works
_STAGE_WIDTHS = (16, 32, 64)


def cifar_blocks_per_stage(depth: int) -> int:
    """``n`` of a ``6n + 2``-layer network; a depth of another form is refused in one sentence."""
    if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ValueError(f"CifarResNet: depth={depth!r} is not 6n + 2 for an n >= 1; use 8, 14, 20, 32, 44, 56 or 110.")
    return (depth - 2) // 6


class _Identity(nn.Module):
    """The 'none' norm: passes activations through (keeps the norm's call signature)."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return x


def _no_norm(**_: Any) -> nn.Module:
    return _Identity()


class CifarBlock(nn.Module):
    """``relu(norm(conv3x3(relu(norm(conv3x3(x))))) + shortcut(x))``; no shortcut when plain.

    Attributes:
      features: output channels.
      strides: stride of the first conv (2 at the first block of stages 2 and 3).
      conv, norm: layer constructors from :class:`CifarResNet`.
      residual: False drops the shortcut (plain network).
      shortcut: 'A' (identity, zero-padded channels) or 'B' (1x1 projection) where shapes change.
    """

    features: int
    conv: Callable[..., nn.Module]
    norm: Callable[..., nn.Module]
    strides: int = 1
    residual: bool = True
    shortcut: str = "A"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """``x: [N, H, W, C_in] -> [N, H / strides, W / strides, features]``."""
        y = self.conv(self.features, (3, 3), strides=self.strides, padding=((1, 1), (1, 1)), name="conv1")(x)
        y = nn.relu(self.norm(name="norm1")(y))
        y = self.conv(self.features, (3, 3), padding=((1, 1), (1, 1)), name="conv2")(y)
        y = self.norm(name="norm2")(y)
        if not self.residual:
            return nn.relu(y)
        if x.shape[-1] != self.features or self.strides != 1:
            if self.shortcut == "A":
                x = x[:, ::self.strides, ::self.strides, :]
                x = jnp.pad(x, ((0, 0), (0, 0), (0, 0), (0, self.features - x.shape[-1])))
            else:
                x = self.conv(self.features, (1, 1), strides=self.strides, padding="VALID", name="downsample_conv")(x)
                x = self.norm(name="downsample_norm")(x)
        return nn.relu(y + x)


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for small images (He et al. 2016, Section 4.2).

    Attributes:
      depth: 6n + 2 (20, 32, 44, 56, 110 in the paper; 8 and 14 for quick studies).
      num_classes: size of the classifier; None returns the pooled ``h: [N, 64 * width_multiplier]``.
      width_multiplier: scales the 16/32/64 filters (1.0 = the paper).
      residual: False builds the plain network.
      shortcut: 'A' or 'B' (see the module docstring).
      norm: 'batch', 'group', 'layer', 'instance' or 'none'.
      num_groups: G for group norm (clipped to a divisor of narrow layers' width).
      dtype: compute dtype (parameters and outputs float32).
      bn_momentum: batch norm's weight of the old running value.
      bn_axis_name: mapped axis for cross-device batch norm under shard_map/pmap.
    """

    depth: int = 20
    num_classes: int | None = 10
    width_multiplier: float = 1.0
    residual: bool = True
    shortcut: str = "A"
    norm: str = "batch"
    num_groups: int = 8
    dtype: Any = jnp.float32
    bn_momentum: float = 0.9
    bn_axis_name: str | None = None

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        """Images ``[N, H, W, C]`` -> logits ``[N, num_classes]`` (or ``h``), float32.

        ``train=True`` normalises batch norm with the batch's statistics (call ``apply`` with
        ``mutable=['batch_stats']`` to get the new running statistics).
        """
        if x.ndim != 4:
            raise ValueError(f"CifarResNet: x has shape {x.shape}; pass images [N, H, W, C] (NHWC).")
        if self.norm not in CIFAR_NORM_KINDS:
            raise ValueError(f"CifarResNet: norm={self.norm!r} is not one of {CIFAR_NORM_KINDS}.")
        if self.shortcut not in CIFAR_SHORTCUTS:
            raise ValueError(f"CifarResNet: shortcut={self.shortcut!r} is not one of {CIFAR_SHORTCUTS}.")
        blocks = cifar_blocks_per_stage(self.depth)
        param_dtype = parameter_dtype(self.dtype, "CifarResNet")
        conv = functools.partial(nn.Conv, use_bias=self.norm == "none", dtype=self.dtype, param_dtype=param_dtype,
                                 kernel_init=conv_kernel_init)
        norm = _no_norm if self.norm == "none" else norm_factory(
            self.norm, train=train, dtype=self.dtype, param_dtype=param_dtype, bn_momentum=self.bn_momentum,
            bn_axis_name=self.bn_axis_name, num_groups=self.num_groups)
        widths = [scaled_width(w, self.width_multiplier) for w in _STAGE_WIDTHS]

        x = conv(widths[0], (3, 3), padding=((1, 1), (1, 1)), name="stem_conv")(x.astype(self.dtype))
        x = nn.relu(norm(name="stem_norm")(x))
        for stage, features in enumerate(widths):
            for index in range(blocks):
                x = CifarBlock(features=features, conv=conv, norm=norm, strides=2 if stage and not index else 1,
                               residual=self.residual, shortcut=self.shortcut,
                               name=f"stage{stage + 1}_block{index + 1}")(x)
        h = jnp.mean(x.astype(param_dtype), axis=(1, 2))  # global average pooling, in float32
        classifier = nn.Dense(self.num_classes or 1, dtype=self.dtype, param_dtype=param_dtype,
                              kernel_init=dense_kernel_init, name="classifier")
        return h if self.num_classes is None else classifier(h).astype(param_dtype)
