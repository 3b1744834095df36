"""Photometric augmentations on one image: colour jitter, grayscale, Gaussian blur.

All functions act on a single float32 image [H, W, C] with values in [0, 1] and are
pure and jit-able (static shapes, dynamic parameters); ``rl_repr.data.images.augment``
composes them and vmaps over a batch. For grey-level images (C = 1) the colour
operations that need three channels -- saturation, hue and grayscale -- are the
identity, so the same pipeline serves digits and RGB data.

Semantics follow SimCLR's reference input pipeline (Chen et al. 2020, "A Simple
Framework for Contrastive Learning of Visual Representations", Appendix A and
google-research/simclr ``data_util.py``), which builds on ``tf.image``:
    brightness  x * f,                    f ~ U[max(0, 1 - 0.8 s), 1 + 0.8 s]  (SimCLR v2)
    contrast    (x - mean_c) * f + mean_c, f ~ U[max(0, 1 - 0.8 s), 1 + 0.8 s]
    saturation  S <- clip(S * f, 0, 1) in HSV, f ~ U[max(0, 1 - 0.8 s), 1 + 0.8 s]
    hue         H <- (H + d) mod 1 in HSV,  d ~ U[-0.2 s, 0.2 s]
applied in a random order, each result clipped to [0, 1];
    grayscale   Y = 0.2989 R + 0.5870 G + 0.1140 B copied to the three channels;
    blur        separable Gaussian, kernel 2 * (H // 10 // 2) + 1 taps (about 10% of
                the side), sigma ~ U[0.1, 2.0]; we pad by reflection (as torchvision
                does) where SimCLR pads with zeros, so borders do not darken.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

# ITU-R BT.601 luma weights, as in tf.image.rgb_to_grayscale.
_LUMA_WEIGHTS = (0.2989, 0.5870, 0.1140)
# SimCLR scales brightness/contrast/saturation by 0.8 s and hue by 0.2 s.
_JITTER_SCALE = 0.8
_HUE_SCALE = 0.2


def _check_image(image: jax.Array, name: str) -> None:
    if image.ndim != 3:
        raise ValueError(f"{name} expects one image [H, W, C], got shape {image.shape}; vmap over the batch.")


def adjust_brightness(image: jax.Array, factor: jax.Array | float) -> jax.Array:
    """Multiplicative brightness (SimCLR v2): x * factor. [H, W, C] -> [H, W, C] (unclipped)."""
    _check_image(image, "adjust_brightness")
    return image * factor


def adjust_contrast(image: jax.Array, factor: jax.Array | float) -> jax.Array:
    """Contrast about each channel's spatial mean (tf.image.adjust_contrast).

    y = (x - m_c) * factor + m_c, with m_c the mean of channel c over H and W.
    [H, W, C] -> [H, W, C] (unclipped).
    """
    _check_image(image, "adjust_contrast")
    mean = jnp.mean(image, axis=(0, 1), keepdims=True)
    return (image - mean) * factor + mean


def rgb_to_hsv(image: jax.Array) -> jax.Array:
    """RGB [..., 3] in [0, 1] -> HSV [..., 3] in [0, 1] (Python ``colorsys`` semantics).

    V = max, S = (max - min) / max (0 where max = 0), H = sector formula / 6 mod 1
    (0 for greys), ties resolved in the order R, G, B.
    """
    red, green, blue = image[..., 0], image[..., 1], image[..., 2]
    max_c = jnp.max(image, axis=-1)
    min_c = jnp.min(image, axis=-1)
    delta = max_c - min_c
    # Safe denominators: the masked branches must not produce NaN under jit.
    saturation = jnp.where(max_c > 0, delta / jnp.where(max_c > 0, max_c, 1.0), 0.0)
    safe_delta = jnp.where(delta > 0, delta, 1.0)
    red_c = (max_c - red) / safe_delta
    green_c = (max_c - green) / safe_delta
    blue_c = (max_c - blue) / safe_delta
    hue = jnp.where(
        red == max_c,
        blue_c - green_c,
        jnp.where(green == max_c, 2.0 + red_c - blue_c, 4.0 + green_c - red_c),
    )
    hue = jnp.where(delta > 0, jnp.mod(hue / 6.0, 1.0), 0.0)
    return jnp.stack([hue, saturation, max_c], axis=-1)


def hsv_to_rgb(image: jax.Array) -> jax.Array:
    """HSV [..., 3] in [0, 1] -> RGB [..., 3] in [0, 1].

    Channel n in {R: 5, G: 3, B: 1}: V - V S clip(min(k, 4 - k), 0, 1) with
    k = (n + 6 H) mod 6, the closed form of the six-sector HSV model.
    """
    hue, saturation, value = image[..., 0], image[..., 1], image[..., 2]
    offsets = jnp.array([5.0, 3.0, 1.0], dtype=image.dtype)
    k = jnp.mod(offsets + 6.0 * hue[..., None], 6.0)
    ramp = jnp.clip(jnp.minimum(k, 4.0 - k), 0.0, 1.0)
    return value[..., None] - (value * saturation)[..., None] * ramp


def adjust_saturation(image: jax.Array, factor: jax.Array | float) -> jax.Array:
    """Scale HSV saturation: S <- clip(S * factor, 0, 1) (tf.image.adjust_saturation).

    [H, W, 3] -> [H, W, 3]; the identity for grey-level [H, W, 1] images.
    """
    _check_image(image, "adjust_saturation")
    if image.shape[-1] == 1:
        return image
    hsv = rgb_to_hsv(image)
    hsv = hsv.at[..., 1].set(jnp.clip(hsv[..., 1] * factor, 0.0, 1.0))
    return hsv_to_rgb(hsv)


def adjust_hue(image: jax.Array, delta: jax.Array | float) -> jax.Array:
    """Rotate HSV hue: H <- (H + delta) mod 1 (tf.image.adjust_hue).

    [H, W, 3] -> [H, W, 3]; the identity for grey-level [H, W, 1] images.
    """
    _check_image(image, "adjust_hue")
    if image.shape[-1] == 1:
        return image
    hsv = rgb_to_hsv(image)
    hsv = hsv.at[..., 0].set(jnp.mod(hsv[..., 0] + delta, 1.0))
    return hsv_to_rgb(hsv)


def to_grayscale(image: jax.Array) -> jax.Array:
    """Luma Y = 0.2989 R + 0.5870 G + 0.1140 B copied to all three channels.

    [H, W, 3] -> [H, W, 3] with equal channels; the identity for [H, W, 1].
    """
    _check_image(image, "to_grayscale")
    if image.shape[-1] == 1:
        return image
    # A weighted sum, not a matmul: TPU/GPU default matmul precision would round to bf16/tf32.
    luma = jnp.sum(image * jnp.asarray(_LUMA_WEIGHTS, dtype=image.dtype), axis=-1)
    return jnp.repeat(luma[..., None], image.shape[-1], axis=-1)


JITTER_OPS = ("brightness", "contrast", "saturation", "hue")  # op k of an ``order`` array


def apply_color_jitter(
    image: jax.Array,
    brightness: jax.Array | float,
    contrast: jax.Array | float,
    saturation: jax.Array | float,
    hue: jax.Array | float,
    order: jax.Array,
) -> jax.Array:
    """Run the four jitters in the given order, clipping to [0, 1] after each.

    ``order`` is an int [4] permutation of op ids (0 brightness, 1 contrast,
    2 saturation, 3 hue; see JITTER_OPS); step t applies op order[t]. It may be
    traced: ``jax.lax.switch`` picks the op inside a ``fori_loop``.
    [H, W, C] -> [H, W, C] in [0, 1].
    """
    _check_image(image, "apply_color_jitter")
    ops = [
        lambda x: adjust_brightness(x, brightness),
        lambda x: adjust_contrast(x, contrast),
        lambda x: adjust_saturation(x, saturation),
        lambda x: adjust_hue(x, hue),
    ]
    clipped_ops = [lambda x, op=op: jnp.clip(op(x), 0.0, 1.0) for op in ops]

    def apply_step(step: int, current: jax.Array) -> jax.Array:
        return jax.lax.switch(order[step], clipped_ops, current)

    return jax.lax.fori_loop(0, len(clipped_ops), apply_step, image)


COLOR_JITTER_NUM_UNIFORMS = 8  # 4 parameters + 4 sort keys for the order


def color_jitter_from_uniforms(
    uniforms: jax.Array, strength: float, *, random_order: bool = True
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array, jax.Array]:
    """SimCLR's jitter parameters for strength s from 8 uniforms u ~ U[0, 1).

    Returns (brightness, contrast, saturation, hue, order): the three factors
    ~ U[max(0, 1 - 0.8 s), 1 + 0.8 s], the hue shift ~ U[-0.2 s, 0.2 s], and the
    order argsort(u[4:8]), a uniformly random permutation of the four op ids
    (0, 1, 2, 3 when ``random_order`` is False).
    """
    low, high = max(0.0, 1.0 - _JITTER_SCALE * strength), 1.0 + _JITTER_SCALE * strength
    brightness, contrast, saturation = low + (high - low) * uniforms[:3]
    hue = _HUE_SCALE * strength * (2.0 * uniforms[3] - 1.0)
    order = jnp.argsort(uniforms[4:8]) if random_order else jnp.arange(len(JITTER_OPS))
    return brightness, contrast, saturation, hue, order


def sample_color_jitter(
    key: jax.Array, strength: float, *, random_order: bool = True
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array, jax.Array]:
    """``color_jitter_from_uniforms`` with its uniforms drawn from ``key``."""
    uniforms = jax.random.uniform(key, (COLOR_JITTER_NUM_UNIFORMS,))
    return color_jitter_from_uniforms(uniforms, strength, random_order=random_order)


def color_jitter(
    key: jax.Array, image: jax.Array, strength: float, *, random_order: bool = True
) -> jax.Array:
    """SimCLR colour distortion of strength s: ``sample_color_jitter`` then
    ``apply_color_jitter``. Grey-level images only feel brightness and contrast.
    [H, W, C] -> [H, W, C] in [0, 1]."""
    _check_image(image, "color_jitter")
    return apply_color_jitter(image, *sample_color_jitter(key, strength, random_order=random_order))


def blur_radius(height: int) -> int:
    """Half-width r of SimCLR's blur kernel (2r + 1 taps, about 10% of the side).

    r = (height // 10) // 2, so images under 20 px get r = 0 (no blur), which is why
    SimCLR does not blur CIFAR-sized images.
    """
    return (height // 10) // 2


def gaussian_blur(image: jax.Array, sigma: jax.Array | float, radius: int) -> jax.Array:
    """Separable Gaussian blur with 2 * radius + 1 taps and reflection padding.

    w_k = exp(-k^2 / (2 sigma^2)) / sum_j exp(-j^2 / (2 sigma^2)), k in [-r, r];
    y = w * (w * x along H) along W, with x mirrored at the borders
    (jnp.pad mode="reflect": d c b | a b c d). ``radius`` is static, ``sigma`` may
    be traced. [H, W, C] -> [H, W, C]; radius 0 is the identity.
    """
    _check_image(image, "gaussian_blur")
    if radius == 0:
        return image
    if radius >= min(image.shape[0], image.shape[1]):
        raise ValueError(
            f"A blur radius of {radius} does not fit an image of shape {image.shape}; use "
            "blur_radius(height) or a radius below the image side."
        )
    offsets = jnp.arange(-radius, radius + 1, dtype=jnp.float32)
    weights = jnp.exp(-(offsets**2) / (2.0 * jnp.square(sigma)))
    weights = weights / jnp.sum(weights)
    height, width = image.shape[0], image.shape[1]
    padded = jnp.pad(image, ((radius, radius), (0, 0), (0, 0)), mode="reflect")
    # A static loop over 2r + 1 taps: shifted slices keep the op a few fused adds.
    image = sum(weights[k] * padded[k : k + height] for k in range(2 * radius + 1))
    padded = jnp.pad(image, ((0, 0), (radius, radius), (0, 0)), mode="reflect")
    return sum(weights[k] * padded[:, k : k + width] for k in range(2 * radius + 1))


def random_gaussian_blur(
    key: jax.Array, image: jax.Array, sigma_range: tuple[float, float]
) -> jax.Array:
    """``gaussian_blur`` with sigma ~ U[sigma_range] and SimCLR's kernel size for H."""
    sigma = jax.random.uniform(key, (), minval=sigma_range[0], maxval=sigma_range[1])
    return gaussian_blur(image, sigma, blur_radius(image.shape[0]))


__all__ = [
    "COLOR_JITTER_NUM_UNIFORMS",
    "JITTER_OPS",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_hue",
    "adjust_saturation",
    "apply_color_jitter",
    "blur_radius",
    "color_jitter",
    "color_jitter_from_uniforms",
    "gaussian_blur",
    "hsv_to_rgb",
    "random_gaussian_blur",
    "rgb_to_hsv",
    "sample_color_jitter",
    "to_grayscale",
]
