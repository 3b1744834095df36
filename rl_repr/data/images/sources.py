"""The image data a method needs, from the dataset named in its config (``config.dataset``).

* ``'digits'``: scikit-learn's bundled 8x8 digits (test = every 5th image);
* ``'characters[:classes=100,images=50,size=32,warp=0.1,seed=0]'``: made-up handwritten characters
  (``rl_repr.data.images.stroke_characters``) drawn at ``size`` pixels, ``images`` per class,
  test = every 5th image of each class; generated offline, as many classes as a study needs;
* ``'synthetic'``: generated smoke-test images (``config.synthetic_examples`` of
  ``config.synthetic_shape``);
* ``'folder:DIR'``: the images of ``DIR/<split>/<class>/<file>`` (``rl_repr.data.images.folders``),
  central crops at ``config.image_size`` (a folder too large for memory streams instead:
  ``rl_repr.data.images.streaming``);
* any other name: a prepared TensorFlow Datasets set read from ``config.data_dir``, never
  downloaded (each process reads its own shard of the training split).
"""
from __future__ import annotations

import jax
import numpy as np

from rl_repr.core.errors import ConfigError
from rl_repr.core.extras import require
from rl_repr.core.recipes import launch_arguments
from rl_repr.data.images.batching import epoch_permutation_batches
from rl_repr.data.images.digits import ImageDataset, load_digits
from rl_repr.data.images.folders import folder_root
from rl_repr.data.images.synthetic import make_synthetic_images

ml_collections = require("ml_collections")


def load_train_test(config: ml_collections.ConfigDict) -> tuple[ImageDataset, ImageDataset]:
    """``(train, test)`` in memory for ``config.dataset``: 'digits' (bundled), 'synthetic'
    (generated, ``config.synthetic_examples`` of ``config.synthetic_shape``), a tfds name
    read from ``config.data_dir`` (never downloaded), or ``'folder:DIR'`` (central crops at
    ``config.image_size``); the splits are ``config.train_split`` / ``config.eval_split``
    ('train' / 'test' for methods without them)."""
    name = config.dataset
    train_split, eval_split = config.get("train_split", "train"), config.get("eval_split", "test")
    if name == "digits":
        return load_digits("train"), load_digits("test")
    if name.split(":")[0] == "characters":
        return made_up_characters(name)
    if name == "synthetic":
        n_train = config.synthetic_examples
        both = make_synthetic_images(n_train + max(10, n_train // 4), tuple(config.synthetic_shape),
                                     seed=config.seed)
        return _rows(both, slice(0, n_train)), _rows(both, slice(n_train, None))
    if folder_root(name) is not None:
        return _folder_in_memory(config, train_split, eval_split)
    from rl_repr.data.images.tfds import load_image_dataset  # noqa: PLC0415 (imports TensorFlow)

    # A tfds set: each process reads only its own shard of the training split (and samples
    # its rows of every global batch from it); every process reads the whole test split.
    data_dir, size = config.data_dir or None, config.image_size or None
    train = load_image_dataset(name, train_split, data_dir, process_index=jax.process_index(),
                               process_count=jax.process_count(), drop_remainder=True, image_size=size)
    return train, load_image_dataset(name, eval_split, data_dir, image_size=size)


def _folder_in_memory(config, train_split: str, eval_split: str) -> tuple[ImageDataset, ImageDataset]:
    """Both splits of ``folder:DIR`` in memory, every process the whole of each."""
    from rl_repr.data.images import streaming  # noqa: PLC0415 (imports TensorFlow)

    if not config.get("image_size"):
        raise ConfigError(f"config.dataset={config.dataset!r} holds images of any size; set config.image_size "
                          "to the side they are resized to.")
    settings = streaming.StreamSettings(image_size=config.image_size)
    train = streaming.open_source(config.dataset, train_split)
    test = streaming.open_source(config.dataset, eval_split, class_names=train.folder.class_names)
    return streaming.load_in_memory(train, settings), streaming.load_in_memory(test, settings)


def made_up_characters(name: str) -> tuple[ImageDataset, ImageDataset]:
    """``(train, test)`` of ``'characters[:classes=..,images=..,size=..,warp=..,seed=..]'``: every 5th
    image of each class is a test image. Defaults: 100 classes, 50 images each, 32x32, warp 0.1,
    seed 0 (the data's own seed: runs with different training seeds see the same images)."""
    from rl_repr.data.images.stroke_characters import render_stroke_characters  # noqa: PLC0415

    _, _, options = name.partition(":")
    args = launch_arguments(options, "dataset 'characters'",
                            values={"classes": int, "images": int, "size": int, "warp": float, "seed": int})
    data = render_stroke_characters(args.get("classes", 100), args.get("images", 50), seed=args.get("seed", 0),
                                    size=args.get("size", 32), warp=args.get("warp", 0.1))
    test = np.arange(data.num_examples) % 5 == 4
    return _rows(data, ~test), _rows(data, test)


def is_process_shard(config: ml_collections.ConfigDict) -> bool:
    """Whether ``load_train_test`` gave this process only its shard of the training split."""
    return (config.dataset not in ("digits", "synthetic") and not config.dataset.startswith("characters")
            and folder_root(config.dataset) is None)


def _rows(dataset: ImageDataset, rows: slice | np.ndarray) -> ImageDataset:
    return ImageDataset(images=dataset.images[rows], labels=dataset.labels[rows],
                        num_classes=dataset.num_classes, name=dataset.name)


def process_rows(seed: int, step: int, num_examples: int, batch_size: int, *,
                 process_shard: bool = False) -> np.ndarray:
    """This process's rows of the global batch for ``step`` (a pure function of the step,
    so a resumed run reads exactly the batches of an uninterrupted one).

    With the whole dataset on every process, process ``i`` takes the ``i``-th slice of one
    global permutation. With ``process_shard`` (each process holds only its shard, of
    ``num_examples`` rows), each process permutes its own shard with its own seed.
    """
    if process_shard:
        count = jax.process_count()
        return next(epoch_permutation_batches(seed * 1_000_003 + jax.process_index(), num_examples,
                                              batch_size // count, start_step=step))
    return next(epoch_permutation_batches(seed, num_examples, batch_size, start_step=step,
                                          process_index=jax.process_index(),
                                          process_count=jax.process_count()))


def global_steps_per_epoch(config: ml_collections.ConfigDict, train: ImageDataset) -> int:
    """Steps in one pass over the (global) training set."""
    examples = train.num_examples * (jax.process_count() if is_process_shard(config) else 1)
    return examples // config.batch_size
