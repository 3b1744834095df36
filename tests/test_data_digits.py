"""Tests for the bundled digits set and host/device batching (rl_repr.data.digits, .batching).

References are independent of the code under test: scikit-learn's raw arrays and
the split rule written out in numpy; the device layout of a sharded batch read
back shard by shard; sampling statistics against their closed forms.
"""

import itertools
import subprocess
import sys

import jax
import numpy as np
import pytest
from jax.sharding import Mesh, PartitionSpec
from sklearn.datasets import load_digits as sklearn_load_digits

from rl_repr.core.drivers import Driver
from rl_repr.data.images import batching, digits


# ----------------------------------------------------------------------------- digits


@pytest.fixture(scope="module")
def raw_digits():
    bunch = sklearn_load_digits()
    return bunch.images, bunch.target


def test_split_sizes_and_layout():
    train, test = digits.load_digits("train"), digits.load_digits("test")
    assert (train.num_examples, test.num_examples) == (1437, 360)
    for dataset in (train, test):
        assert dataset.images.dtype == np.uint8 and dataset.labels.dtype == np.int32
        assert dataset.image_shape == (8, 8, 1)
        assert dataset.num_classes == 10 and dataset.name == "digits"


def test_split_rule_and_pixel_scaling_match_sklearn(raw_digits):
    raw_images, raw_labels = raw_digits
    index = np.arange(len(raw_labels))
    for split, keep in (("test", index % 5 == 0), ("train", index % 5 != 0)):
        dataset = digits.load_digits(split)
        expected = np.round(raw_images[keep] * 255.0 / 16.0).astype(np.uint8)
        np.testing.assert_array_equal(dataset.images[..., 0], expected)
        np.testing.assert_array_equal(dataset.labels, raw_labels[keep])


def test_pixel_range_and_label_distribution(raw_digits):
    _, raw_labels = raw_digits
    train, test = digits.load_digits("train"), digits.load_digits("test")
    for dataset in (train, test):
        assert dataset.images.min() == 0 and dataset.images.max() == 255
        # Every class is present with at least 5% of the split (the set is near-balanced).
        counts = np.bincount(dataset.labels, minlength=10)
        assert counts.min() >= 0.05 * dataset.num_examples
    # Train and test together are exactly scikit-learn's class counts.
    np.testing.assert_array_equal(
        np.bincount(train.labels, minlength=10) + np.bincount(test.labels, minlength=10),
        np.bincount(raw_labels, minlength=10),
    )


def test_cached_arrays_are_read_only():
    dataset = digits.load_digits("train")
    with pytest.raises(ValueError):
        dataset.images[0, 0, 0, 0] = 1
    assert digits.load_digits("train").images[0, 0, 0, 0] == dataset.images[0, 0, 0, 0]


def test_bad_split_and_bad_dataset_arrays_are_rejected():
    with pytest.raises(ValueError, match="'train' or 'test'"):
        digits.load_digits("validation")
    with pytest.raises(ValueError, match="uint8"):
        digits.ImageDataset(np.zeros((2, 8, 8, 1), np.float32), np.zeros(2, np.int32), 10, "x")
    with pytest.raises(ValueError, match="one integer label per image"):
        digits.ImageDataset(np.zeros((2, 8, 8, 1), np.uint8), np.zeros(3, np.int32), 10, "x")


def test_importing_the_package_does_not_import_tensorflow():
    code = (
        "import sys, rl_repr.data.images.digits as d, rl_repr.data.images.augment as a, rl_repr.data.images.sources; "
        "d.load_digits; a.AugmentConfig; "
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# ----------------------------------------------------------------------------- global batches


def test_global_batch_is_sharded_along_data_on_8_devices():
    mesh = Mesh(np.array(jax.devices()[:8]), ("data",))
    images = np.arange(16 * 3, dtype=np.float32).reshape(16, 3)
    labels = np.arange(16, dtype=np.int32)
    batch = Driver("jit", mesh).put_batch({"image": images, "label": labels})
    assert batch["image"].shape == (16, 3) and batch["label"].shape == (16,)
    assert batch["image"].sharding.spec == PartitionSpec("data")
    np.testing.assert_array_equal(np.asarray(batch["image"]), images)
    # Device k of the mesh holds rows [2k, 2k + 2).
    for shard in batch["label"].addressable_shards:
        position = list(mesh.devices.flat).index(shard.device)
        np.testing.assert_array_equal(np.asarray(shard.data), labels[2 * position : 2 * position + 2])


# ----------------------------------------------------------------------------- epochs of a permutation


def test_epoch_batches_cover_each_epoch_without_repeats():
    num_examples, batch_size = 10, 3  # 3 steps per epoch, one example dropped each epoch
    stream = batching.epoch_permutation_batches(seed=7, num_examples=num_examples, batch_size=batch_size)
    batches = list(itertools.islice(stream, 6))
    for epoch in range(2):
        seen = np.concatenate(batches[3 * epoch : 3 * epoch + 3])
        assert len(seen) == 9 and len(set(seen.tolist())) == 9
        assert set(seen.tolist()) <= set(range(num_examples))
    # A fresh permutation per epoch (the two epochs differ in order).
    assert not np.array_equal(np.concatenate(batches[:3]), np.concatenate(batches[3:]))


def test_epoch_batches_resume_and_determinism():
    full = list(itertools.islice(batching.epoch_permutation_batches(3, 50, 8), 20))
    resumed = list(itertools.islice(batching.epoch_permutation_batches(3, 50, 8, start_step=13), 7))
    for expected, got in zip(full[13:], resumed):
        np.testing.assert_array_equal(expected, got)
    again = list(itertools.islice(batching.epoch_permutation_batches(3, 50, 8), 20))
    other_seed = list(itertools.islice(batching.epoch_permutation_batches(4, 50, 8), 20))
    assert all(np.array_equal(a, b) for a, b in zip(full, again))
    assert not all(np.array_equal(a, b) for a, b in zip(full, other_seed))


def test_epoch_batches_process_slices_tile_the_global_batch():
    global_stream = itertools.islice(batching.epoch_permutation_batches(1, 40, 8, start_step=2), 6)
    local_streams = [
        itertools.islice(
            batching.epoch_permutation_batches(1, 40, 8, start_step=2, process_index=i, process_count=2), 6
        )
        for i in range(2)
    ]
    for global_batch, first, second in zip(global_stream, *local_streams):
        assert first.shape == (4,) and second.shape == (4,)
        np.testing.assert_array_equal(np.concatenate([first, second]), global_batch)


def test_epoch_batches_reject_bad_arguments():
    with pytest.raises(ValueError, match="multiple of 3"):
        next(batching.epoch_permutation_batches(0, 40, 8, process_index=0, process_count=3))
    with pytest.raises(ValueError, match="does not fit"):
        next(batching.epoch_permutation_batches(0, 4, 8))
    with pytest.raises(ValueError, match="process_index"):
        next(batching.epoch_permutation_batches(0, 40, 8, process_index=2, process_count=2))
