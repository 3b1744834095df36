"""Semi-supervised fine-tuning: label subsets and the fine-tuning loop on easy generated data."""
import jax
import numpy as np

from rl_repr.data.images import augment as augment_lib
from rl_repr.data.images.synthetic import make_synthetic_images
from rl_repr.evaluation import finetune
from rl_repr.models import ResNet


def test_label_fraction_subset_is_class_balanced_with_at_least_one_per_class():
    labels = np.repeat(np.arange(10), [5, 50, 50, 50, 50, 50, 50, 50, 50, 95])
    rows = finetune.label_fraction_subset(labels, 0.1, seed=0)
    counts = np.bincount(labels[rows], minlength=10)
    np.testing.assert_array_equal(counts, [1, 5, 5, 5, 5, 5, 5, 5, 5, 10])
    assert len(np.unique(rows)) == len(rows)


def test_finetuning_learns_and_uses_the_pretrained_encoder():
    data = make_synthetic_images(250, (8, 8, 3), num_classes=5, seed=0)
    train = type(data)(data.images[:200], data.labels[:200], 5, "synthetic")
    test = type(data)(data.images[200:], data.labels[200:], 5, "synthetic")
    encoder = ResNet(depth=18, width_multiplier=0.0625, small_image_stem=True)
    config = augment_lib.AugmentConfig(crop_area=(0.8, 1.0), flip=False)
    accuracy = finetune.finetune_accuracy(encoder, None, train, test, fraction=0.5,
                                          augment_config=config, steps=60, batch_size=32)
    assert accuracy > 0.6  # chance is 0.2

    # Pretrained weights drop into the classifier's 'encoder' subtree (a layout mismatch
    # would fail inside apply).
    variables = encoder.init(jax.random.key(1, impl="rbg"), train.images[:2] / 255.0, train=False)
    tuned = finetune.finetune_accuracy(encoder, variables, train, test, fraction=0.5,
                                       augment_config=config, steps=5, batch_size=32)
    assert 0.0 <= tuned <= 1.0
