"""ResNet-18/34/50/101/152 (He et al. 2016, arXiv:1512.03385) as Flax Linen modules.

The layout is torchvision's ResNet v1.5, so that with a 1000-way classifier the
parameter counts equal torchvision's exactly (11,689,512 / 21,797,672 /
25,557,032 / 44,549,160 / 60,192,808): convolutions without bias, each followed
by a norm with scale and bias; a 1x1 conv + norm projection shortcut wherever
the shape changes; in bottleneck blocks the stride sits on the 3x3 conv (v1.5);
a 7x7/2 stem conv and 3x3/2 max-pool; global average pooling; a dense
classifier with bias. Padding is explicit and symmetric as in torchvision
(not flax's 'SAME', which pads stride-2 convs asymmetrically), so ported
torchvision weights give the same features.

Options for representation learning: ``width_multiplier`` scales every layer's
channels (SimCLR's ResNet-50 2x/4x; fractional widths for tiny CPU runs),
``small_image_stem`` (3x3/1 conv, no max-pool, for 32x32 CIFAR or 8x8 digits),
``norm`` (batch/group/layer/instance), ``residual=False`` for the plain network
of the degradation experiment (Figure 1 of the paper), ``num_classes=None`` to
return the pooled representation ``h``, ``zero_init_last_norm`` (Goyal et al.
2017: every residual block starts as the identity), and a compute ``dtype``
(bf16 compute with float32 parameters).
"""
from __future__ import annotations

import functools
from typing import Any, Callable, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from rl_repr.models.explicit_gradient_conv import explicit_gradient_conv
from rl_repr.models.norm_choice import NORM_KINDS, norm_factory
from rl_repr.models.precision import parameter_dtype

__all__ = ["ResNet", "BasicBlock", "BottleneckBlock", "STAGE_SIZES", "RESNET_DEPTHS", "resnet_feature_dim",
           "scaled_width"]

ModuleDef = Callable[..., nn.Module]

# Residual blocks per stage (conv2_x .. conv5_x in Table 1 of the paper).
STAGE_SIZES: dict[int, tuple[int, int, int, int]] = {
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
}
RESNET_DEPTHS = tuple(STAGE_SIZES)

# torchvision's init: He-normal with fan_out for convs (norms start at scale 1,
# bias 0); its nn.Linear default U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for the classifier.
conv_kernel_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")
dense_kernel_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def _padding(kernel_size: int) -> tuple[tuple[int, int], tuple[int, int]]:
    half = kernel_size // 2
    return ((half, half), (half, half))


class _Block(nn.Module):
    """The fields every residual block has (documented on :class:`BasicBlock`)."""

    features: int
    conv: ModuleDef
    norm: ModuleDef
    strides: int = 1
    residual: bool = True
    zero_init_last_norm: bool = False


class BasicBlock(_Block):
    """Two 3x3 convs (ResNet-18/34): ``relu(norm(conv(relu(norm(conv(x))))) + shortcut(x))``.

    Attributes:
      features: output channels.
      strides: stride of the first 3x3 conv (2 at the first block of a stage).
      conv: conv constructor (no bias, compute dtype), from :class:`ResNet`.
      norm: norm constructor, from :func:`rl_repr.models.norm_choice.norm_factory`.
      residual: False drops the shortcut entirely (plain network).
      zero_init_last_norm: start the last norm's scale at 0.
    """

    expansion: ClassVar[int] = 1

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """``x: [N, H, W, C_in] -> [N, H / strides, W / strides, features]``."""
        y = self.conv(self.features, (3, 3), strides=self.strides, padding=_padding(3),
                      name="conv1")(x)
        y = nn.relu(self.norm(name="norm1")(y))
        y = self.conv(self.features, (3, 3), padding=_padding(3), name="conv2")(y)
        y = self.norm(name="norm2", **_last_norm_init(self.zero_init_last_norm))(y)
        return nn.relu(_add_shortcut(self, x, y))


class BottleneckBlock(_Block):
    """1x1 reduce, 3x3, 1x1 expand (ResNet-50/101/152), stride on the 3x3 (v1.5).

    ``relu(norm(conv1x1(relu(norm(conv3x3(relu(norm(conv1x1(x))))))) + shortcut(x))``
    with ``4 * features`` output channels. Attributes as in :class:`BasicBlock`.
    """

    expansion: ClassVar[int] = 4

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """``x: [N, H, W, C_in] -> [N, H / strides, W / strides, 4 * features]``."""
        y = self.conv(self.features, (1, 1), padding="VALID", name="conv1")(x)
        y = nn.relu(self.norm(name="norm1")(y))
        y = self.conv(self.features, (3, 3), strides=self.strides, padding=_padding(3),
                      name="conv2")(y)
        y = nn.relu(self.norm(name="norm2")(y))
        y = self.conv(self.features * self.expansion, (1, 1), padding="VALID", name="conv3")(y)
        y = self.norm(name="norm3", **_last_norm_init(self.zero_init_last_norm))(y)
        return nn.relu(_add_shortcut(self, x, y))


def _last_norm_init(zero: bool) -> dict[str, Any]:
    return {"scale_init": nn.initializers.zeros} if zero else {}


def _add_shortcut(block: BasicBlock | BottleneckBlock, x: jax.Array, y: jax.Array) -> jax.Array:
    """``y + x``, projecting ``x`` with a strided 1x1 conv + norm when shapes differ."""
    if not block.residual:
        return y
    out_features = block.features * block.expansion
    if x.shape[-1] != out_features or block.strides != 1:
        x = block.conv(out_features, (1, 1), strides=block.strides, padding="VALID",
                       name="downsample_conv")(x)
        x = block.norm(name="downsample_norm")(x)
    return y + x


