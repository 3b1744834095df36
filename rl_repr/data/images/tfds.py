"""Named tfds image datasets read from a local data dir, sharded by process.

Two readers over the same decoding:
* ``load_tfds_images``: the whole (process-local shard of a) split in memory as an
  ``ImageDataset`` -- CIFAR-10/100 (50k x 32x32x3 = 150 MB) and STL-10 fit.
* ``iterate_tfds_batches``: an endless, seeded stream of uint8 batches through
  tf.data for sets that do not fit (ImageNet), resized to a fixed square.

Each process reads only its part of the split, ``tfds.even_splits(split, n=P)[i]``
(the explicit form of ``tfds.split_for_jax_process``), so P processes read disjoint
parts that together cover the split. Nothing is ever downloaded: a dataset that is
not prepared under the data dir raises ``FileNotFoundError`` saying how to build it.
``load_image_dataset`` is the single entry point by name, including the bundled
"digits". TensorFlow and tfds are imported inside the functions, so importing this
module stays cheap.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from rl_repr.core.errors import ConfigError, DatasetNotFoundError
from rl_repr.core.extras import require
from rl_repr.data.images.digits import ImageDataset, load_digits

# Datasets the SimCLR recipes and evaluations are written for; any other tfds image
# dataset with an "image" and a "label" feature works too.
KNOWN_TFDS_IMAGE_DATASETS = ("cifar10", "cifar100", "stl10", "imagenet2012", "lfw", "mnist", "svhn_cropped")
_READ_BATCH = 1024  # examples per tf.data batch when filling memory


def _import_tfds() -> Any:
    """tensorflow_datasets, with TensorFlow kept off any accelerator (JAX owns it)."""
    tf = require("tensorflow")
    tfds = require("tensorflow_datasets")

    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:  # TF already initialised its devices; nothing left to hide.
        pass
    return tfds


def resolve_data_dir(data_dir: str | None) -> str:
    """The directory tfds reads: ``data_dir``, else $TFDS_DATA_DIR, else ~/tensorflow_datasets."""
    if data_dir:
        return os.fspath(data_dir)
    return os.environ.get("TFDS_DATA_DIR") or os.path.expanduser(os.path.join("~", "tensorflow_datasets"))


def missing_dataset_message(name: str, data_dir: str | None) -> str:
    """One sentence: which dataset, which directory was searched, how to prepare it."""
    directory = resolve_data_dir(data_dir)
    return (
        f"The tfds dataset {name!r} is not prepared under data_dir {directory!r}; build it on a "
        f"machine with internet access with `tfds build {name} --data_dir={directory}` (or `python -c "
        f"\"import tensorflow_datasets as tfds; tfds.builder('{name}', data_dir='{directory}')"
        f".download_and_prepare()\"`) and copy the {name} folder into that directory "
        "(imagenet2012 also needs its manually downloaded tar files in <data_dir>/downloads/manual)."
    )


def _prepared_builder(name: str, data_dir: str | None) -> Any:
    """The tfds builder for ``name`` whose files exist under ``data_dir`` (never downloads)."""
    directory = resolve_data_dir(data_dir)
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise DatasetNotFoundError(f"data_dir {directory!r} is a file; pass the directory that holds the "
                                   "prepared tfds datasets (config.data_dir).")
    tfds = _import_tfds()
    try:
        # try_gcs=False: tfds must not fetch metadata or data from the public bucket.
        builder = tfds.builder(name, data_dir=directory, try_gcs=False)
    except tfds.core.registered.DatasetNotFoundError:
        raise DatasetNotFoundError(missing_dataset_message(name, data_dir)) from None
    if not builder.is_prepared():
        raise DatasetNotFoundError(missing_dataset_message(name, data_dir))
    return builder


def _process_shard(process_index: int | None, process_count: int | None) -> tuple[int, int]:
    """(index, count), defaulting to this JAX process; validated."""
    if process_index is None or process_count is None:
        import jax

        process_index = jax.process_index() if process_index is None else process_index
        process_count = jax.process_count() if process_count is None else process_count
    if process_count < 1 or not 0 <= process_index < process_count:
        raise ValueError(
            f"process_index={process_index} is not in [0, process_count={process_count}); pass "
            "jax.process_index() and jax.process_count() or leave both as None."
        )
    return process_index, process_count


def _label_vocabulary(builder: Any, split: str, image_key: str, label_key: str) -> tuple[int, list[str] | None]:
    """(num_classes, vocabulary): ClassLabel gives its class count; string labels
    (e.g. lfw identities) get ids in sorted order of the whole, unsharded split, so
    every process and every shard agrees on them."""
    tfds = _import_tfds()
    feature = builder.info.features[label_key]
    if isinstance(feature, tfds.features.ClassLabel):
        return int(feature.num_classes), None
    if not isinstance(feature, tfds.features.Text):
        raise ValueError(
            f"Dataset {builder.name!r} stores {label_key!r} as {type(feature).__name__}, neither a "
            "ClassLabel nor a string; pass label_key naming a class-label or string feature."
        )
    # Skip image decoding: only the label column is needed to build the vocabulary.
    dataset = builder.as_dataset(split=split, decoders={image_key: tfds.decode.SkipDecoding()})
    labels = dataset.map(lambda example: example[label_key])
    vocabulary = sorted({value.decode() for value in tfds.as_numpy(labels)})
    return len(vocabulary), vocabulary


def _decode_fn(builder: Any, image_key: str, label_key: str, image_size: int | None, vocabulary: list[str] | None):
    """tf.data map: example -> {"image": [S, S, C] uint8, "label": int32}."""
    import tensorflow as tf

    image_feature = builder.info.features[image_key]
    image_shape = image_feature.shape
    if image_size is None and None in image_shape[:2]:
        raise ValueError(
            f"Dataset {builder.name!r} has images of varying size {image_shape}; pass image_size to "
            "resize them to image_size x image_size."
        )
    table = None
    if vocabulary is not None:
        table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(vocabulary), tf.range(len(vocabulary), dtype=tf.int32)
            ),
            default_value=-1,
        )

    def decode(example: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        # Images arrive encoded (see _read_split): decoding after the shuffle keeps
        # the shuffle buffer small (JPEG bytes, not pixels).
        image = image_feature.decode_example(example[image_key])
        if image_size is not None:
            image = _resize_shorter_side_and_center_crop(image, image_size)
        label = example[label_key]
        label = table.lookup(label) if table is not None else tf.cast(label, tf.int32)
        return {"image": image, "label": label}

    return decode


def _resize_shorter_side_and_center_crop(image: Any, size: int) -> Any:
    """Resize so the shorter side is ``size`` (bilinear, antialiased), keep the central
    size x size square, and return uint8. The on-device random crop then samples
    boxes inside this square."""
    import tensorflow as tf

    height, width = tf.shape(image)[0], tf.shape(image)[1]
    scale = tf.cast(size, tf.float32) / tf.cast(tf.minimum(height, width), tf.float32)
    new_height = tf.maximum(size, tf.cast(tf.round(tf.cast(height, tf.float32) * scale), tf.int32))
    new_width = tf.maximum(size, tf.cast(tf.round(tf.cast(width, tf.float32) * scale), tf.int32))
    resized = tf.image.resize(image, (new_height, new_width), method="bilinear", antialias=True)
    top, left = (new_height - size) // 2, (new_width - size) // 2
    cropped = resized[top : top + size, left : left + size]
    cropped = tf.ensure_shape(cropped, [size, size, image.shape[-1]])  # static shape for batching
    return tf.cast(tf.clip_by_value(tf.round(cropped), 0.0, 255.0), tf.uint8)


def _read_split(builder: Any, split: Any, image_key: str, *, shuffle_files: bool, read_config: Any = None) -> Any:
    """tf.data over a (sub)split with the images left encoded for ``_decode_fn``."""
    tfds = _import_tfds()
    return builder.as_dataset(
        split=split,
        shuffle_files=shuffle_files,
        read_config=read_config if read_config is not None else tfds.ReadConfig(),
        decoders={image_key: tfds.decode.SkipDecoding()},
    )


def load_tfds_images(
    name: str,
    split: str,
    data_dir: str | None,
    *,
    process_index: int | None = None,
    process_count: int | None = None,
    image_size: int | None = None,
    drop_remainder: bool = False,
    image_key: str = "image",
    label_key: str = "label",
) -> ImageDataset:
    """Read this process's shard of a prepared tfds split into memory.

    Process i of P reads ``tfds.even_splits(split, n=P, drop_remainder)[i]``: the
    shards are disjoint and, with drop_remainder=False, cover the split (the first
    N mod P shards get one extra example); with drop_remainder=True every shard
    has N // P examples. Order is the deterministic file order (no shuffling).

    Args:
        name: tfds name, optionally with config/version ("cifar10", "cifar10:3.0.2").
        split: tfds split string ("train", "test", "train[:10%]").
        data_dir: directory holding prepared tfds datasets (None: $TFDS_DATA_DIR or
            ~/tensorflow_datasets).
        process_index, process_count: shard to read (None: this JAX process).
        image_size: if set, resize the shorter side to it and centre-crop a square
            (required for datasets of varying image size).
        drop_remainder: equal-sized shards (drops up to P - 1 examples).
        image_key, label_key: feature names of the image and the label.

    Returns:
        ImageDataset with images [N_i, H, W, C] uint8 and labels [N_i] int32.

    Raises:
        FileNotFoundError: the dataset is not prepared under the data dir.
    """
    tfds = _import_tfds()
    builder = _prepared_builder(name, data_dir)
    index, count = _process_shard(process_index, process_count)
    num_classes, vocabulary = _label_vocabulary(builder, split, image_key, label_key)
    shard = tfds.even_splits(split, n=count, drop_remainder=drop_remainder)[index]
    dataset = _read_split(builder, shard, image_key, shuffle_files=False)
    dataset = dataset.map(_decode_fn(builder, image_key, label_key, image_size, vocabulary)).batch(_READ_BATCH)
    images, labels = [], []
    for batch in tfds.as_numpy(dataset):
        images.append(batch["image"])
        labels.append(batch["label"])
    if not images:
        raise ValueError(f"Shard {index} of {count} of {name!r} split {split!r} is empty; use fewer processes.")
    return ImageDataset(
        images=np.concatenate(images).astype(np.uint8),
        labels=np.concatenate(labels).astype(np.int32),
        num_classes=num_classes,
        name=name,
    )


def iterate_tfds_batches(
    name: str,
    split: str,
    data_dir: str | None,
    per_process_batch_size: int,
    *,
    shuffle_seed: int | None,
    image_size: int | None = None,
    process_index: int | None = None,
    process_count: int | None = None,
    repeat: bool = True,
    shuffle_buffer: int = 10_000,
    start_batch: int = 0,
    image_key: str = "image",
    label_key: str = "label",
) -> Iterator[dict[str, np.ndarray]]:
    """Stream this process's shard of a prepared tfds split as uint8 numpy batches.

    Process i of P reads ``tfds.even_splits(split, n=P, drop_remainder=True)[i]``
    (equal shards, so every process yields the same number of batches per epoch).
    With a ``shuffle_seed`` the files and a ``shuffle_buffer``-deep window are
    shuffled, reshuffled each epoch, and the stream is deterministic given the
    seed; None reads in file order (evaluation). Batches are full
    (drop_remainder). ``start_batch`` skips that many batches (reading them) so a
    resumed run continues the same stream.

    Yields:
        {"image": [B, S, S, C] uint8, "label": [B] int32}, B = per_process_batch_size,
        S = image_size (or the dataset's fixed size).

    Raises:
        FileNotFoundError: the dataset is not prepared under the data dir.
    """
    tfds = _import_tfds()
    tf = require("tensorflow")
    if per_process_batch_size < 1:
        raise ValueError(f"per_process_batch_size must be >= 1, got {per_process_batch_size}.")
    builder = _prepared_builder(name, data_dir)
    index, count = _process_shard(process_index, process_count)
    _, vocabulary = _label_vocabulary(builder, split, image_key, label_key)
    shard = tfds.even_splits(split, n=count, drop_remainder=True)[index]
    shuffle = shuffle_seed is not None
    read_config = tfds.ReadConfig(shuffle_seed=shuffle_seed) if shuffle else tfds.ReadConfig()
    dataset = _read_split(builder, shard, image_key, shuffle_files=shuffle, read_config=read_config)
    if shuffle:
        dataset = dataset.shuffle(shuffle_buffer, seed=shuffle_seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.map(
        _decode_fn(builder, image_key, label_key, image_size, vocabulary),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    dataset = dataset.batch(per_process_batch_size, drop_remainder=True).skip(start_batch)
    options = tf.data.Options()
    options.deterministic = True  # parallel map must not reorder: the stream is a function of the seed.
    dataset = dataset.with_options(options).prefetch(tf.data.AUTOTUNE)
    return dataset.as_numpy_iterator()


def load_image_dataset(name: str, split: str, data_dir: str | None = None, **tfds_kwargs: Any) -> ImageDataset:
    """An in-memory ``ImageDataset`` by name: "digits" (bundled) or a prepared tfds set.

    Args:
        name: "digits", or a tfds image dataset (cifar10, cifar100, stl10, ...).
        split: "train"/"test" for digits; any tfds split string otherwise.
        data_dir: tfds data dir (ignored for digits).
        **tfds_kwargs: keyword arguments of ``load_tfds_images`` (not for digits).

    Raises:
        ConfigError: unknown name (a ValueError); ValueError: tfds options passed for digits.
        DatasetNotFoundError: a known tfds dataset that is not prepared under data_dir (a
            FileNotFoundError), or a data_dir that is a file.
    """
    if name == "digits":
        given = sorted(key for key, value in tfds_kwargs.items() if value is not None)
        if given:
            raise ValueError(f"The bundled digits set takes no tfds options, got {given}; drop them.")
        return load_digits(split)
    check_known_dataset(name, data_dir)
    return load_tfds_images(name, split, data_dir, **tfds_kwargs)


def check_known_dataset(name: str, data_dir: str | None = None) -> None:
    """Raises ``ConfigError`` (one sentence) unless ``name`` is a tfds dataset or prepared under
    ``data_dir`` (a known but unprepared set is left to ``DatasetNotFoundError`` when opened)."""
    base_name = name.split(":")[0].split("/")[0]
    registered = base_name in _import_tfds().list_builders(with_community_datasets=False)
    on_disk = os.path.isdir(os.path.join(resolve_data_dir(data_dir), base_name))
    if not (registered or on_disk):
        raise ConfigError(
            f"Unknown image dataset {name!r}; use 'digits' (bundled, offline), 'characters[:...]' (generated), "
            f"'folder:DIR' or a tfds image dataset prepared under data_dir, such as "
            f"{', '.join(KNOWN_TFDS_IMAGE_DATASETS)}."
        )
