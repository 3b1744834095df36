"""Tests for on-device augmentation (rl_repr.data.augment, augment_color, augment_geometry).

Each op is checked against an independent reference: Python's ``colorsys`` for the
HSV model, numpy written from the tf.image formulas for brightness, contrast and
grayscale, ``scipy.ndimage`` for bilinear resampling, rotation and separable
blur, ``np.rot90``/``np.fliplr`` for exact geometric cases. The composed pipeline
is checked for its contracts: shapes, dtype, range, identity when everything is
off, key determinism, per-example independence, one compilation, and equality
of the sharded and single-device results.
"""

import colorsys
import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from jax.test_util import check_grads

from rl_repr.data.images import augment, augment_color, augment_geometry
from rl_repr.data.images.augment import AugmentConfig

OFF = dict(crop=False, flip=False, color_jitter_prob=0.0, grayscale_prob=0.0)
# Augmentation for 8x8 grey digits that keeps them recognisable: no flip (a mirrored 2 is not a
# digit), a mild crop, brightness/contrast jitter 0.5, rotations up to 10 degrees, a 2x2 cutout
# a quarter of the time.
DIGITS = AugmentConfig(crop_area=(0.6, 1.0), crop_aspect=(3 / 4, 4 / 3), flip=False, color_jitter_strength=0.5,
                       color_jitter_prob=0.8, grayscale_prob=0.0, blur_prob=0.0, rotate_degrees=10.0,
                       translate_fraction=0.0, cutout_prob=0.25, cutout_fraction=0.25, fill_value=0.0)
# Jitted once per (config, shape): eager vmapped pipelines are far slower than compiling.
augment_batch = jax.jit(augment.augment_batch, static_argnames="config")
two_views = jax.jit(augment.two_views, static_argnames="config")


def random_images(seed, shape):
    return np.random.default_rng(seed).uniform(0.0, 1.0, shape).astype(np.float32)


# ----------------------------------------------------------------------------- colour ops


def test_rgb_hsv_round_trip_matches_colorsys():
    pixels = np.concatenate(
        [
            random_images(0, (200, 3)),
            # greys, black, white, and exact ties between channels
            np.array([[0, 0, 0], [1, 1, 1], [0.5, 0.5, 0.5], [1, 1, 0], [0, 1, 1], [1, 0, 1], [0.2, 0.7, 0.7]]),
        ]
    ).astype(np.float32)
    expected_hsv = np.array([colorsys.rgb_to_hsv(*p) for p in pixels.astype(np.float64)])
    hsv = np.asarray(augment_color.rgb_to_hsv(jnp.asarray(pixels)))
    np.testing.assert_allclose(hsv, expected_hsv, atol=2e-6)
    expected_rgb = np.array([colorsys.hsv_to_rgb(*p) for p in expected_hsv])
    np.testing.assert_allclose(np.asarray(augment_color.hsv_to_rgb(jnp.asarray(hsv))), expected_rgb, atol=2e-6)


def numpy_adjust_hsv(image, channel, update):
    """tf.image.adjust_saturation / adjust_hue through colorsys, pixel by pixel."""
    flat = image.reshape(-1, 3).astype(np.float64)
    out = []
    for pixel in flat:
        hsv = list(colorsys.rgb_to_hsv(*pixel))
        hsv[channel] = update(hsv[channel])
        out.append(colorsys.hsv_to_rgb(*hsv))
    return np.array(out).reshape(image.shape)


@pytest.mark.parametrize("factor", [0.0, 0.4, 1.7])
def test_saturation_matches_colorsys(factor):
    image = random_images(1, (5, 4, 3))
    expected = numpy_adjust_hsv(image, 1, lambda s: min(max(s * factor, 0.0), 1.0))
    np.testing.assert_allclose(augment_color.adjust_saturation(image, factor), expected, atol=2e-6)


@pytest.mark.parametrize("delta", [-0.3, 0.0, 0.15, 0.9])
def test_hue_matches_colorsys(delta):
    image = random_images(2, (5, 4, 3))
    expected = numpy_adjust_hsv(image, 0, lambda h: (h + delta) % 1.0)
    np.testing.assert_allclose(augment_color.adjust_hue(image, delta), expected, atol=2e-6)


