"""Rendered glyphs: optdigits' 4x4 block counts, shape and range, determinism, distinct classes.

References: the block count written as explicit loops over the 4x4 blocks; the digits'
own storage rule ``round(count * 255 / 16)``; nearest-class-mean accuracy as the check that
the letters are distinct classes.
"""
import numpy as np
import pytest

from rl_repr.data.images import rendered_glyphs as rg


def test_block_counts_match_a_loop_over_4x4_blocks():
    bitmap = np.random.default_rng(0).integers(0, 2, (32, 32))
    expected = np.zeros((8, 8), int)
    for i in range(8):
        for j in range(8):
            expected[i, j] = sum(bitmap[4 * i + u, 4 * j + v] for u in range(4) for v in range(4))
    np.testing.assert_array_equal(rg.blocks_to_counts(bitmap), expected)
    with pytest.raises(ValueError, match="multiple of the block"):
        rg.blocks_to_counts(np.zeros((30, 32)))


def test_glyphs_are_8x8_counts_0_to_16_deterministic_and_labelled_by_character():
    data = rg.render_glyphs("ABX", 6, seed=3, label_offset=80)
    assert data.images.shape == (18, 8, 8, 1) and data.images.dtype == np.uint8
    np.testing.assert_array_equal(data.labels, np.repeat([80, 81, 82], 6))
    assert data.num_classes == 83
    # Stored as the digits are: round(count * 255 / 16) with integer counts in 0..16.
    counts = data.images.astype(float) * 16 / 255
    np.testing.assert_allclose(counts, np.round(counts), atol=0.04)
    assert counts.min() >= 0 and counts.max() <= 16 and counts.max() > 8  # ink fills whole blocks
    again = rg.render_glyphs("ABX", 6, seed=3, label_offset=80)
    np.testing.assert_array_equal(data.images, again.images)
    assert not np.array_equal(data.images, rg.render_glyphs("ABX", 6, seed=4).images)
    # One random stream per class: a class's images do not depend on the other characters.
    np.testing.assert_array_equal(rg.render_glyphs("AQ", 6, seed=3).images[:6], data.images[:6])


def test_letters_are_distinct_classes_and_digits_are_refused():
    data = rg.render_glyphs("AHOTX", 12, seed=0)
    x = data.images.reshape(len(data.labels), -1).astype(float)
    train = np.tile(np.arange(12) < 6, 5)  # half of each class for the class means
    means = np.stack([x[train & (data.labels == c)].mean(0) for c in range(5)])
    predicted = np.argmin(((x[~train, None] - means[None]) ** 2).sum(-1), axis=1)
    assert np.mean(predicted == data.labels[~train]) > 0.8
    with pytest.raises(ValueError, match="digits"):
        rg.render_glyphs("AB7", 2)
    with pytest.raises(ValueError, match="without repeats"):
        rg.render_glyphs("AA", 2)