def scaled_width(channels: int, width_multiplier: float) -> int:
    """``round(channels * width_multiplier)``, at least 1: the width of a scaled layer."""
    if width_multiplier <= 0:
        raise ValueError(f"width_multiplier={width_multiplier} must be positive (1.0 = standard).")
    return max(1, int(round(channels * width_multiplier)))


def _block_class(depth: int) -> type[BasicBlock] | type[BottleneckBlock]:
    if depth not in STAGE_SIZES:
        raise ValueError(f"depth={depth} is not a ResNet depth; use one of {sorted(STAGE_SIZES)}.")
    return BasicBlock if depth < 50 else BottleneckBlock


def resnet_feature_dim(depth: int, width_multiplier: float = 1.0) -> int:
    """Width of the pooled representation h: 512*w for ResNet-18/34, 2048*w for 50+."""
    return scaled_width(512, width_multiplier) * _block_class(depth).expansion


class ResNet(nn.Module):
    """ResNet encoder and optional classifier.

    Attributes:
      depth: 18, 34 (basic blocks) or 50, 101, 152 (bottleneck blocks).
      num_classes: size of the dense classifier; None returns the pooled
        representation ``h: [N, resnet_feature_dim(depth, width_multiplier)]``.
      width_multiplier: scales the channels of every conv (64 -> 64*w ...).
      small_image_stem: 3x3 stride-1 stem conv without max-pool (32x32 inputs);
        otherwise the 7x7 stride-2 conv and 3x3 stride-2 max-pool (224x224).
      norm: 'batch', 'group', 'layer' or 'instance'.
      residual: False builds the plain network (no shortcuts, no projections).
      zero_init_last_norm: zero scale in each block's last norm.
      dtype: compute dtype; parameters, norm statistics and outputs stay float32 (float64 for a
        float64 model, which needs ``jax_enable_x64``; ``rl_repr.models.precision``).
      bn_momentum: batch norm's weight of the old running value.
      bn_axis_name: mapped axis name for cross-device batch norm under
        shard_map/pmap (None under jit, where statistics are global anyway).
      num_groups: G for group norm (clipped to a divisor of narrow layers' width).
      explicit_conv_gradients: differentiate the convolutions through
        :func:`~rl_repr.models.explicit_gradient_conv.explicit_gradient_conv` (same
        values; much faster on XLA:CPU inside ``jax.lax.scan``, e.g. representation caching).
    """

    depth: int = 50
    num_classes: int | None = None
    width_multiplier: float = 1.0
    small_image_stem: bool = False
    norm: str = "batch"
    residual: bool = True
    zero_init_last_norm: bool = False
    dtype: Any = jnp.float32
    bn_momentum: float = 0.9
    bn_axis_name: str | None = None
    num_groups: int = 32
    explicit_conv_gradients: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        """Images ``[N, H, W, C]`` -> logits ``[N, num_classes]`` or ``h [N, feature_dim]``.

        ``train=False`` (the default) is inference: batch norm uses its running statistics.
        The output is float32 whatever the (lower) compute dtype, so losses and softmax
        are evaluated in full precision. With batch norm and ``train=True`` call
        ``apply(..., mutable=['batch_stats'])`` to receive the new running
        statistics; with ``train=False`` they are read only.
        """
        if x.ndim != 4:
            raise ValueError(f"ResNet: x has shape {x.shape}; pass images [N, H, W, C] (NHWC).")
        if self.norm not in NORM_KINDS:
            raise ValueError(f"ResNet: norm={self.norm!r} is not one of {NORM_KINDS}.")
        block_class = _block_class(self.depth)
        param_dtype = parameter_dtype(self.dtype, "ResNet")
        conv = functools.partial(nn.Conv, use_bias=False, dtype=self.dtype,
                                 param_dtype=param_dtype, kernel_init=conv_kernel_init,
                                 conv_general_dilated=explicit_gradient_conv if self.explicit_conv_gradients else None)
        norm = norm_factory(self.norm, train=train, dtype=self.dtype, param_dtype=param_dtype,
                            bn_momentum=self.bn_momentum, bn_axis_name=self.bn_axis_name,
                            num_groups=self.num_groups)
        width = functools.partial(scaled_width, width_multiplier=self.width_multiplier)

        # Stem.
        x = x.astype(self.dtype)
        if self.small_image_stem:
            x = conv(width(64), (3, 3), padding=_padding(3), name="stem_conv")(x)
            x = nn.relu(norm(name="stem_norm")(x))
        else:
            x = conv(width(64), (7, 7), strides=2, padding=_padding(7), name="stem_conv")(x)
            x = nn.relu(norm(name="stem_norm")(x))
            x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=_padding(3))

        # Four stages; the first block of stages 2-4 halves the resolution.
        for stage, num_blocks in enumerate(STAGE_SIZES[self.depth]):
            for index in range(num_blocks):
                x = block_class(
                    features=width(64 * 2**stage),
                    strides=2 if stage > 0 and index == 0 else 1,
                    conv=conv, norm=norm, residual=self.residual,
                    zero_init_last_norm=self.zero_init_last_norm,
                    name=f"stage{stage + 1}_block{index + 1}",
                )(x)

        # Global average pooling in float32 (a bf16 sum over H*W loses precision).
        h = jnp.mean(x.astype(param_dtype), axis=(1, 2))
        if self.num_classes is None:
            return h
        logits = nn.Dense(self.num_classes, dtype=self.dtype, param_dtype=param_dtype,
                          kernel_init=dense_kernel_init, name="classifier")(h)
        return logits.astype(param_dtype)