def test_brightness_and_contrast_formulas():
    image = random_images(3, (6, 5, 3))
    np.testing.assert_allclose(augment_color.adjust_brightness(image, 1.3), image * 1.3, rtol=1e-6)
    mean = image.mean(axis=(0, 1), keepdims=True)  # per channel, as tf.image.adjust_contrast
    np.testing.assert_allclose(augment_color.adjust_contrast(image, 0.6), (image - mean) * 0.6 + mean, atol=1e-6)
    np.testing.assert_allclose(augment_color.adjust_contrast(image, 1.0), image, atol=1e-6)


def test_grayscale_equal_channels_with_luma_weights():
    image = random_images(4, (6, 5, 3))
    gray = np.asarray(augment_color.to_grayscale(image))
    luma = 0.2989 * image[..., 0] + 0.5870 * image[..., 1] + 0.1140 * image[..., 2]
    for channel in range(3):
        np.testing.assert_allclose(gray[..., channel], luma, atol=1e-6)


def test_colour_only_ops_are_identities_on_one_channel():
    image = random_images(5, (6, 5, 1))
    for op in (
        lambda x: augment_color.adjust_saturation(x, 0.2),
        lambda x: augment_color.adjust_hue(x, 0.3),
        augment_color.to_grayscale,
    ):
        np.testing.assert_array_equal(op(image), image)


def numpy_jitter(image, brightness, contrast, saturation, hue, order):
    """The four tf.image jitters in the given order, each clipped (SimCLR color_jitter_rand)."""
    ops = [
        lambda x: x * brightness,
        lambda x: (x - x.mean(axis=(0, 1), keepdims=True)) * contrast + x.mean(axis=(0, 1), keepdims=True),
        lambda x: numpy_adjust_hsv(x, 1, lambda s: min(max(s * saturation, 0.0), 1.0)),
        lambda x: numpy_adjust_hsv(x, 0, lambda h: (h + hue) % 1.0),
    ]
    for op_id in order:
        image = np.clip(ops[op_id](image), 0.0, 1.0)
    return image


@pytest.mark.parametrize("order", [(0, 1, 2, 3), (3, 2, 1, 0), (2, 0, 3, 1)])
def test_apply_color_jitter_follows_the_order(order):
    image = random_images(6, (4, 4, 3))
    params = (1.4, 0.7, 1.5, 0.12)
    got = augment_color.apply_color_jitter(image, *params, jnp.array(order))
    np.testing.assert_allclose(got, numpy_jitter(image, *params, order), atol=3e-6)


def test_sampled_jitter_parameters_span_simclr_ranges_and_orders():
    strength = 0.5
    sample = jax.jit(jax.vmap(lambda k: augment_color.sample_color_jitter(k, strength)))
    brightness, contrast, saturation, hue, order = map(np.asarray, sample(jax.random.split(jax.random.key(0), 2000)))
    for factor in (brightness, contrast, saturation):
        assert factor.min() >= 0.6 and factor.max() <= 1.4  # 1 -+ 0.8 s
        assert factor.min() < 0.62 and factor.max() > 1.38
    assert hue.min() >= -0.1 and hue.max() <= 0.1 and hue.min() < -0.098 and hue.max() > 0.098  # -+ 0.2 s
    assert all(sorted(row) == [0, 1, 2, 3] for row in order)
    assert len({tuple(row) for row in order}) == 24  # every order of the four ops occurs
    fixed = augment_color.sample_color_jitter(jax.random.key(1), strength, random_order=False)[-1]
    np.testing.assert_array_equal(fixed, [0, 1, 2, 3])


def test_color_jitter_zero_strength_is_identity_and_range_is_kept():
    image = random_images(7, (6, 6, 3))
    np.testing.assert_allclose(augment_color.color_jitter(jax.random.key(0), image, 0.0), image, atol=2e-6)
    out = np.asarray(augment_color.color_jitter(jax.random.key(1), image * 2.0, 1.0))
    assert out.min() >= 0.0 and out.max() <= 1.0


# ----------------------------------------------------------------------------- blur


