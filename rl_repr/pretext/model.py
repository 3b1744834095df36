"""The pretext network: one shared encoder f, one head per task (Doersch & Zisserman 2017).

``f`` is SimCLR's encoder (``rl_repr.simclr.model.build_encoder``: a ResNet returning the
pooled h), so the representation evaluated afterwards is the same kind of h in every method.
Each task's head reads f's output:

* rotation: an MLP on h -> 4 logits;
* relative position: f of both patches (one batch, shared weights: a "late-fusion" siamese
  network as in Doersch et al. 2015), the two h concatenated -> MLP -> 8 logits;
* jigsaw: f of the 9 tiles (Noroozi & Favaro's "context-free network"), the nine h
  concatenated in puzzle order -> MLP -> P logits;
* inpainting: h -> :class:`InpaintingDecoder` -> the whole image (Pathak et al. 2016's
  encoder-decoder; here the bottleneck is the pooled h itself).

The MLP heads are ``rl_repr.models.ProjectionHead`` without norm: dense + bias, ReLU, dense + bias.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from rl_repr.core.extras import require
from rl_repr.models import ProjectionHead
from rl_repr.pretext.patches import NEIGHBOUR_CELLS
from rl_repr.pretext.rotation import NUM_ROTATIONS
from rl_repr.simclr.model import build_encoder

ml_collections = require("ml_collections")

TASKS = ("rotation", "relative_position", "jigsaw", "inpainting")


class InpaintingDecoder(nn.Module):
    """``h [N, D] -> x_hat [N, H, W, C]``: a dense layer to an ``H/8 x W/8 x 4w`` map, then three
    stride-2 transposed convolutions (4w, 2w, w channels, ReLU) and a 3x3 convolution to ``C``
    channels (Pathak et al.'s up-convolutional decoder, scaled down)."""

    image_shape: tuple[int, int, int]
    width: int = 8

    @nn.compact
    def __call__(self, h: jax.Array) -> jax.Array:
        height, width, channels = self.image_shape
        if height % 8 or width % 8:
            raise ValueError(f"inpainting: images of {height}x{width} pixels; the decoder upsamples by 8, "
                             "so use image sides that are multiples of 8 (e.g. 'characters:size=32').")
        x = nn.relu(nn.Dense(height // 8 * width // 8 * 4 * self.width, name="dense")(h))
        x = x.reshape(h.shape[0], height // 8, width // 8, 4 * self.width)
        for i, features in enumerate((4 * self.width, 2 * self.width, self.width)):
            x = nn.relu(nn.ConvTranspose(features, (4, 4), strides=(2, 2), padding="SAME", name=f"up{i + 1}")(x))
        return nn.Conv(channels, (3, 3), padding="SAME", name="out")(x)


class PretextModel(nn.Module):
    """Shared encoder and the heads of ``tasks``.

    ``__call__(inputs, train) -> outputs``: ``inputs`` maps each task to its batch --
    ``rotation [N, H, W, C]``; ``relative_position (centre, neighbour)``, each ``[N, p, p, C]``;
    ``jigsaw [N, 9, t, t, C]``; ``inpainting [N, H, W, C]`` (masked images) -- and ``outputs``
    to its logits ``[N, classes]`` or reconstruction ``[N, H, W, C]``. ``encode(x, train)`` is h.
    """

    encoder: nn.Module
    tasks: tuple[str, ...]
    image_shape: tuple[int, int, int]
    hidden_dim: int = 256
    num_permutations: int = 100
    decoder_width: int = 8

    def setup(self):
        def classifier(classes):
            return ProjectionHead(num_layers=2, hidden_dim=self.hidden_dim, output_dim=classes, use_norm=False)
        if "rotation" in self.tasks:
            self.rotation_head = classifier(NUM_ROTATIONS)
        if "relative_position" in self.tasks:
            self.relative_position_head = classifier(len(NEIGHBOUR_CELLS))
        if "jigsaw" in self.tasks:
            self.jigsaw_head = classifier(self.num_permutations)
        if "inpainting" in self.tasks:
            self.decoder = InpaintingDecoder(self.image_shape, self.decoder_width)

    def encode(self, x: jax.Array, train: bool = False) -> jax.Array:
        return self.encoder(x, train=train)

    def __call__(self, inputs: dict, train: bool = False) -> dict[str, jax.Array]:
        outputs = {}
        if "rotation" in inputs:
            outputs["rotation"] = self.rotation_head(self.encode(inputs["rotation"], train))[0]
        if "relative_position" in inputs:
            centre, neighbour = inputs["relative_position"]
            h = self.encode(jnp.concatenate([centre, neighbour]), train)
            pair = jnp.concatenate([h[:centre.shape[0]], h[centre.shape[0]:]], axis=-1)
            outputs["relative_position"] = self.relative_position_head(pair)[0]
        if "jigsaw" in inputs:
            tiles = inputs["jigsaw"]
            h = self.encode(tiles.reshape(-1, *tiles.shape[2:]), train)
            outputs["jigsaw"] = self.jigsaw_head(h.reshape(tiles.shape[0], -1))[0]
        if "inpainting" in inputs:
            outputs["inpainting"] = self.decoder(self.encode(inputs["inpainting"], train))
        return outputs


def build_model(config: ml_collections.ConfigDict, image_shape: tuple[int, int, int],
                bn_axis_name: str | None) -> PretextModel:
    """The encoder of ``config.model`` and the heads of ``config.tasks`` for ``image_shape`` images."""
    return PretextModel(encoder=build_encoder(config, bn_axis_name), tasks=tuple(config.tasks),
                        image_shape=tuple(image_shape), hidden_dim=config.head_hidden_dim,
                        num_permutations=config.jigsaw.num_permutations,
                        decoder_width=config.inpainting.decoder_width)
