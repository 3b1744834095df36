"""On-device SimCLR augmentation: a config, one-image pipeline, batch and two views.

Everything here is pure and jit-able; an ``AugmentConfig`` is a frozen, hashable
dataclass, so it can be closed over or passed as a static argument. Each example
of a batch gets its own key (``jax.random.split(key, N)``) and the one-image
pipeline is vmapped, so examples draw independently while the same key always
reproduces the same views.

Pipeline for one float32 image [H, W, C] in [0, 1] (ops whose probability or
strength is zero are left out of the compiled program):
    1. random resized crop      area ~ crop_area, aspect w/h ~ crop_aspect (log-uniform)
    2. horizontal flip          p = 0.5
    3. rotation and shift       angle ~ U[+-rotate_degrees], shift ~ U[+-translate_fraction * side]
    4. colour jitter            p = color_jitter_prob, strength s (see augment_color)
    5. grayscale                p = grayscale_prob
    6. Gaussian blur            p = blur_prob, sigma ~ U[blur_sigma], kernel ~10% of H
    7. cutout                   p = cutout_prob, square of cutout_fraction x side
    8. clip to [0, 1]
Steps 1, 2, 4-6 are SimCLR's recipe (Chen et al. 2020, Appendix A); 3 and 7 are
the geometric and erasing options that suit small grey-level images (digits).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from rl_repr.data.images import augment_color, augment_geometry

# Uniforms per example, in a fixed layout (see _uniform_layout): switching one op
# on or off never changes the numbers another op receives.
_FIXED_LAYOUT = (
    ("flip", 1),
    ("rotation_and_shift", 3),
    ("color_jitter_apply", 1),
    ("color_jitter", augment_color.COLOR_JITTER_NUM_UNIFORMS),
    ("grayscale_apply", 1),
    ("blur_apply", 1),
    ("blur_sigma", 1),
    ("cutout_apply", 1),
    ("cutout_center", 2),
)


def _check_positive_range(name: str, value: tuple[float, ...], high: float) -> None:
    """One-sentence error unless value is a pair with 0 < min <= max <= high."""
    if len(value) != 2 or not 0.0 < value[0] <= value[1] <= high:
        raise ValueError(
            f"AugmentConfig.{name}={value} must be a (min, max) pair with 0 < min <= max <= {high}."
        )


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Settings of the augmentation pipeline (defaults: SimCLR ImageNet, no blur).

    Attributes:
        crop: apply random resized crop.
        crop_area: (min, max) fraction of the image area kept by the crop, in (0, 1].
        crop_aspect: (min, max) width / height of the crop box, sampled log-uniformly.
        crop_max_attempts: candidate boxes tried before the centred fallback.
        flip: apply a horizontal flip with probability 0.5.
        color_jitter_strength: s; brightness/contrast/saturation 0.8 s, hue 0.2 s.
        color_jitter_prob: probability of applying colour jitter.
        color_jitter_random_order: run the four jitters in a random order (SimCLR).
        grayscale_prob: probability of converting to grayscale (identity for C = 1).
        blur_prob: probability of Gaussian blur (identity below 20 px: see blur_radius).
        blur_sigma: (min, max) of the blur's standard deviation in pixels.
        rotate_degrees: maximum absolute rotation angle in degrees, in [0, 180].
        translate_fraction: maximum shift as a fraction of each side, in [0, 1).
        cutout_prob: probability of erasing one square patch.
        cutout_fraction: side of the erased square as a fraction of each side, in (0, 1].
        fill_value: value given to pixels uncovered by rotation/shift and to cutout.
    """

    crop: bool = True
    crop_area: tuple[float, float] = (0.08, 1.0)
    crop_aspect: tuple[float, float] = (3 / 4, 4 / 3)
    crop_max_attempts: int = 10
    flip: bool = True
    color_jitter_strength: float = 1.0
    color_jitter_prob: float = 0.8
    color_jitter_random_order: bool = True
    grayscale_prob: float = 0.2
    blur_prob: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    rotate_degrees: float = 0.0
    translate_fraction: float = 0.0
    cutout_prob: float = 0.0
    cutout_fraction: float = 0.25
    fill_value: float = 0.0

    def __post_init__(self) -> None:
        # Configs arrive from ml_collections/JSON with lists; tuples keep the config hashable.
        for name in ("crop_area", "crop_aspect", "blur_sigma"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
            elif not isinstance(value, tuple):
                raise ValueError(f"AugmentConfig.{name}={value!r} must be a (min, max) pair of numbers.")
        _check_positive_range("crop_area", self.crop_area, 1.0)
        _check_positive_range("crop_aspect", self.crop_aspect, float("inf"))
        _check_positive_range("blur_sigma", self.blur_sigma, float("inf"))
        for name in ("color_jitter_prob", "grayscale_prob", "blur_prob", "cutout_prob", "fill_value"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"AugmentConfig.{name}={value} must lie in [0, 1].")
        if self.color_jitter_strength < 0:
            raise ValueError(
                f"AugmentConfig.color_jitter_strength={self.color_jitter_strength} must be >= 0 "
                "(SimCLR uses 1.0 on ImageNet, 0.5 on CIFAR-10)."
            )
        if not 0.0 <= self.rotate_degrees <= 180.0:
            raise ValueError(f"AugmentConfig.rotate_degrees={self.rotate_degrees} must lie in [0, 180].")
        if not 0.0 <= self.translate_fraction < 1.0:
            raise ValueError(f"AugmentConfig.translate_fraction={self.translate_fraction} must lie in [0, 1).")
        if not 0.0 < self.cutout_fraction <= 1.0:
            raise ValueError(f"AugmentConfig.cutout_fraction={self.cutout_fraction} must lie in (0, 1].")
        if self.crop_max_attempts < 1:
            raise ValueError(f"AugmentConfig.crop_max_attempts={self.crop_max_attempts} must be >= 1.")


def _uniform_layout(max_attempts: int) -> dict[str, slice]:
    """Name -> slice of the per-example uniform vector (crop last: its size varies)."""
    layout, start = {}, 0
    for name, size in _FIXED_LAYOUT + (("crop", augment_geometry.crop_box_num_uniforms(max_attempts)),):
        layout[name] = slice(start, start + size)
        start += size
    return layout


def _with_prob(uniform: jax.Array, prob: float, op, image: jax.Array) -> jax.Array:
    """op(image) if uniform < prob (probability ``prob``), else image; both run under vmap."""
    if prob >= 1.0:
        return op(image)
    return jnp.where(uniform < prob, op(image), image)


def augment_image(key: jax.Array, image: jax.Array, config: AugmentConfig) -> jax.Array:
    """One random view of one image (the pipeline in the module docstring).

    All random numbers come from one ``jax.random.uniform(key, [n])`` draw laid out
    by ``_uniform_layout``: a single hash per example keeps compilation fast.

    Args:
        key: PRNG key for this example.
        image: [H, W, C] float in [0, 1] (or uint8 0..255, divided by 255), C in {1, 3}.
        config: the augmentation settings (static).

    Returns:
        [H, W, C] float32 in [0, 1].
    """
    if image.ndim != 3 or image.shape[-1] not in (1, 3):
        raise ValueError(
            f"augment_image expects one [H, W, C] image with C in (1, 3), got shape {image.shape}; "
            "use augment_batch for [N, H, W, C] batches."
        )
    image = to_float_images(image)
    height, width, channels = image.shape
    layout = _uniform_layout(config.crop_max_attempts)
    all_uniforms = jax.random.uniform(key, (max(part.stop for part in layout.values()),))
    uniforms = {name: all_uniforms[part] for name, part in layout.items()}

    if config.crop:
        box = augment_geometry.crop_box_from_uniforms(
            uniforms["crop"], height, width, config.crop_area, config.crop_aspect
        )
        image = augment_geometry.resized_crop(image, *box)
    if config.flip:
        image = _with_prob(uniforms["flip"][0], 0.5, lambda x: x[:, ::-1, :], image)
    if config.rotate_degrees > 0 or config.translate_fraction > 0:
        angle, shift = augment_geometry.rotation_and_shift_from_uniforms(
            uniforms["rotation_and_shift"], height, width, config.rotate_degrees, config.translate_fraction
        )
        image = augment_geometry.rotate_and_translate(image, angle, shift, config.fill_value)
    if config.color_jitter_strength > 0 and config.color_jitter_prob > 0:
        params = augment_color.color_jitter_from_uniforms(
            uniforms["color_jitter"], config.color_jitter_strength, random_order=config.color_jitter_random_order
        )
        image = _with_prob(
            uniforms["color_jitter_apply"][0],
            config.color_jitter_prob,
            lambda x: augment_color.apply_color_jitter(x, *params),
            image,
        )
    if config.grayscale_prob > 0 and channels == 3:
        image = _with_prob(uniforms["grayscale_apply"][0], config.grayscale_prob, augment_color.to_grayscale, image)
    radius = augment_color.blur_radius(height)
    if config.blur_prob > 0 and radius > 0:
        low, high = config.blur_sigma
        sigma = low + (high - low) * uniforms["blur_sigma"][0]
        image = _with_prob(
            uniforms["blur_apply"][0], config.blur_prob, lambda x: augment_color.gaussian_blur(x, sigma, radius), image
        )
    if config.cutout_prob > 0:
        center = augment_geometry.cutout_center_from_uniforms(uniforms["cutout_center"], height, width)
        size = augment_geometry.cutout_size(height, width, config.cutout_fraction)
        image = _with_prob(
            uniforms["cutout_apply"][0],
            config.cutout_prob,
            lambda x: augment_geometry.cutout(x, *center, size, config.fill_value),
            image,
        )
    return jnp.clip(image, 0.0, 1.0)


def to_float_images(images: jax.Array) -> jax.Array:
    """uint8 [..] -> float32 x / 255; floating input is cast to float32 unchanged."""
    if images.dtype == jnp.uint8:
        return images.astype(jnp.float32) / 255.0
    if not jnp.issubdtype(images.dtype, jnp.floating):
        raise ValueError(f"Images must be uint8 (0..255) or float (0..1), got dtype {images.dtype}.")
    return images.astype(jnp.float32)


def example_keys(key: jax.Array, num_examples: int, first_index: int | jax.Array = 0) -> jax.Array:
    """One key per example: ``fold_in(key, first_index + n)`` for n in [0, num_examples).

    Keyed by the example's *global* index, so a device holding rows
    ``[first_index, first_index + N)`` of a batch draws the same augmentations as one device
    holding the whole batch.
    """
    return jax.vmap(lambda i: jax.random.fold_in(key, i))(first_index + jnp.arange(num_examples))


def augment_batch(key: jax.Array, images: jax.Array, config: AugmentConfig, *,
                  first_index: int | jax.Array = 0) -> jax.Array:
    """One random view of each image; example n uses ``example_keys(key, N, first_index)[n]``.

    Args:
        key: PRNG key of the step.
        images: [N, H, W, C] uint8 (divided by 255) or float in [0, 1].
        config: the augmentation settings (static).
        first_index: global index of row 0 (``axis_index * N`` in a per-device program).

    Returns:
        [N, H, W, C] float32 in [0, 1].
    """
    if images.ndim != 4:
        raise ValueError(f"augment_batch expects [N, H, W, C] images, got shape {images.shape}.")
    images = to_float_images(images)
    keys = example_keys(key, images.shape[0], first_index)
    return jax.vmap(lambda k, x: augment_image(k, x, config))(keys, images)


def two_views(key: jax.Array, images: jax.Array, config: AugmentConfig, *,
              first_index: int | jax.Array = 0) -> tuple[jax.Array, jax.Array]:
    """SimCLR's pair: two independent views of the same images.

    Example n's two views use the two halves of ``split(example_keys(key, N, first_index)[n])``.
    [N, H, W, C] -> ([N, H, W, C], [N, H, W, C]) float32; row n of both views comes from image n
    (the positive pair of the contrastive loss). Images ``[N, 2, H, W, C]`` already hold a
    separate image per view (random crops cut on the host, ``rl_repr.data.images.streaming``):
    view v is then augmented from ``images[:, v]`` (pass a config with ``crop=False``).
    """
    if images.ndim not in (4, 5) or (images.ndim == 5 and images.shape[1] != 2):
        raise ValueError(f"two_views expects [N, H, W, C] or [N, 2, H, W, C] images, got shape {images.shape}.")
    images = to_float_images(images)
    firsts, seconds = (images[:, 0], images[:, 1]) if images.ndim == 5 else (images, images)
    keys = jax.vmap(jax.random.split)(example_keys(key, images.shape[0], first_index))
    augment = jax.vmap(lambda k, x: augment_image(k, x, config))
    return augment(keys[:, 0], firsts), augment(keys[:, 1], seconds)


__all__ = [
    "AugmentConfig",
    "augment_batch",
    "augment_image",
    "example_keys",
    "to_float_images",
    "two_views",
]