def test_blur_radius_is_ten_percent_of_the_side():
    assert [augment_color.blur_radius(h) for h in (8, 19, 20, 32, 96, 224)] == [0, 0, 1, 1, 4, 11]


@pytest.mark.parametrize("sigma", [0.1, 0.8, 2.0])
def test_gaussian_blur_matches_scipy_separable_filter(sigma):
    image = random_images(8, (24, 20, 3))
    radius = 3
    weights = np.exp(-np.arange(-radius, radius + 1) ** 2 / (2 * sigma**2))
    weights /= weights.sum()
    # scipy's "mirror" = numpy's "reflect" (d c b | a b c d).
    expected = scipy.ndimage.correlate1d(image.astype(np.float64), weights, axis=0, mode="mirror")
    expected = scipy.ndimage.correlate1d(expected, weights, axis=1, mode="mirror")
    np.testing.assert_allclose(augment_color.gaussian_blur(image, sigma, radius), expected, atol=1e-6)


def test_gaussian_blur_keeps_constants_and_radius_zero_is_identity():
    constant = np.full((20, 20, 1), 0.3, np.float32)
    np.testing.assert_allclose(augment_color.gaussian_blur(constant, 1.5, 2), constant, atol=1e-6)
    image = random_images(9, (8, 8, 1))
    np.testing.assert_array_equal(augment_color.gaussian_blur(image, 1.5, 0), image)


def test_blur_and_crop_gradients_match_finite_differences():
    # Both ops are smooth in the pixels (and blur in sigma): reverse-mode gradients
    # must match central finite differences (float32, hence the loose tolerance).
    image = jnp.asarray(random_images(10, (8, 8, 1)))
    tolerances = dict(order=1, modes=["rev"], eps=1e-2, atol=1e-2, rtol=1e-2)
    check_grads(jax.jit(lambda x, s: augment_color.gaussian_blur(x, s, 2)), (image, 1.2), **tolerances)
    check_grads(jax.jit(lambda x: augment_geometry.resized_crop(x, 1.3, 0.4, 6.5, 7.0)), (image,), **tolerances)


# ----------------------------------------------------------------------------- geometry


def test_resized_crop_matches_scipy_bilinear_resampling():
    image = random_images(11, (12, 10, 2))
    top, left, box_h, box_w = 2.25, 1.5, 7.0, 6.5
    rows = top + (np.arange(12) + 0.5) * box_h / 12 - 0.5
    cols = left + (np.arange(10) + 0.5) * box_w / 10 - 0.5
    grid = np.meshgrid(rows, cols, indexing="ij")
    expected = np.stack(
        [
            scipy.ndimage.map_coordinates(image[..., c].astype(np.float64), grid, order=1, mode="nearest")
            for c in range(2)
        ],
        axis=-1,
    )
    np.testing.assert_allclose(augment_geometry.resized_crop(image, top, left, box_h, box_w), expected, atol=1e-6)
    np.testing.assert_allclose(augment_geometry.resized_crop(image, 0.0, 0.0, 12.0, 10.0), image, atol=1e-6)


def test_resized_crop_of_a_ramp_scales_its_slope():
    # Bilinear resampling reproduces linear functions, so cropping a box of height h
    # out of H rows multiplies the row slope by h / H (away from the clamped edge).
    rows = np.arange(16, dtype=np.float32)[:, None, None]
    ramp = np.broadcast_to(0.05 * rows, (16, 16, 1)).astype(np.float32)
    out = np.asarray(augment_geometry.resized_crop(ramp, 4.0, 2.0, 8.0, 8.0))
    np.testing.assert_allclose(np.diff(out[:, 3, 0]), 0.05 * 8 / 16, atol=1e-6)
    np.testing.assert_allclose(out[0, 0, 0], 0.05 * (4.0 + 0.5 * 0.5 - 0.5), atol=1e-6)


