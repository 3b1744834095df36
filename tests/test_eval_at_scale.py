"""Evaluation at scale on 8 fake devices: the sharded kNN and the SGD linear classifier against the
in-memory kNN and the L-BFGS probe on digits, and the saved label subsets of fine-tuning."""
import os

import chex
import jax
import numpy as np
import pytest

from rl_repr.core.errors import DataError
from rl_repr.core.mesh import make_mesh
from rl_repr.data.images.digits import load_digits
from rl_repr.evaluation import label_subsets
from rl_repr.evaluation.feature_bank import feature_bank, in_memory_bank
from rl_repr.evaluation.knn import knn_accuracy
from rl_repr.evaluation.linear_classifier import linear_classifier_accuracy, train_linear_classifier
from rl_repr.evaluation.linear_probe import linear_probe
from rl_repr.evaluation.sharded_knn import sharded_knn_accuracy


@pytest.fixture(scope="module")
def digits():
    """Raw-pixel features of the digits (1437 train rows, 360 test rows: neither divides by 8)."""
    train, test = load_digits("train"), load_digits("test")
    flat = lambda d: d.images.reshape(d.num_examples, -1).astype(np.float32)  # noqa: E731
    return flat(train), train.labels, flat(test), test.labels


def test_sharded_knn_equals_the_in_memory_knn_on_digits(digits):
    x, y, x_test, y_test = digits
    projected = x @ np.random.default_rng(0).standard_normal((64, 16)).astype(np.float32)
    projected_test = x_test @ np.random.default_rng(0).standard_normal((64, 16)).astype(np.float32)
    mesh = make_mesh(8)
    for (train, test), k in [((x, x_test), 20), ((projected, projected_test), 5)]:
        expected = knn_accuracy(train, y, test, y_test, k=k, num_classes=10)
        got = sharded_knn_accuracy(in_memory_bank(train, y, mesh), in_memory_bank(test, y_test, mesh), k=k,
                                   num_classes=10, chunk_size=16)  # 45 queries per device: 3 chunks, one overlapping
        assert got == expected
    # a bank smaller than k on each device (5 rows per device, k = 12): the merge still finds the top 12
    small = sharded_knn_accuracy(in_memory_bank(x[:40], y[:40], mesh), in_memory_bank(x_test, y_test, mesh), k=12,
                                 num_classes=10)
    assert small == knn_accuracy(x[:40], y[:40], x_test, y_test, k=12, num_classes=10)


def test_rows_without_a_label_are_never_neighbours_nor_scored(digits):
    x, y, x_test, y_test = digits
    mesh = make_mesh(8)
    hidden = np.where(np.arange(len(y)) % 3 == 0, -1, y)  # a third of the bank unlabelled (unreadable images)
    bank = feature_bank(x, hidden, np.arange(len(y)), mesh, num_examples=len(y))
    queries = feature_bank(x_test, np.where(np.arange(len(y_test)) < 100, -1, y_test), np.arange(len(y_test)), mesh,
                           num_examples=len(y_test))
    keep = hidden >= 0
    expected = knn_accuracy(x[keep], y[keep], x_test[100:], y_test[100:], k=10, num_classes=10)
    assert sharded_knn_accuracy(bank, queries, k=10, num_classes=10) == expected


def test_sgd_linear_classifier_agrees_with_the_lbfgs_probe(digits):
    x, y, x_test, y_test = digits
    l2 = 1e-3
    probe = linear_probe(x, y, x_test, y_test, l2_grid=(l2,))["accuracy"]
    mesh = make_mesh(8)
    classifier = train_linear_classifier(in_memory_bank(x, y, mesh), num_classes=10, epochs=100, batch_size=256,
                                         base_lr=1.0, weight_decay=2 * l2, seed=0)
    accuracy = linear_classifier_accuracy(classifier, in_memory_bank(x_test, y_test, mesh))
    assert abs(accuracy["top1"] - probe) <= 0.005, (accuracy, probe)  # within half a point
    assert accuracy["top1"] <= accuracy["top5"] <= 1.0 and accuracy["top5"] > 0.99


@pytest.mark.parametrize("optimizer", ["sgd", "lars"])
def test_sharded_linear_classifier_trains_as_on_one_device(digits, optimizer):
    x, y, _, _ = digits
    trained = [jax.device_get(train_linear_classifier(in_memory_bank(x, y, make_mesh(devices)), num_classes=10,
                                                      epochs=3, batch_size=256, optimizer=optimizer, seed=1).params)
               for devices in (8, 1)]
    chex.assert_trees_all_close(trained[0], trained[1], rtol=1e-4, atol=1e-5)


def test_label_subsets_are_drawn_once_saved_and_read_back(tmp_path):
    ids = np.array([f"class{c}/image{i:03d}.JPEG" for c in range(4) for i in range(50)])
    labels = np.repeat(np.arange(4), 50)
    path = str(tmp_path / "subsets" / "10pct.txt")
    rows = label_subsets.label_subset_rows(path, ids, labels, 0.1, seed=3)
    assert np.bincount(labels[rows]).tolist() == [5, 5, 5, 5]  # class-balanced
    assert open(path).read().splitlines() == list(ids[rows])
    # read back, not drawn again (another seed, another fraction: the file wins)
    np.testing.assert_array_equal(label_subsets.label_subset_rows(path, ids, labels, 0.5, seed=9), rows)
    other = label_subsets.label_subset_rows(str(tmp_path / "other.txt"), ids, labels, 0.1, seed=4)
    assert not np.array_equal(other, rows)
    # the published lists name files only, e.g. n01440764_10026.JPEG
    published = tmp_path / "1percent.txt"
    published.write_text("class2/image007.JPEG\n\n")
    np.testing.assert_array_equal(label_subsets.label_subset_rows(str(published), ids, labels, 0.01), [107])
    basenames = np.array([f"n{c:08d}_{i}.JPEG" for c in range(4) for i in range(50)])
    folder_ids = np.array([f"n{c:08d}/{name}" for c, name in zip(labels, basenames)])
    published.write_text("n00000003_12.JPEG\nn00000000_1.JPEG\n")
    np.testing.assert_array_equal(label_subsets.label_subset_rows(str(published), folder_ids, labels, 0.01), [1, 162])
    published.write_text("n00000009_1.JPEG\n")
    with pytest.raises(DataError, match="names 1 image.*not in the training split.*n00000009_1.JPEG"):
        label_subsets.label_subset_rows(str(published), folder_ids, labels, 0.01)
    assert os.path.exists(published)  # nothing the user wrote is deleted
