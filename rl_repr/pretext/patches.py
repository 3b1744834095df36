"""Patch pretext tasks: the relative position of two patches, and the jigsaw puzzle.

Both cut patches out of a 3x3 grid laid over the image, with space between the patches so
that a network cannot solve the task by continuing a stroke or a texture across an edge
(the "trivial shortcuts" both papers guard against):

* **Relative position** (Doersch, Gupta & Efros 2015, "Unsupervised Visual Representation
  Learning by Context Prediction", arXiv:1505.05192): a ``p x p`` centre patch and one of its
  8 neighbours; the label is which neighbour (row-major, the centre skipped: 0 = top-left,
  3 = left, 4 = right, 7 = bottom-right). Neighbouring patches are ``gap`` pixels apart and
  each is moved by its own jitter ``U{-j..j}`` per axis (their 96-pixel patches: gap 48,
  jitter up to 7), so the nearest edges are at least ``gap - 2 j`` pixels apart.
* **Jigsaw** (Noroozi & Favaro 2016, arXiv:1603.09246): the image's central square cut into
  3x3 cells of ``c = side // 3`` pixels; from each cell a ``t x t`` tile at a random offset
  (their 75-pixel cells, 64-pixel tiles); the 9 tiles shuffled by one permutation of a fixed
  set (:mod:`rl_repr.pretext.permutations`), whose index is the label. Tile ``i`` of the
  puzzle is tile ``perm[label, i]`` of the image.

Each function takes one image and one key (vmapped over a batch, a key per global example
index: ``rl_repr.data.images.augment.example_keys``), so every device count draws the same
puzzles.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["NEIGHBOUR_CELLS", "relative_position_layout", "relative_position_pair", "relative_position_extent",
           "jigsaw_layout", "jigsaw_tiles"]

# (row, column) of each relative-position label in the 3x3 grid (the centre is (1, 1)).
NEIGHBOUR_CELLS = ((0, 0), (0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1), (2, 2))


def relative_position_extent(patch_size: int, gap: int, jitter: int) -> int:
    """Pixels the 3x3 grid of jittered patches needs per side: ``3 p + 2 gap + 2 j``."""
    return 3 * patch_size + 2 * gap + 2 * jitter


def relative_position_layout(key: jax.Array, side: int, patch_size: int, gap: int,
                             jitter: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Where the two patches of one example sit: ``(centre_yx [2], neighbour_yx [2], label)``.

    The grid's top-left corner is uniform over the positions that keep every jittered patch
    inside a ``side x side`` image; cell ``(r, c)`` sits at ``corner + (r, c) (p + gap)``,
    then moves by its own jitter in ``[-j, j]`` per axis. ``label`` is uniform in ``0..7``.
    Top-left pixel coordinates, int32.
    """
    slack = side - relative_position_extent(patch_size, gap, jitter)
    if slack < 0:
        raise ValueError(f"relative position: a 3x3 grid of {patch_size}-pixel patches with gap {gap} and "
                         f"jitter {jitter} needs {side - slack} pixels, more than the image's {side}; "
                         "use smaller patches, gap or jitter, or larger images.")
    corner_key, label_key, jitter_key = jax.random.split(key, 3)
    corner = jitter + jax.random.randint(corner_key, (2,), 0, slack + 1)
    label = jax.random.randint(label_key, (), 0, len(NEIGHBOUR_CELLS))
    cell = jnp.asarray(NEIGHBOUR_CELLS, jnp.int32)[label]
    shake = jax.random.randint(jitter_key, (2, 2), -jitter, jitter + 1)
    stride = patch_size + gap
    centre = corner + stride + shake[0]
    neighbour = corner + cell * stride + shake[1]
    return centre, neighbour, label


def relative_position_pair(key: jax.Array, image: jax.Array, patch_size: int, gap: int,
                           jitter: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(centre [p, p, C], neighbour [p, p, C], label)`` of one ``[H, W, C]`` image (square)."""
    centre, neighbour, label = relative_position_layout(key, image.shape[0], patch_size, gap, jitter)
    return _crop(image, centre, patch_size), _crop(image, neighbour, patch_size), label


def jigsaw_layout(key: jax.Array, side: int, tile_size: int, num_permutations: int) -> tuple[jax.Array, jax.Array]:
    """``(tile_yx [9, 2], label)``: each cell's tile corner (row-major cells) and the puzzle's label.

    The 3x3 cells of ``c = side // 3`` pixels cover the centred ``3 c`` square; a tile sits at a
    uniform offset in ``0..c - t`` per axis inside its cell. ``label`` is uniform in
    ``0..num_permutations - 1``.
    """
    cell = side // 3
    if not 0 < tile_size <= cell:
        raise ValueError(f"jigsaw: tiles of {tile_size} pixels do not fit the {cell}-pixel cells of a "
                         f"{side}-pixel image; use tiles of 1..{cell} pixels.")
    offset_key, label_key = jax.random.split(key)
    origin = (side - 3 * cell) // 2
    rows, cols = jnp.meshgrid(jnp.arange(3), jnp.arange(3), indexing="ij")
    cells = jnp.stack([rows.reshape(-1), cols.reshape(-1)], axis=-1)          # [9, 2]
    offsets = jax.random.randint(offset_key, (9, 2), 0, cell - tile_size + 1)
    label = jax.random.randint(label_key, (), 0, num_permutations)
    return (origin + cells * cell + offsets).astype(jnp.int32), label


def jigsaw_tiles(key: jax.Array, image: jax.Array, permutations: jax.Array,
                 tile_size: int) -> tuple[jax.Array, jax.Array]:
    """``(tiles [9, t, t, C], label)`` of one ``[H, W, C]`` image: tile ``i`` is the image's tile
    ``permutations[label, i]``. ``permutations``: ``[P, 9]`` int (the label set)."""
    corners, label = jigsaw_layout(key, image.shape[0], tile_size, permutations.shape[0])
    tiles = jax.vmap(lambda yx: _crop(image, yx, tile_size))(corners)
    return tiles[permutations[label]], label


def _crop(image: jax.Array, corner: jax.Array, size: int) -> jax.Array:
    """``image[y:y + size, x:x + size]`` for a traced corner ``(y, x)``."""
    return jax.lax.dynamic_slice(image, (corner[0], corner[1], 0), (size, size, image.shape[-1]))
