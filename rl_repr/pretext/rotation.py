"""Rotation prediction (Gidaris, Singh & Komodakis 2018, "Unsupervised Representation Learning
by Predicting Image Rotations", arXiv:1803.07728): turn an image by 0, 90, 180 or 270 degrees
and classify which (4-way). Recognising the turn needs the object's canonical orientation,
hence its shape; a multiple of 90 degrees moves no pixel off the grid and adds no
interpolation artefact a network could read instead.

The paper feeds all four rotations of every image in one batch (its best setting);
``all_four=False`` gives each image one rotation drawn from its key, four times cheaper per
image, the same task in expectation.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["NUM_ROTATIONS", "rotate", "rotation_batch"]

NUM_ROTATIONS = 4


def rotate(image: jax.Array, label: jax.Array) -> jax.Array:
    """``[H, H, C]`` image turned counter-clockwise by ``90 * label`` degrees (``jnp.rot90``)."""
    if image.ndim != 3 or image.shape[0] != image.shape[1]:
        raise ValueError(f"rotation: image of shape {image.shape}; pass square [H, H, C] images "
                         "(a 90-degree turn of a non-square image changes its shape).")
    return jax.lax.switch(label, [lambda x, k=k: jnp.rot90(x, k, axes=(0, 1)) for k in range(NUM_ROTATIONS)],
                          image)


def rotation_batch(keys: jax.Array, images: jax.Array, *, all_four: bool) -> tuple[jax.Array, jax.Array]:
    """The task's inputs and labels for ``images [N, H, H, C]`` and one key per image.

    ``all_four``: ``([4N, H, H, C], [4N])``, image ``n`` turned by ``k`` at row ``k N + n``;
    otherwise ``([N, H, H, C], [N])`` with label ``randint(key_n, 0, 4)``.
    """
    if all_four:
        labels = jnp.repeat(jnp.arange(NUM_ROTATIONS), images.shape[0])
        return jax.vmap(rotate)(jnp.tile(images, (NUM_ROTATIONS, 1, 1, 1)), labels), labels
    labels = jax.vmap(lambda k: jax.random.randint(k, (), 0, NUM_ROTATIONS))(keys)
    return jax.vmap(rotate)(images, labels), labels
