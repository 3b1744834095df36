"""Made-up handwritten characters: the rasteriser against a brute-force reference, optdigits'
format and normalisation, determinism, and that each made-up class is a class.

References: pixel centres tested against densely sampled points of each segment (the
distance to a segment, the slow way); the digits' storage rule ``round(count * 255 / 16)``;
nearest-class-mean accuracy as the check that images of a class resemble each other more
than they resemble other classes.
"""
import numpy as np
import pytest

from rl_repr.data.images import stroke_characters as sc


def test_rasteriser_matches_dense_sampling_of_the_segments_and_fills_the_box():
    rng = np.random.default_rng(0)
    strokes = [rng.uniform(0, 1, (3, 4, 2)), rng.uniform(0, 1, (3, 2, 2))]
    radius = np.array([1.2, 2.0, 2.6])
    bitmaps = sc.rasterize_trajectory(strokes, radius)
    assert bitmaps.shape == (3, 32, 32) and set(np.unique(bitmaps)) <= {0, 1}
    centres = np.stack(np.meshgrid(np.arange(32) + 0.5, np.arange(32) + 0.5, indexing="xy"), -1).reshape(-1, 2)
    for b in range(3):
        points = np.concatenate([s[b] for s in strokes])
        low, high = points.min(0), points.max(0)
        scale = (32 - 2 * radius[b]) / np.max(high - low)
        offset = (32 - scale * (high - low)) / 2 - scale * low
        dense = np.concatenate([np.linspace(s[b][i], s[b][i + 1], 2000) * scale + offset
                                for s in strokes for i in range(len(s[b]) - 1)])
        nearest = np.min(np.linalg.norm(centres[:, None] - dense[None], axis=-1), axis=1)
        expected = (nearest <= radius[b]).reshape(32, 32)
        # Equal except where a pixel centre sits on the pen's edge (within the sampling error).
        disagree = bitmaps[b] != expected
        assert np.all(np.abs(nearest.reshape(32, 32)[disagree] - radius[b]) < 1e-2)
        rows, cols = np.flatnonzero(bitmaps[b].any(1)), np.flatnonzero(bitmaps[b].any(0))
        assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 >= 30  # the longer side fills the box


def test_characters_are_8x8_counts_deterministic_and_independent_per_class():
    data = sc.render_stroke_characters(4, 5, seed=3, label_offset=80)
    assert data.images.shape == (20, 8, 8, 1) and data.images.dtype == np.uint8
    np.testing.assert_array_equal(data.labels, np.repeat([80, 81, 82, 83], 5))
    assert data.num_classes == 84
    counts = data.images.astype(float) * 16 / 255
    np.testing.assert_allclose(counts, np.round(counts), atol=0.04)
    assert counts.min() >= 0 and counts.max() <= 16 and counts.max() > 8
    np.testing.assert_array_equal(data.images, sc.render_stroke_characters(4, 5, seed=3).images)
    assert not np.array_equal(data.images, sc.render_stroke_characters(4, 5, seed=4).images)
    # One random stream per class: adding classes changes none of the first ones.
    np.testing.assert_array_equal(sc.render_stroke_characters(6, 5, seed=3).images[:20], data.images)
    with pytest.raises(ValueError, match="at least 1"):
        sc.render_stroke_characters(0, 5)
    with pytest.raises(ValueError, match="point_jitter"):
        sc.render_stroke_characters(2, 5, point_jitter=0.7)


def test_images_of_a_made_up_class_resemble_each_other():
    data = sc.render_stroke_characters(20, 12, seed=0)
    x = data.images.reshape(len(data.labels), -1).astype(float)
    train = np.tile(np.arange(12) < 6, 20)  # half of each class for the class means
    means = np.stack([x[train & (data.labels == c)].mean(0) for c in range(20)])
    predicted = np.argmin(((x[~train, None] - means[None]) ** 2).sum(-1), axis=1)
    assert np.mean(predicted == data.labels[~train]) > 0.7  # chance: 0.05


def test_templates_are_pen_paths_of_one_to_three_strokes():
    templates = sc.stroke_templates(200, seed=0)
    assert all(1 <= len(t) <= 3 for t in templates)
    assert all(3 <= len(stroke) <= 7 for t in templates for stroke in t)
    assert all(np.any(np.all(t[i][0] == t[i - 1], axis=1)) for t in templates for i in range(1, len(t)))


def test_warp_bends_each_image_and_is_off_by_default():
    plain = sc.render_stroke_characters(6, 4, seed=1)
    np.testing.assert_array_equal(sc.render_stroke_characters(6, 4, seed=1, warp=0.0).images, plain.images)
    warped = sc.render_stroke_characters(6, 4, seed=1, warp=0.1)
    assert warped.images.shape == plain.images.shape and not np.array_equal(warped.images, plain.images)
    strokes = [np.random.default_rng(0).uniform(0, 1, (2, 9, 2))]
    bent = sc._warp(strokes, 0.05, np.random.default_rng(1))[0]
    height = np.ptp(strokes[0][..., 1], axis=1)[:, None, None]
    # A smooth field: no point moves more than amplitude * height * J / sqrt(J) (J = 3 waves).
    assert np.all(np.abs(bent - strokes[0]) <= 0.05 * height * 3 / np.sqrt(3) + 1e-9)
    with pytest.raises(ValueError, match="warp"):
        sc.render_stroke_characters(2, 2, warp=0.6)


def test_larger_characters_are_the_same_classes_with_grey_edges():
    small = sc.render_stroke_characters(4, 3, seed=5)
    large = sc.render_stroke_characters(4, 3, seed=5, size=32)
    assert large.images.shape == (12, 32, 32, 1) and large.images.dtype == np.uint8
    np.testing.assert_array_equal(large.labels, small.labels)
    levels = np.unique(large.images)
    assert levels[0] == 0 and levels[-1] == 255 and len(levels) == 5  # 2x2 supersampling: 0, 1/4 .. 1
    # The same drawing reduced to 8x8 ink fractions looks like the 8x8 rendering.
    reduced = large.images[..., 0].reshape(12, 8, 4, 8, 4).mean(axis=(2, 4))
    assert np.corrcoef(reduced.ravel(), small.images.ravel().astype(float))[0, 1] > 0.8
    with pytest.raises(ValueError, match="size=12"):
        sc.render_stroke_characters(2, 2, size=12)


def test_characters_dataset_splits_every_fifth_image_of_each_class():
    import ml_collections

    from rl_repr.core.config import ConfigError
    from rl_repr.data.images import sources

    config = ml_collections.ConfigDict(dict(dataset="characters:classes=3,images=10,size=16", seed=7))
    train, test = sources.load_train_test(config)
    assert train.images.shape == (24, 16, 16, 1) and test.images.shape == (6, 16, 16, 1)
    assert np.bincount(test.labels).tolist() == [2, 2, 2] and train.num_classes == 3
    assert not sources.is_process_shard(config)
    with pytest.raises(ConfigError, match="dataset 'characters' takes .*'colour' .* not one of them"):
        sources.made_up_characters("characters:colour=1")
