"""Inpainting (Pathak et al. 2016, "Context Encoders: Feature Learning by Inpainting",
arXiv:1604.07379): hide a region of the image and reconstruct it with an encoder-decoder.

The three masks of the paper's Section 3.3, each covering about a quarter of the image:

* ``central``: the centred square of ``fraction`` of the area (theirs: 1/4);
* ``random_block``: ``num_blocks`` squares of ``fraction / num_blocks`` of the area each, at
  uniform positions, possibly overlapping (their "number of smaller possibly overlapping
  masks, covering up to 1/4 of the image");
* ``random_region``: a region of arbitrary shape. The paper takes object outlines from
  PASCAL VOC; offline, the region here is the top ``fraction`` of a smooth random field --
  Gaussian noise on a 4x4 grid, upsampled bilinearly to the image -- so it covers exactly
  ``round(fraction H W)`` pixels in one to a few blobs of random outline.

The masked pixels are replaced by ``fill`` (the network sees where the hole is; the paper
fills with the mean pixel value) and the loss is the squared error on the masked pixels only
(:func:`masked_squared_error`; the paper's L2 reconstruction loss, without its adversarial term).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["MASK_KINDS", "central_mask", "random_block_mask", "random_region_mask", "mask_for",
           "masked_squared_error"]

MASK_KINDS = ("central", "random_block", "random_region")
_FIELD_GRID = 4  # the random region's noise grid per side (a few blobs per image)


def _square_side(side: int, area_fraction: float) -> int:
    return max(1, int(round(side * area_fraction ** 0.5)))


def central_mask(side: int, fraction: float) -> jax.Array:
    """``[side, side]`` bool: the centred square of about ``fraction`` of the area."""
    size = _square_side(side, fraction)
    start = (side - size) // 2
    inside = (jnp.arange(side) >= start) & (jnp.arange(side) < start + size)
    return inside[:, None] & inside[None, :]


def random_block_mask(key: jax.Array, side: int, fraction: float, num_blocks: int) -> jax.Array:
    """``[side, side]`` bool: the union of ``num_blocks`` squares of ``fraction / num_blocks`` of
    the area each, every corner uniform over the positions inside the image."""
    size = _square_side(side, fraction / num_blocks)
    corners = jax.random.randint(key, (num_blocks, 2), 0, side - size + 1)
    grid = jnp.arange(side)

    def block(corner):
        rows = (grid >= corner[0]) & (grid < corner[0] + size)
        cols = (grid >= corner[1]) & (grid < corner[1] + size)
        return rows[:, None] & cols[None, :]

    return jnp.any(jax.vmap(block)(corners), axis=0)


def random_region_mask(key: jax.Array, side: int, fraction: float) -> jax.Array:
    """``[side, side]`` bool: the ``round(fraction side^2)`` pixels where a smooth random field
    (4x4 Gaussian noise, bilinearly upsampled) is largest."""
    field = jax.image.resize(jax.random.normal(key, (_FIELD_GRID, _FIELD_GRID)), (side, side), "bilinear")
    count = max(1, int(round(fraction * side * side)))
    largest = jax.lax.top_k(field.reshape(-1), count)[1]  # exactly `count` pixels, ties or not
    return jnp.zeros(side * side, bool).at[largest].set(True).reshape(side, side)


def mask_for(kind: str, key: jax.Array, side: int, fraction: float, num_blocks: int) -> jax.Array:
    """The ``[side, side]`` bool mask of ``kind`` (one of :data:`MASK_KINDS`) for one image."""
    if kind == "central":
        return central_mask(side, fraction)
    if kind == "random_block":
        return random_block_mask(key, side, fraction, num_blocks)
    if kind == "random_region":
        return random_region_mask(key, side, fraction)
    raise ValueError(f"inpainting mask {kind!r} is not one of {MASK_KINDS}.")


def masked_squared_error(reconstruction: jax.Array, target: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(sum_{n,p in mask} ||x_hat_np - x_np||^2, C * #mask)``: the loss's numerator and denominator.

    Shapes: reconstruction and target ``[N, H, W, C]``, mask ``[N, H, W]``. The mean squared
    error over the masked pixels is their ratio; returned apart so a per-device program can
    divide by the denominator summed over every device.
    """
    weight = mask.astype(reconstruction.dtype)[..., None]
    numerator = jnp.sum(weight * (reconstruction - target) ** 2)
    return numerator, jnp.sum(weight) * reconstruction.shape[-1]
