"""Geometric augmentations on one image: resized crop, flip, rotation/shift, cutout.

Every function maps a float32 image [H, W, C] to an image of the same static shape
and is jit-able with dynamic (traced) parameters; ``rl_repr.data.images.augment``
composes them and vmaps over a batch.

Coordinates: pixel (i, j) covers [i, i + 1) x [j, j + 1) and its centre sits at
(i + 0.5, j + 0.5). Boxes are continuous (top, left, height, width) in that frame,
so a crop of a small image (8x8 digits) is not forced onto whole pixels.
Resampling is bilinear (``jax.scipy.ndimage.map_coordinates``, order 1).

Random ops come in two layers: ``*_from_uniforms`` turns U[0, 1) numbers into
the op's parameters, and ``random_*`` draws those numbers from a key. The batch
pipeline draws all of an example's numbers in one call: one threefry hash per
example compiles several times faster than a dozen separate draws.

References: random resized crop -- Szegedy et al. 2015 ("Going deeper with
convolutions"), torchvision ``RandomResizedCrop``, SimCLR (Chen et al. 2020)
Appendix A; cutout -- DeVries & Taylor 2017, "Improved Regularization of
Convolutional Neural Networks with Cutout".
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp


def _check_image(image: jax.Array, name: str) -> None:
    if image.ndim != 3:
        raise ValueError(f"{name} expects one image [H, W, C], got shape {image.shape}; vmap over the batch.")


def _bilinear_sample(
    image: jax.Array, rows: jax.Array, cols: jax.Array, *, mode: str, fill_value: float = 0.0
) -> jax.Array:
    """image[rows, cols, :] by bilinear interpolation; rows/cols [H', W'] in index units."""

    def sample_channel(channel: jax.Array) -> jax.Array:
        return jax.scipy.ndimage.map_coordinates(channel, [rows, cols], order=1, mode=mode, cval=fill_value)

    return jax.vmap(sample_channel, in_axes=2, out_axes=2)(image)


def resized_crop(
    image: jax.Array,
    top: jax.Array | float,
    left: jax.Array | float,
    box_height: jax.Array | float,
    box_width: jax.Array | float,
) -> jax.Array:
    """Resample the box [top, top + h) x [left, left + w) onto the full H x W grid.

    Output pixel (i, j) reads the input at index coordinates
        r = top + (i + 0.5) * h / H - 0.5,   c = left + (j + 0.5) * w / W - 0.5
    by bilinear interpolation, clamping at the border (the box always lies
    inside the image, so clamping only touches the outer half pixel).
    The full box (0, 0, H, W) is the identity. [H, W, C] -> [H, W, C].
    """
    _check_image(image, "resized_crop")
    height, width = image.shape[0], image.shape[1]
    rows = top + (jnp.arange(height, dtype=jnp.float32) + 0.5) * (box_height / height) - 0.5
    cols = left + (jnp.arange(width, dtype=jnp.float32) + 0.5) * (box_width / width) - 0.5
    grid_rows, grid_cols = jnp.meshgrid(rows, cols, indexing="ij")
    return _bilinear_sample(image, grid_rows, grid_cols, mode="nearest")


def crop_box_num_uniforms(max_attempts: int) -> int:
    """How many U[0, 1) numbers ``crop_box_from_uniforms`` consumes."""
    return 2 * max_attempts + 2


def crop_box_from_uniforms(
    uniforms: jax.Array,
    height: int,
    width: int,
    area_range: tuple[float, float],
    aspect_range: tuple[float, float],
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """A random-resized-crop box (torchvision's algorithm, continuous sizes) from
    2K + 2 uniforms u ~ U[0, 1) (K = max_attempts, see ``crop_box_num_uniforms``).

    Candidate k draws an area fraction a_k ~ U[area_range] and an aspect ratio
    r_k = w / h with log r_k ~ U[log aspect_range], giving w = sqrt(a H W r),
    h = sqrt(a H W / r). The first candidate that fits (h <= H and w <= W) wins;
    if none fits, the fallback is the largest centred box whose aspect ratio is
    clamped to aspect_range. The position is uniform: top ~ U[0, H - h],
    left ~ U[0, W - w]. All K candidates are evaluated at once, so the program
    has a static shape.

    Returns:
        (top, left, h, w) float32 scalars.
    """
    attempts = (uniforms.shape[0] - 2) // 2
    image_area = float(height * width)
    area_u, aspect_u = uniforms[:attempts], uniforms[attempts : 2 * attempts]
    top_u, left_u = uniforms[2 * attempts], uniforms[2 * attempts + 1]
    areas = image_area * (area_range[0] + (area_range[1] - area_range[0]) * area_u)
    log_low, log_high = math.log(aspect_range[0]), math.log(aspect_range[1])
    aspects = jnp.exp(log_low + (log_high - log_low) * aspect_u)
    widths = jnp.sqrt(areas * aspects)
    heights = jnp.sqrt(areas / aspects)
    fits = (widths <= width) & (heights <= height)
    first = jnp.argmax(fits)  # index of the first True (0 if none: masked below)

    # Fallback (static): the whole image if its aspect is in range, else the largest
    # centred box with the nearest allowed aspect.
    image_aspect = width / height
    if image_aspect < aspect_range[0]:
        fallback_w, fallback_h = float(width), width / aspect_range[0]
    elif image_aspect > aspect_range[1]:
        fallback_w, fallback_h = height * aspect_range[1], float(height)
    else:
        fallback_w, fallback_h = float(width), float(height)

    any_fits = jnp.any(fits)
    # Rounding can leave h a hair above H: clamp so the position range is never negative.
    box_h = jnp.minimum(jnp.where(any_fits, heights[first], fallback_h), float(height))
    box_w = jnp.minimum(jnp.where(any_fits, widths[first], fallback_w), float(width))
    top = jnp.where(any_fits, top_u, 0.5) * (height - box_h)
    left = jnp.where(any_fits, left_u, 0.5) * (width - box_w)
    return top, left, box_h, box_w


def sample_crop_box(
    key: jax.Array,
    height: int,
    width: int,
    area_range: tuple[float, float],
    aspect_range: tuple[float, float],
    max_attempts: int = 10,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """``crop_box_from_uniforms`` with its uniforms drawn from ``key``."""
    uniforms = jax.random.uniform(key, (crop_box_num_uniforms(max_attempts),))
    return crop_box_from_uniforms(uniforms, height, width, area_range, aspect_range)


def random_resized_crop(
    key: jax.Array,
    image: jax.Array,
    area_range: tuple[float, float],
    aspect_range: tuple[float, float],
    max_attempts: int = 10,
) -> jax.Array:
    """``resized_crop`` of a box from ``sample_crop_box``. [H, W, C] -> [H, W, C]."""
    _check_image(image, "random_resized_crop")
    top, left, box_h, box_w = sample_crop_box(
        key, image.shape[0], image.shape[1], area_range, aspect_range, max_attempts
    )
    return resized_crop(image, top, left, box_h, box_w)


def random_flip_left_right(key: jax.Array, image: jax.Array, prob: float = 0.5) -> jax.Array:
    """Mirror the columns (y[i, j] = x[i, W - 1 - j]) with probability ``prob``."""
    _check_image(image, "random_flip_left_right")
    return jnp.where(jax.random.uniform(key, ()) < prob, image[:, ::-1, :], image)


def rotate_and_translate(
    image: jax.Array,
    angle: jax.Array | float,
    shift: tuple[jax.Array | float, jax.Array | float],
    fill_value: float = 0.0,
) -> jax.Array:
    """Rotate by ``angle`` radians about the centre, then shift by (dy, dx) pixels.

    Positive angles turn the picture counter-clockwise as displayed (row 0 on
    top), so angle = pi / 2 equals ``np.rot90`` on a square image; positive dy
    moves content down, positive dx moves it right. Inverse mapping with centre
    c = ((H - 1) / 2, (W - 1) / 2): output (y, x) reads the input at
        col = cos(a) (x - c_x - dx) - sin(a) (y - c_y - dy) + c_x
        row = sin(a) (x - c_x - dx) + cos(a) (y - c_y - dy) + c_y
    by bilinear interpolation; samples outside the image blend toward
    ``fill_value`` (scipy's "grid-constant" mode). [H, W, C] -> [H, W, C].
    """
    _check_image(image, "rotate_and_translate")
    height, width = image.shape[0], image.shape[1]
    center_y, center_x = (height - 1) / 2, (width - 1) / 2
    out_rows, out_cols = jnp.meshgrid(
        jnp.arange(height, dtype=jnp.float32), jnp.arange(width, dtype=jnp.float32), indexing="ij"
    )
    y = out_rows - center_y - shift[0]
    x = out_cols - center_x - shift[1]
    cos, sin = jnp.cos(angle), jnp.sin(angle)
    in_cols = cos * x - sin * y + center_x
    in_rows = sin * x + cos * y + center_y
    return _bilinear_sample(image, in_rows, in_cols, mode="constant", fill_value=fill_value)


def rotation_and_shift_from_uniforms(
    uniforms: jax.Array, height: int, width: int, max_degrees: float, max_translate_fraction: float
) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    """(angle, (dy, dx)) from 3 uniforms u ~ U[0, 1): angle ~ U[-max_degrees,
    max_degrees] in radians, dy ~ U[-f H, f H], dx ~ U[-f W, f W] (f = max_translate_fraction)."""
    signed = 2.0 * uniforms[:3] - 1.0  # U[-1, 1)
    angle = signed[0] * math.radians(max_degrees)
    shift = (signed[1] * max_translate_fraction * height, signed[2] * max_translate_fraction * width)
    return angle, shift


def random_rotate_and_translate(
    key: jax.Array,
    image: jax.Array,
    max_degrees: float,
    max_translate_fraction: float,
    fill_value: float = 0.0,
) -> jax.Array:
    """``rotate_and_translate`` by a random angle and shift (``rotation_and_shift_from_uniforms``)."""
    _check_image(image, "random_rotate_and_translate")
    angle, shift = rotation_and_shift_from_uniforms(
        jax.random.uniform(key, (3,)), image.shape[0], image.shape[1], max_degrees, max_translate_fraction
    )
    return rotate_and_translate(image, angle, shift, fill_value)


def cutout_size(height: int, width: int, fraction: float) -> tuple[int, int]:
    """Side lengths of the cutout square: max(1, round(fraction * side)) each."""
    return max(1, round(fraction * height)), max(1, round(fraction * width))


def cutout(
    image: jax.Array,
    center_row: jax.Array | int,
    center_col: jax.Array | int,
    size: tuple[int, int],
    fill_value: float = 0.0,
) -> jax.Array:
    """Set rows [r0, r0 + s_h) x cols [c0, c0 + s_w) to ``fill_value``, clipped to the image.

    r0 = center_row - s_h // 2 and c0 = center_col - s_w // 2 (DeVries & Taylor:
    the centre may sit anywhere in the image, so the patch can be cut by the
    border). ``size`` = (s_h, s_w) is static. [H, W, C] -> [H, W, C].
    """
    _check_image(image, "cutout")
    rows = jnp.arange(image.shape[0])[:, None]
    cols = jnp.arange(image.shape[1])[None, :]
    top = center_row - size[0] // 2
    left = center_col - size[1] // 2
    inside = (rows >= top) & (rows < top + size[0]) & (cols >= left) & (cols < left + size[1])
    return jnp.where(inside[..., None], jnp.asarray(fill_value, image.dtype), image)


def cutout_center_from_uniforms(uniforms: jax.Array, height: int, width: int) -> tuple[jax.Array, jax.Array]:
    """A uniformly random pixel (row, col) from 2 uniforms u ~ U[0, 1): floor(u * side)."""
    row = jnp.minimum(jnp.floor(uniforms[0] * height).astype(jnp.int32), height - 1)
    col = jnp.minimum(jnp.floor(uniforms[1] * width).astype(jnp.int32), width - 1)
    return row, col


def random_cutout(
    key: jax.Array, image: jax.Array, fraction: float, fill_value: float = 0.0
) -> jax.Array:
    """``cutout`` of a ``cutout_size`` patch centred at a uniformly random pixel."""
    _check_image(image, "random_cutout")
    center_row, center_col = cutout_center_from_uniforms(
        jax.random.uniform(key, (2,)), image.shape[0], image.shape[1]
    )
    size = cutout_size(image.shape[0], image.shape[1], fraction)
    return cutout(image, center_row, center_col, size, fill_value)


__all__ = [
    "crop_box_from_uniforms",
    "crop_box_num_uniforms",
    "cutout",
    "cutout_center_from_uniforms",
    "cutout_size",
    "random_cutout",
    "random_flip_left_right",
    "random_resized_crop",
    "random_rotate_and_translate",
    "resized_crop",
    "rotate_and_translate",
    "rotation_and_shift_from_uniforms",
    "sample_crop_box",
]