def test_sampled_crop_boxes_respect_area_aspect_and_bounds():
    height, width = 24, 32
    sample = jax.jit(jax.vmap(lambda k: augment_geometry.sample_crop_box(k, height, width, (0.2, 0.9), (0.75, 4 / 3))))
    top, left, box_h, box_w = map(np.asarray, sample(jax.random.split(jax.random.key(0), 500)))
    area = box_h * box_w / (height * width)
    aspect = box_w / box_h
    assert np.all((top >= 0) & (left >= 0) & (top + box_h <= height + 1e-4) & (left + box_w <= width + 1e-4))
    assert np.all((area >= 0.2 - 1e-5) & (area <= 0.9 + 1e-5))
    assert np.all((aspect >= 0.75 - 1e-5) & (aspect <= 4 / 3 + 1e-5))
    assert area.min() < 0.25 and area.max() > 0.85  # the whole range is used


def test_crop_box_falls_back_to_the_centred_clamped_aspect():
    # No box of area 1 and aspect 2 fits a square, so every draw falls back.
    top, left, box_h, box_w = augment_geometry.sample_crop_box(jax.random.key(0), 10, 10, (1.0, 1.0), (2.0, 2.0))
    np.testing.assert_allclose([top, left, box_h, box_w], [2.5, 0.0, 5.0, 10.0], atol=1e-6)


def test_rotation_by_quarter_turn_is_rot90_and_integer_shift_is_exact():
    image = random_images(12, (7, 7, 2))
    rotated = augment_geometry.rotate_and_translate(image, np.pi / 2, (0.0, 0.0))
    np.testing.assert_allclose(rotated, np.rot90(image, k=1, axes=(0, 1)), atol=1e-5)
    shifted = np.asarray(augment_geometry.rotate_and_translate(image, 0.0, (2.0, -1.0), fill_value=0.0))
    expected = np.zeros_like(image)
    expected[2:, :-1] = image[:-2, 1:]  # content moves down 2 rows and left 1 column
    np.testing.assert_allclose(shifted, expected, atol=1e-6)


def test_rotation_matches_scipy_affine_transform():
    image = random_images(13, (9, 11, 1))
    angle, shift = 0.3, (0.7, -1.2)
    center = np.array([(9 - 1) / 2, (11 - 1) / 2])
    # Output (row, col) -> input (row, col) = M (o - c - t) + c.
    matrix = np.array([[np.cos(angle), np.sin(angle)], [-np.sin(angle), np.cos(angle)]])
    offset = center - matrix @ (center + np.array(shift))
    expected = scipy.ndimage.affine_transform(
        image[..., 0].astype(np.float64), matrix, offset=offset, order=1, mode="grid-constant", cval=0.0
    )
    got = augment_geometry.rotate_and_translate(image, angle, shift, fill_value=0.0)
    np.testing.assert_allclose(np.asarray(got)[..., 0], expected, atol=1e-5)


def test_flip_mirrors_columns():
    image = random_images(14, (4, 6, 3))
    flip = augment_geometry.random_flip_left_right
    np.testing.assert_array_equal(flip(jax.random.key(0), image, prob=1.0), image[:, ::-1])
    np.testing.assert_array_equal(flip(jax.random.key(0), image, prob=0.0), image)


def test_cutout_erases_the_clipped_square():
    image = np.ones((8, 8, 1), np.float32)
    out = np.asarray(augment_geometry.cutout(image, 0, 5, (4, 3), fill_value=0.25))
    expected = image.copy()
    expected[0:2, 4:7] = 0.25  # rows [-2, 2) clipped to [0, 2), cols [4, 7)
    np.testing.assert_array_equal(out, expected)
    sizes = [
        int((np.asarray(augment_geometry.random_cutout(jax.random.key(s), image, 0.375)) == 0).sum()) for s in range(10)
    ]
    assert augment_geometry.cutout_size(8, 8, 0.375) == (3, 3)
    assert all(4 <= n <= 9 for n in sizes)  # at least the 2x2 quarter inside the image


# ----------------------------------------------------------------------------- config and pipeline


