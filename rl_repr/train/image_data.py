"""The image data a trainer needs, from the dataset named in its config."""
from __future__ import annotations

import jax
import ml_collections
import numpy as np

from rl_repr.data.batching import epoch_permutation_batches
from rl_repr.data.digits import ImageDataset, load_digits
from rl_repr.data.synthetic import make_synthetic_images


def load_train_test(config: ml_collections.ConfigDict) -> tuple[ImageDataset, ImageDataset]:
    """``(train, test)`` in memory for ``config.dataset``: 'digits' (bundled), 'synthetic'
    (generated, ``config.synthetic_examples`` of ``config.synthetic_shape``), or a tfds name
    read from ``config.data_dir`` (never downloaded)."""
    name = config.dataset
    if name == "digits":
        return load_digits("train"), load_digits("test")
    if name == "synthetic":
        n_train = config.synthetic_examples
        both = make_synthetic_images(n_train + max(10, n_train // 4), tuple(config.synthetic_shape),
                                     seed=config.seed)
        return _rows(both, slice(0, n_train)), _rows(both, slice(n_train, None))
    from rl_repr.data.tfds_images import load_image_dataset  # noqa: PLC0415 (imports TensorFlow)

    data_dir = config.data_dir or None
    return load_image_dataset(name, "train", data_dir), load_image_dataset(name, "test", data_dir)


def _rows(dataset: ImageDataset, rows: slice) -> ImageDataset:
    return ImageDataset(images=dataset.images[rows], labels=dataset.labels[rows],
                        num_classes=dataset.num_classes, name=dataset.name)


def process_rows(seed: int, step: int, num_examples: int, batch_size: int) -> np.ndarray:
    """This process's rows of the global batch for ``step`` (a pure function of the step,
    so a resumed run reads exactly the batches of an uninterrupted one)."""
    return next(epoch_permutation_batches(seed, num_examples, batch_size, start_step=step,
                                          process_index=jax.process_index(),
                                          process_count=jax.process_count()))
