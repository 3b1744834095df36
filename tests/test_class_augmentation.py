"""Class augmentation (rotations / mirror images as new classes) and the enlarged training set.

References: numpy's ``rot90`` / ``fliplr`` applied image by image, written out per transform;
the held-out digits are checked against every PK batch of a run's training set.
"""
import numpy as np
import pytest

from rl_repr.data.images import class_augmentation as ca
from rl_repr.data.images import pk_batches
from rl_repr.data.images.digits import ImageDataset
from rl_repr.metric_learning.config import metric_learning_defaults


def small_dataset(num_classes=10, per_class=3, size=5):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(num_classes), per_class).astype(np.int32)
    images = rng.integers(0, 256, (labels.size, size, size, 1), dtype=np.uint8)
    return ImageDataset(images=images, labels=labels, num_classes=num_classes, name="toy")


def reference_transform(image_hw, transform):
    """numpy's rot90 (counter-clockwise) of the image or of its left-right mirror."""
    base = np.fliplr(image_hw) if transform >= 4 else image_hw
    return np.rot90(base, k=transform % 4)


@pytest.mark.parametrize("mode, count", [("rotations", 4), ("rotations_flips", 8)])
def test_each_transform_is_numpys_rotation_or_flip_with_its_own_label(mode, count):
    data = small_dataset()
    out = ca.augment_classes(data, mode)
    assert out.images.shape == (count * data.num_examples, 5, 5, 1) and out.num_classes == count * 10
    for t in range(count):
        block = slice(t * data.num_examples, (t + 1) * data.num_examples)
        np.testing.assert_array_equal(out.labels[block], data.labels + 10 * t)
        for image, transformed in zip(data.images, out.images[block]):
            np.testing.assert_array_equal(transformed[..., 0], reference_transform(image[..., 0], t))
    # Every (class, transform) is its own class: 10 * count distinct labels, 3 images each.
    ids, counts = np.unique(out.labels, return_counts=True)
    assert len(ids) == 10 * count and np.all(counts == 3)
    assert ca.augment_classes(data, "none") is data


def test_dropped_classes_are_left_out_and_bad_inputs_fail():
    data = small_dataset()
    out = ca.augment_classes(data, "rotations", drop_classes=(20, 21))  # 0 and 1 turned by 180 degrees
    assert not np.isin(out.labels, (20, 21)).any() and out.num_examples == 4 * 30 - 6
    with pytest.raises(ValueError, match="unknown"):
        ca.augment_classes(data, "shear")
    with pytest.raises(ValueError, match="square images"):
        ca.transform_images(np.zeros((2, 4, 5, 1), np.uint8), 1)


def test_enlarged_training_set_never_holds_a_heldout_digit():
    config = metric_learning_defaults()
    config.class_augmentation, config.extra_classes = "rotations_flips", "glyphs+strokes"
    config.glyph_images_per_class, config.stroke_classes, config.stroke_images_per_class = 3, 30, 4
    split = pk_batches.load_class_split(config)
    train = pk_batches.training_set(config, split.train)
    # 8 transforms of digits 0-4, then one class per letter, then the made-up characters.
    letters = len(config.glyph_characters)
    expected = ({d + 10 * t for d in range(5) for t in range(8)} | {80 + i for i in range(letters)}
                | {80 + letters + i for i in range(30)})
    assert set(np.unique(train.labels).tolist()) == expected
    assert train.num_classes == 80 + letters + 30 and np.sum(train.labels >= 80 + letters) == 30 * 4
    # The held-out labels 5-9 are never a training label, and no training image equals a
    # held-out image (the transforms of 0-4 and the letters are other images).
    assert not np.isin(train.labels, config.eval_classes).any()
    heldout = {image.tobytes() for image in split.heldout.images}
    for step in range(20):
        rows = pk_batches.pk_batch_indices(train.labels, 16, 5, seed=0, step=step)
        assert not np.isin(train.labels[rows], config.eval_classes).any()
        assert not any(image.tobytes() in heldout for image in train.images[rows])