def test_config_validation_and_hashability():
    config = AugmentConfig(crop_area=[0.2, 1.0])  # lists (from ml_collections) become tuples
    assert config.crop_area == (0.2, 1.0) and hash(config) == hash(AugmentConfig(crop_area=(0.2, 1.0)))
    for bad in (
        dict(crop_area=(0.0, 1.0)),
        dict(crop_area=(0.5, 0.2)),
        dict(crop_aspect=(-1.0, 1.0)),
        dict(grayscale_prob=1.5),
        dict(color_jitter_strength=-0.1),
        dict(rotate_degrees=200.0),
        dict(translate_fraction=1.0),
        dict(cutout_fraction=0.0),
        dict(blur_sigma=(2.0, 0.1)),
    ):
        with pytest.raises(ValueError, match=f"AugmentConfig.{next(iter(bad))}"):
            AugmentConfig(**bad)


@pytest.mark.parametrize("channels", [1, 3])
def test_everything_off_is_the_identity(channels):
    images = np.random.default_rng(15).integers(0, 256, (3, 8, 8, channels), dtype=np.uint8)
    config = AugmentConfig(
        crop_area=(1.0, 1.0), crop_aspect=(1.0, 1.0), flip=False, color_jitter_prob=0.0, grayscale_prob=0.0
    )
    out = augment_batch(jax.random.key(0), images, config)
    assert out.dtype == jnp.float32 and out.shape == images.shape
    np.testing.assert_allclose(out, images / 255.0, atol=1e-6)
    zero_strength = AugmentConfig(
        color_jitter_strength=0.0, **{k: v for k, v in OFF.items() if k != "color_jitter_prob"}
    )
    np.testing.assert_allclose(augment_batch(jax.random.key(1), images, zero_strength), images / 255.0, atol=1e-6)


FULL_RGB = AugmentConfig(blur_prob=0.5, rotate_degrees=10.0, translate_fraction=0.1, cutout_prob=0.5)


def test_full_pipeline_shapes_dtype_range_and_key_determinism():
    images = np.random.default_rng(16).integers(0, 256, (4, 24, 24, 3), dtype=np.uint8)
    first = augment_batch(jax.random.key(0), images, config=FULL_RGB)
    chex.assert_shape(first, (4, 24, 24, 3))
    assert first.dtype == jnp.float32
    assert float(first.min()) >= 0.0 and float(first.max()) <= 1.0
    np.testing.assert_array_equal(first, augment_batch(jax.random.key(0), images, config=FULL_RGB))
    assert not np.allclose(first, augment_batch(jax.random.key(1), images, config=FULL_RGB))
    # uint8 input is x / 255: the same views as from the float image.
    np.testing.assert_allclose(first, augment_batch(jax.random.key(0), images / 255.0, config=FULL_RGB), atol=1e-6)


def test_identical_images_in_a_batch_get_independent_views():
    image = np.random.default_rng(17).integers(0, 256, (24, 24, 3), dtype=np.uint8)
    views = np.asarray(augment_batch(jax.random.key(2), np.stack([image] * 4), config=FULL_RGB))
    for a, b in itertools.combinations(range(4), 2):
        assert not np.allclose(views[a], views[b])


def test_two_views_are_independent_augmentations_of_the_same_rows():
    images = np.random.default_rng(18).integers(0, 256, (3, 8, 8, 1), dtype=np.uint8)
    config = DIGITS
    first, second = two_views(jax.random.key(3), images, config)
    keys = jax.vmap(jax.random.split)(augment.example_keys(jax.random.key(3), 3))
    for n in range(3):  # view v of row n uses half v of split(fold_in(key, n))
        np.testing.assert_allclose(first[n], augment.augment_image(keys[n, 0], images[n] / 255.0, config), atol=1e-6)
        np.testing.assert_allclose(second[n], augment.augment_image(keys[n, 1], images[n] / 255.0, config), atol=1e-6)
    assert not np.allclose(first, second)


def test_a_device_s_rows_draw_the_views_of_the_whole_batch():
    images = np.random.default_rng(21).integers(0, 256, (6, 8, 8, 1), dtype=np.uint8)
    whole = two_views(jax.random.key(4), images, DIGITS)
    part = jax.jit(augment.two_views, static_argnames="config")(jax.random.key(4), images[2:4], DIGITS, first_index=2)
    for v in range(2):
        np.testing.assert_allclose(part[v], whole[v][2:4], atol=1e-6)
    one = augment_batch(jax.random.key(5), images, DIGITS)
    np.testing.assert_allclose(
        jax.jit(augment.augment_batch, static_argnames="config")(jax.random.key(5), images[4:], DIGITS, first_index=4),
        one[4:], atol=1e-6)


