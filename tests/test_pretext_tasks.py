"""Each pretext task's inputs and labels, checked against what the papers define (no training)."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rl_repr.pretext import inpainting, patches, rotation, tasks
from rl_repr.pretext.config import pretext_defaults
from rl_repr.pretext.permutations import maximal_hamming_permutations, minimum_hamming_distance

KEYS = jax.random.split(jax.random.PRNGKey(0), 64)


def _image(side=32, channels=1, seed=0):
    return jnp.asarray(np.random.default_rng(seed).random((side, side, channels)), jnp.float32)


# ---------------------------------------------------------------- rotation
def test_rotated_image_and_its_label():
    image = _image(8, 3)
    turned = jax.jit(jax.vmap(rotation.rotate, in_axes=(None, 0)))(image, jnp.arange(4))
    for k in range(4):
        np.testing.assert_array_equal(turned[k], np.rot90(np.asarray(image), k))
    images = jnp.stack([_image(8, 1, s) for s in range(3)])
    batch = jax.jit(rotation.rotation_batch, static_argnames="all_four")
    inputs, labels = batch(KEYS[:3], images, all_four=True)
    assert inputs.shape == (12, 8, 8, 1) and labels.tolist() == [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3
    np.testing.assert_array_equal(inputs[2 * 3 + 1], np.rot90(np.asarray(images[1]), 2))
    inputs, labels = batch(KEYS, jnp.repeat(images[:1], 64, axis=0), all_four=False)
    assert set(np.asarray(labels).tolist()) == {0, 1, 2, 3}
    for n in range(4):
        np.testing.assert_array_equal(inputs[n], np.rot90(np.asarray(images[0]), int(labels[n])))
    with pytest.raises(ValueError, match="square"):
        rotation.rotate(jnp.zeros((4, 6, 1)), jnp.int32(1))


# ---------------------------------------------------------------- jigsaw permutations
def _greedy_reference(num_permutations, num_tiles, first):
    """Max-min Hamming greedy written plainly (ties: larger sum, then lower index)."""
    candidates = list(itertools.permutations(range(num_tiles)))
    chosen = [first]
    while len(chosen) < num_permutations:
        def score(i):
            d = [sum(a != b for a, b in zip(candidates[i], candidates[j])) for j in chosen]
            return (min(d), sum(d), -i)
        chosen.append(max((i for i in range(len(candidates)) if i not in chosen), key=score))
    return np.array([candidates[i] for i in chosen])


def test_permutation_set_is_the_greedy_maximal_hamming_set():
    for num_permutations in (2, 5, 12):
        ours = maximal_hamming_permutations(num_permutations, num_tiles=4, seed=3)
        first = int(np.random.default_rng(3).integers(24))
        np.testing.assert_array_equal(ours, _greedy_reference(num_permutations, 4, first))


def test_permutation_set_of_100_keeps_every_pair_6_tiles_apart():
    permutations = maximal_hamming_permutations(100)
    assert permutations.shape == (100, 9)
    assert all(sorted(p) == list(range(9)) for p in permutations.tolist())
    assert len({tuple(p) for p in permutations.tolist()}) == 100
    assert minimum_hamming_distance(permutations) >= 6  # Noroozi & Favaro's mean-greedy sets: 2-3


# ---------------------------------------------------------------- relative position
@pytest.mark.parametrize("patch_size,gap,jitter", [(8, 3, 1), (6, 5, 2)])
def test_relative_position_patches_positions_and_gaps(patch_size, gap, jitter):
    side, stride = 32, patch_size + gap
    image = _image(side)
    layout = jax.jit(jax.vmap(lambda k: patches.relative_position_layout(k, side, patch_size, gap, jitter)))
    pair = jax.jit(jax.vmap(lambda k: patches.relative_position_pair(k, image, patch_size, gap, jitter)))
    centres, neighbours, labels = (np.asarray(x) for x in layout(KEYS))
    centre_patches, neighbour_patches, pair_labels = (np.asarray(x) for x in pair(KEYS))
    np.testing.assert_array_equal(pair_labels, labels)
    assert set(labels.tolist()) == set(range(8))
    for centre, neighbour, label, c_patch, n_patch in zip(centres, neighbours, labels, centre_patches,
                                                          neighbour_patches):
        row, col = patches.NEIGHBOUR_CELLS[int(label)]
        expected = centre + (np.array([row, col]) - 1) * stride
        assert np.all(np.abs(neighbour - expected) <= 2 * jitter)
        for corner in (centre, neighbour):
            assert np.all(corner >= 0) and np.all(corner + patch_size <= side)
        # the two patches never touch: along an axis where the cells differ, the facing edges are
        # at least gap - 2 jitter pixels apart
        separation = [neighbour[a] - (centre[a] + patch_size) if d > 0 else centre[a] - (neighbour[a] + patch_size)
                      for a, d in enumerate((row - 1, col - 1)) if d != 0]
        assert max(separation) >= gap - 2 * jitter > 0
        np.testing.assert_array_equal(c_patch, image[centre[0]:centre[0] + patch_size, centre[1]:centre[1] + patch_size])
        np.testing.assert_array_equal(n_patch, image[neighbour[0]:neighbour[0] + patch_size,
                                                     neighbour[1]:neighbour[1] + patch_size])
    with pytest.raises(ValueError, match="needs"):
        patches.relative_position_layout(KEYS[0], 20, patch_size, gap, jitter)


# ---------------------------------------------------------------- jigsaw tiles
def test_jigsaw_tiles_come_from_their_cells_in_permuted_order():
    side, tile = 32, 8
    cell, origin = side // 3, (side - 3 * (side // 3)) // 2
    permutations = jnp.asarray(maximal_hamming_permutations(10))
    image = _image(side)
    corners, labels = (np.asarray(x) for x in jax.jit(jax.vmap(
        lambda k: patches.jigsaw_layout(k, side, tile, 10)))(KEYS[:16]))
    tiles, tile_labels = (np.asarray(x) for x in jax.jit(jax.vmap(
        lambda k: patches.jigsaw_tiles(k, image, permutations, tile)))(KEYS[:16]))
    np.testing.assert_array_equal(tile_labels, labels)
    assert tiles.shape == (16, 9, tile, tile, 1)
    for example_corners, label, example_tiles in zip(corners, labels, tiles):
        for index, (y, x) in enumerate(example_corners):
            row, col = divmod(index, 3)
            assert origin + row * cell <= y <= origin + (row + 1) * cell - tile
            assert origin + col * cell <= x <= origin + (col + 1) * cell - tile
        for i, source in enumerate(np.asarray(permutations[int(label)])):
            y, x = example_corners[source]
            np.testing.assert_array_equal(example_tiles[i], image[y:y + tile, x:x + tile])


# ---------------------------------------------------------------- inpainting masks
def test_mask_shapes_and_areas():
    side, fraction = 32, 0.25
    central = np.asarray(inpainting.central_mask(side, fraction))
    rows, cols = np.nonzero(central)
    assert central.sum() == 16 * 16 and (rows.min(), rows.max(), cols.min(), cols.max()) == (8, 23, 8, 23)
    blocks = np.asarray(jax.jit(jax.vmap(lambda k: inpainting.random_block_mask(k, side, fraction, 4)))(KEYS))
    regions = np.asarray(jax.jit(jax.vmap(lambda k: inpainting.random_region_mask(k, side, fraction)))(KEYS))
    assert blocks.shape == regions.shape == (64, side, side)
    areas = blocks.sum(axis=(1, 2))
    assert np.all(areas >= 64) and np.all(areas <= 4 * 64) and np.any(areas < 4 * 64)  # 4 blocks of 8x8, overlapping
    assert np.all(regions.sum(axis=(1, 2)) == round(fraction * side * side))
    assert len({r.tobytes() for r in regions}) == 64


def test_inpainting_inputs_hide_the_mask_and_the_loss_counts_only_masked_pixels():
    config = pretext_defaults()
    config.tasks = ("inpainting",)
    config.inpainting.mask = "random_block"
    images = jnp.stack([_image(32, 1, s) for s in range(4)])
    inputs, targets = jax.jit(lambda x: tasks.task_inputs(config, KEYS[0], x, jnp.zeros((1, 9), jnp.int32)))(images)
    masked, (originals, masks) = inputs["inpainting"], targets["inpainting"]
    np.testing.assert_array_equal(originals, images)
    np.testing.assert_array_equal(np.where(masks[..., None], 0.5, images), masked)
    reconstruction = np.random.default_rng(1).random(images.shape).astype(np.float32)
    total, count = inpainting.masked_squared_error(reconstruction, images, masks)
    m = np.asarray(masks)
    expected = np.sum(((reconstruction - np.asarray(images))[..., 0] ** 2)[m])
    np.testing.assert_allclose(total, expected, rtol=1e-5)
    assert int(count) == m.sum()


def test_classification_loss_terms_match_numpy_cross_entropy():
    logits = np.random.default_rng(0).normal(size=(6, 8)).astype(np.float32)
    labels = np.array([0, 3, 7, 7, 2, 1])
    terms = tasks.loss_terms({"relative_position": jnp.asarray(logits)}, {"relative_position": jnp.asarray(labels)})
    shifted = logits - logits.max(1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
    term = terms["relative_position"]
    np.testing.assert_allclose(term.total, -log_softmax[np.arange(6), labels].sum(), rtol=1e-5)
    assert float(term.count) == 6 and float(term.correct) == np.sum(logits.argmax(1) == labels)


def test_examples_draw_by_global_index():
    """Rows 4..7 of a batch draw the same puzzles whether or not rows 0..3 are in the batch."""
    config = pretext_defaults()
    config.tasks = ("relative_position", "jigsaw")
    images = jnp.stack([_image(32, 1, s) for s in range(8)])
    permutations = jnp.asarray(maximal_hamming_permutations(10))
    make = jax.jit(lambda x, first: tasks.task_inputs(config, KEYS[0], x, permutations, first_index=first)[1])
    whole = make(images, 0)
    shifted = make(jnp.roll(images, -4, axis=0), 4)  # image 4 + n at row n, with global index 4 + n
    for task in config.tasks:
        np.testing.assert_array_equal(whole[task][4:], shifted[task][:4])
