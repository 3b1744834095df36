"""The supervised trainer's data: an image set or a bundled tabular set, split, noised, scaled.

* images: any dataset of ``rl_repr.data.images.sources`` (``'digits'``, ``'characters:...'``,
  ``'synthetic'``, a prepared tfds name), kept as uint8 and turned into pixels in [0, 1] on
  the device (attacks work in that range);
* ``'tabular:<name>'``: one of scikit-learn's bundled tables (:data:`TABULAR_DATASETS`; nothing
  is downloaded), test = every 5th row as for the digits. ``breast_cancer`` is the one whose
  30 features span the widest range of scales (means from 0.004 to 881), the input
  standardisation example.

Then, in this order: a class-balanced ``label_fraction`` of the training rows keeps its labels
(the others are dropped; greedy pretraining still sees all training inputs), symmetric
``label_noise`` on those labels (``rl_repr.supervised.noise``), and with
``standardize_inputs`` the per-feature (per channel for images) mean and standard deviation
of the training inputs, applied on the device by :meth:`SupervisedData.model_input`.
"""
from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

from rl_repr.core.extras import require
from rl_repr.data.images.augment import to_float_images
from rl_repr.evaluation.finetune import label_fraction_subset
from rl_repr.supervised.noise import symmetric_label_noise

ml_collections = require("ml_collections")

TABULAR_DATASETS = ("breast_cancer", "wine", "iris")


@dataclasses.dataclass(frozen=True)
class SupervisedData:
    """Training and test arrays and how they become model inputs.

    Attributes:
      train_inputs, test_inputs: uint8 images ``[N, H, W, C]`` or float32 features ``[N, D]``.
      train_labels: the labels trained on ``[N]`` (noisy when ``label_noise > 0``).
      clean_train_labels: the same rows' true labels.
      test_labels: ``[M]``.
      unlabelled_inputs: every training input, labelled or not (greedy pretraining).
      num_classes: k.
      mean, std: per-feature standardisation (None: inputs used as they are).
    """

    train_inputs: np.ndarray
    train_labels: np.ndarray
    clean_train_labels: np.ndarray
    test_inputs: np.ndarray
    test_labels: np.ndarray
    unlabelled_inputs: np.ndarray
    num_classes: int
    mean: np.ndarray | None = None
    std: np.ndarray | None = None

    @property
    def is_image(self) -> bool:
        return self.train_inputs.dtype == np.uint8

    def pixels(self, inputs):
        """Stored inputs -> float32: images in [0, 1] (the space attacks perturb), features as they are."""
        return to_float_images(jnp.asarray(inputs))

    def standardize(self, values):
        """Float inputs (from :meth:`pixels`) -> what the model sees: standardised when configured."""
        if self.mean is None:
            return values
        return (values - jnp.asarray(self.mean)) / jnp.asarray(self.std)

    def model_input(self, inputs):
        """Stored inputs -> the model's input (:meth:`pixels` then :meth:`standardize`)."""
        return self.standardize(self.pixels(inputs))


def _tabular(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    datasets = require("sklearn.datasets")  # only tabular runs need it

    table = getattr(datasets, f"load_{name}")()
    features, labels = table.data.astype(np.float32), table.target.astype(np.int32)
    test = np.arange(len(labels)) % 5 == 4
    return features[~test], labels[~test], features[test], labels[test], int(labels.max()) + 1


def load_supervised_data(config: ml_collections.ConfigDict) -> SupervisedData:
    """Train/test data of ``config.dataset`` with the label fraction, noise and scaling applied."""
    if config.dataset.startswith("tabular:"):
        train_x, train_y, test_x, test_y, num_classes = _tabular(config.dataset.partition(":")[2])
    else:
        from rl_repr.data.images import sources  # noqa: PLC0415 (tfds sets import TensorFlow)

        train, test = sources.load_train_test(config)
        train_x, train_y, test_x, test_y = train.images, train.labels, test.images, test.labels
        num_classes = train.num_classes
    unlabelled = train_x
    if config.label_fraction < 1.0:
        rows = label_fraction_subset(train_y, config.label_fraction, seed=config.seed)
        train_x, train_y = train_x[rows], train_y[rows]
    noisy_y = train_y
    if config.label_noise > 0:
        noisy_y = symmetric_label_noise(train_y, num_classes, config.label_noise, seed=config.seed)
    mean = std = None
    if config.standardize_inputs:
        scaled = unlabelled.astype(np.float32) / (255.0 if unlabelled.dtype == np.uint8 else 1.0)
        axes = tuple(range(scaled.ndim - 1))  # per feature, or per channel of an image
        mean, std = scaled.mean(axis=axes), scaled.std(axis=axes)
        std = np.where(std > 0, std, 1.0).astype(np.float32)
    return SupervisedData(train_inputs=train_x, train_labels=noisy_y.astype(np.int32),
                          clean_train_labels=train_y.astype(np.int32), test_inputs=test_x,
                          test_labels=test_y.astype(np.int32), unlabelled_inputs=unlabelled,
                          num_classes=num_classes, mean=mean, std=std)