def test_pipeline_flip_only_gives_image_or_mirror_and_grayscale_only_gives_equal_channels():
    images = np.stack([random_images(19, (6, 6, 3))] * 16)
    flipped = np.asarray(augment_batch(jax.random.key(4), images, AugmentConfig(**{**OFF, "flip": True})))
    is_same = [np.allclose(v, images[0]) for v in flipped]
    is_mirror = [np.allclose(v, images[0][:, ::-1]) for v in flipped]
    assert all(s or m for s, m in zip(is_same, is_mirror)) and any(is_same) and any(is_mirror)
    gray = np.asarray(augment_batch(jax.random.key(5), images, AugmentConfig(**{**OFF, "grayscale_prob": 1.0})))
    np.testing.assert_allclose(gray[..., 0], gray[..., 1], atol=1e-6)
    np.testing.assert_allclose(gray[..., 0], gray[..., 2], atol=1e-6)


def test_digits_config_keeps_digits_and_has_no_flip():
    from rl_repr.data.images.digits import load_digits

    config = DIGITS
    assert not config.flip and config.crop_area[0] >= 0.5 and config.rotate_degrees <= 15
    test = load_digits("test")
    views = np.asarray(augment_batch(jax.random.key(6), test.images, config))
    chex.assert_shape(views, (360, 8, 8, 1))
    assert views.min() >= 0.0 and views.max() <= 1.0
    # Views stay recognisable: 1-nearest-neighbour on clean training digits labels
    # most of them correctly (about 80%; 98.6% on clean test digits, chance 10%),
    # and a view correlates with its source (about 0.76) far more than two digits
    # of different classes do (about 0.46).
    train = load_digits("train")
    train_flat = train.images.reshape(train.num_examples, -1) / 255.0
    flat = views.reshape(360, -1)
    distances = ((flat[:, None, :] - train_flat[None, :, :]) ** 2).sum(-1)
    nearest_label_accuracy = np.mean(train.labels[distances.argmin(1)] == test.labels)
    assert nearest_label_accuracy > 0.7
    clean = test.images.reshape(360, -1) / 255.0
    own = np.mean([np.corrcoef(a, b)[0, 1] for a, b in zip(flat, clean)])
    assert own > 0.65


def test_jit_compiles_once_for_many_keys_and_equal_configs():
    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(key, images):
        return two_views(key, images, AugmentConfig(crop_area=(0.2, 1.0)))

    images = np.zeros((2, 8, 8, 3), np.uint8)
    for seed in range(3):
        step(jax.random.key(seed), images)


def test_sharded_batch_augments_like_a_single_device():
    mesh = Mesh(np.array(jax.devices()[:8]), ("data",))
    images = np.random.default_rng(20).integers(0, 256, (16, 8, 8, 1), dtype=np.uint8)
    config = DIGITS
    single = augment_batch(jax.random.key(7), images, config)
    sharded_images = jax.device_put(images, NamedSharding(mesh, PartitionSpec("data")))
    sharded = jax.jit(
        lambda k, x: augment_batch(k, x, config), out_shardings=NamedSharding(mesh, PartitionSpec("data"))
    )(jax.random.key(7), sharded_images)
    # Same random numbers and ops; only XLA's per-partition fusion may round differently.
    np.testing.assert_allclose(np.asarray(sharded), np.asarray(single), atol=1e-5)


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match=r"\[N, H, W, C\]"):
        augment_batch(jax.random.key(0), np.zeros((8, 8, 3), np.uint8), AugmentConfig())
    with pytest.raises(ValueError, match="C in"):
        augment.augment_image(jax.random.key(0), np.zeros((8, 8, 2), np.float32), AugmentConfig())
    with pytest.raises(ValueError, match="uint8"):
        augment_batch(jax.random.key(0), np.zeros((1, 8, 8, 3), np.int32), AugmentConfig())
