"""Streaming images per process, for datasets that do not fit in host memory (ImageNet).

**Loader: tf.data.** Three reasons it fits this job better than grain: prepared tfds sets
(imagenet2012 among them) are TFRecord files, which tf.data reads as they are while grain's
random access needs ArrayRecord files; the fused JPEG decode-and-crop
(``tf.io.decode_and_crop_jpeg``) and stateless crop sampling are tf.data ops, run by its C++
thread pool outside Python's GIL, where grain would run Python (PIL) transforms in worker
processes; and TensorFlow is already a dependency (tfds, TensorBoard). Grain's checkpointable
iterator is not needed: the stream is a pure function of ``(seed, step)``, so the position to
checkpoint is the step itself (:func:`stream_position`), and tf.data's own iterator state
(which would hold the shuffle buffer's images) is never saved.

Training stream of one process, one element per step (:func:`train_batches`)::

    step t -> this process's rows of global batch t
              folder: the seeded epoch permutation an in-memory run reads
              (rl_repr.data.images.batching), process i of P taking slice i of every batch,
              so the processes read disjoint files that together cover each epoch
              tfds: the next records of the process's own shard (tfds.even_splits), files and
              records shuffled with a seed of (seed, epoch)
    -> per image, two Inception-style crop boxes from a stateless seed of (seed, t, global row),
       only their window decoded (JPEG), each box resized (rl_repr.data.images.decode)
    -> {'views': [n, 2, S, S, 3] uint8, 'label': [n] int32}, n = global batch / P

Colour jitter, grayscale, blur and flip stay on the device (``rl_repr.data.images.augment``).
The evaluation stream (:func:`eval_batches`) reads this process's part of a split once, in
order, as central crops, in full batches whose ``mask`` marks the real rows.

**Exact resume.** A stream opened at step t yields exactly what an uninterrupted stream
yields at step t: folder streams compute step t's rows directly; tfds streams rebuild epoch
t // S and skip its first (t mod S) batches of records *before* decoding them (a TFRecord
file has no index to jump with).

**Unreadable files** (truncated, not an image) are skipped: in training the row takes the
image of another row of the same batch (deterministically, so a resumed run matches), in
evaluation it is masked out; a warning names the file and the count so far. A training batch
with no readable image stops the run.
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import zlib
from typing import Any, Callable, Iterator

import numpy as np

from rl_repr.core.errors import ConfigError, DataError, DatasetNotFoundError
from rl_repr.core.extras import require
from rl_repr.core.log import logger
from rl_repr.data.images.batching import epoch_permutation_batches
from rl_repr.data.images.digits import ImageDataset
from rl_repr.data.images.folders import FolderSplit, folder_root, list_split

VIEWS = 2  # SimCLR's two views of every image


@dataclasses.dataclass(frozen=True)
class StreamSettings:
    """How images are cut and how hard the host works.

    Attributes:
      image_size: S, the side of every output image.
      crop_area, crop_aspect, crop_attempts: the random resized crop (area fraction, width /
        height, tries before the whole image is taken).
      workers: images decoded in parallel (tf.data's thread pool); 0 lets tf.data decide.
      prefetch: batches kept ready on the host.
      shuffle_buffer: tfds only: records are shuffled within a window this deep (and files
        are shuffled); folders are shuffled exactly.
    """

    image_size: int
    crop_area: tuple[float, float] = (0.08, 1.0)
    crop_aspect: tuple[float, float] = (3 / 4, 4 / 3)
    crop_attempts: int = 10
    workers: int = 0
    prefetch: int = 2
    shuffle_buffer: int = 10_000


@dataclasses.dataclass(frozen=True)
class StreamSource:
    """A split to stream: a folder split (``folder``), or a prepared tfds split (``data_dir``).

    ``num_examples`` counts the whole split, every process's part of it.
    """

    dataset: str
    split: str
    num_examples: int
    num_classes: int
    folder: FolderSplit | None = None
    data_dir: str | None = None

    def steps_per_epoch(self, global_batch_size: int, process_count: int = 1) -> int:
        """Full global batches per pass (tfds: each process's shard holds N // P records)."""
        if self.folder is not None:
            return self.num_examples // global_batch_size
        return (self.num_examples // process_count) // (global_batch_size // process_count)

    def fingerprint(self) -> int:
        """A 31-bit checksum of what the split holds (a folder's files and labels; a tfds set's name,
        split and size): checkpoints record it, so a resumed run notices a changed dataset."""
        if self.folder is not None:
            text = "\n".join(self.folder.files) + ",".join(map(str, self.folder.labels))
        else:
            text = f"{self.dataset}/{self.split}/{self.num_examples}/{self.num_classes}"
        return zlib.crc32(text.encode()) & 0x7FFFFFFF


def open_source(dataset: str, split: str, data_dir: str | None = None,
                class_names: tuple[str, ...] | None = None) -> StreamSource:
    """Split ``split`` of ``'folder:DIR'`` or of a prepared tfds set (never downloaded).

    ``class_names``: label a folder's evaluation split with the training split's classes.
    """
    root = folder_root(dataset)
    if root is not None:
        folder = list_split(root, split, class_names)
        return StreamSource(dataset, split, folder.num_examples, folder.num_classes, folder=folder)
    from rl_repr.data.images.tfds import _import_tfds, _prepared_builder, check_known_dataset  # noqa: PLC0415

    check_known_dataset(dataset, data_dir)
    builder = _prepared_builder(dataset, data_dir)
    if split not in builder.info.splits:
        raise DatasetNotFoundError(f"The tfds dataset {dataset!r} has no split {split!r} (its splits: "
                         f"{sorted(builder.info.splits)}); set config.train_split / config.eval_split to one of them.")
    label = builder.info.features["label"]
    if not isinstance(label, _import_tfds().features.ClassLabel):
        raise DataError(f"The tfds dataset {dataset!r} labels its images with a {type(label).__name__}, not a "
                         "ClassLabel; stream only sets with class labels, or read it in memory.")
    return StreamSource(dataset, split, builder.info.splits[split].num_examples, label.num_classes,
                        data_dir=data_dir)


def stream_position(step: int, steps_per_epoch: int) -> dict[str, int]:
    """Where a stream stands before step ``step``, i.e. what a checkpoint at ``step`` resumes."""
    return {"step": int(step), "epoch": int(step // steps_per_epoch), "batch_in_epoch": int(step % steps_per_epoch)}


# ----------------------------------------------------------------------------- training
def train_batches(source: StreamSource, settings: StreamSettings, *, seed: int, global_batch_size: int,
                  start_step: int = 0, process_index: int = 0, process_count: int = 1,
                  ) -> Iterator[dict[str, np.ndarray]]:
    """This process's training batches for steps ``start_step, start_step + 1, ...``, forever.

    Yields ``{'views': [n, 2, S, S, 3] uint8, 'label': [n] int32, 'id': [n] int64}``,
    ``n = global_batch_size / process_count``; row r is row ``process_index * n + r`` of the
    step's global batch; ``id`` is the example's index in a folder split (-1 for tfds records).
    """
    if global_batch_size % process_count:
        raise ConfigError(f"A global batch of {global_batch_size} does not split across {process_count} "
                         f"processes; use a multiple of {process_count}.")
    if source.steps_per_epoch(global_batch_size, process_count) < 1:
        raise ConfigError(f"A global batch of {global_batch_size} exceeds the {source.num_examples} images of "
                         f"{source.dataset!r} split {source.split!r}; use a smaller batch size.")
    tf = _tf()
    from rl_repr.data.images.decode import random_views  # noqa: PLC0415 (TensorFlow)

    local = global_batch_size // process_count

    def cut(contents, step, row):
        counter = step * global_batch_size + process_index * local + row
        return random_views(contents, tf.stack([tf.constant(seed, tf.int64), counter]),
                            size=settings.image_size, views=VIEWS, area=settings.crop_area,
                            aspect=settings.crop_aspect, attempts=settings.crop_attempts)

    step_dataset = functools.partial(_step_dataset, tf, cut=cut, size=local, views=VIEWS,
                                     image_size=settings.image_size, parallel=_parallel(tf, settings))
    if source.folder is not None:
        steps = _folder_train_steps(tf, source.folder, seed, global_batch_size, start_step, process_index,
                                    process_count)
        paths, labels = tf.constant(source.folder.paths), tf.constant(source.folder.labels)
        dataset = steps.interleave(
            lambda step, index: step_dataset(step, tf.gather(paths, index), tf.gather(labels, index), index,
                                             read=True),
            cycle_length=2, num_parallel_calls=2, deterministic=True)
        elements = _iterate(tf, dataset, settings)
    else:
        elements = _tfds_train_elements(tf, source, settings, seed, global_batch_size, start_step,
                                        process_index, process_count, step_dataset)
    name = _namer(source)
    skipped = _Skipped()
    for step, (rows, views, labels, index) in zip(itertools.count(start_step), elements):
        missing = np.setdiff1d(np.arange(local), rows)
        for row in missing:
            skipped.add(name(index[row]), f"row {row} of step {step} repeats another image of the batch")
        if len(rows) == 0:
            raise DataError(f"No image of step {step}'s batch could be read from {source.dataset!r} split "
                             f"{source.split!r}; check the files named in the warnings above.")
        if len(rows) < local:  # a missing row takes the decoded image of the row after it (cyclically)
            order = np.searchsorted(rows, np.arange(local)) % len(rows)
            views, labels, index = views[order], labels[order], index[rows[order]]
        yield {"views": views, "label": labels.astype(np.int32), "id": index}


def _folder_train_steps(tf, folder, seed, global_batch_size, start_step, process_index, process_count):
    """``(step, indices [n])`` per step: this process's slice of step t's global batch."""
    local = global_batch_size // process_count
    indices = functools.partial(epoch_permutation_batches, seed, folder.num_examples, global_batch_size,
                                start_step, process_index=process_index, process_count=process_count)
    return tf.data.Dataset.from_generator(
        lambda: zip(itertools.count(start_step), indices()),
        output_signature=(tf.TensorSpec((), tf.int64), tf.TensorSpec((local,), tf.int64)))


def _tfds_train_elements(tf, source, settings, seed, global_batch_size, start_step, process_index,
                         process_count, step_dataset):
    """Epoch after epoch of this process's tfds shard, from step ``start_step`` on."""
    tfds, builder = _builder(source)
    local = global_batch_size // process_count
    steps_per_epoch = source.steps_per_epoch(global_batch_size, process_count)
    shard = tfds.even_splits(source.split, n=process_count, drop_remainder=True)[process_index]
    epoch, skip = divmod(start_step, steps_per_epoch)
    for epoch in itertools.count(epoch):
        epoch_seed = int(np.random.default_rng([seed, epoch]).integers(2 ** 31))
        records = builder.as_dataset(split=shard, shuffle_files=True, read_config=tfds.ReadConfig(
            shuffle_seed=epoch_seed), decoders={"image": tfds.decode.SkipDecoding()})
        records = records.shuffle(settings.shuffle_buffer, seed=epoch_seed).take(steps_per_epoch * local)
        batches = records.skip(skip * local).batch(local, drop_remainder=True)
        first = epoch * steps_per_epoch + skip
        steps = tf.data.Dataset.range(first, (epoch + 1) * steps_per_epoch)
        dataset = tf.data.Dataset.zip(steps, batches).interleave(
            lambda step, batch: step_dataset(step, batch["image"], tf.cast(batch["label"], tf.int32),
                                             tf.fill([local], tf.constant(-1, tf.int64)), read=False),
            cycle_length=2, num_parallel_calls=2, deterministic=True)
        yield from _iterate(tf, dataset, settings)
        skip = 0


# ----------------------------------------------------------------------------- evaluation
def eval_batches(source: StreamSource, settings: StreamSettings, *, batch_size: int, process_index: int = 0,
                 process_count: int = 1) -> Iterator[dict[str, np.ndarray]]:
    """This process's part of the split, once, in order, as central crops.

    Process i reads examples ``array_split(range(N), P)[i]`` (folder) or
    ``tfds.even_splits(split, P)[i]``: disjoint parts that cover the split. Every process
    yields the same number of batches, ``ceil(ceil(N / P) / batch_size)``.

    Yields ``{'image': [b, S, S, 3] uint8, 'label': [b] int32, 'mask': [b] bool, 'id': [b] int64}``:
    ``id`` is the example's index in the split (-1 past the end of the part); rows past the end,
    and unreadable images, have ``mask`` False (and zero pixels).
    """
    tf = _tf()
    from rl_repr.data.images.decode import central_view  # noqa: PLC0415 (TensorFlow)

    step_dataset = functools.partial(_step_dataset, tf, cut=lambda contents, step, row: central_view(
        contents, size=settings.image_size)[None], size=batch_size, views=1, image_size=settings.image_size,
        parallel=_parallel(tf, settings))
    num_batches = math.ceil(math.ceil(source.num_examples / process_count) / batch_size)
    if source.folder is not None:
        part = np.array_split(np.arange(source.num_examples), process_count)[process_index]
        padded = np.full(num_batches * batch_size, -1, np.int64)
        padded[:len(part)] = part
        paths, labels = tf.constant(source.folder.paths), tf.constant(source.folder.labels)
        index_batches = tf.data.Dataset.from_tensor_slices(padded.reshape(num_batches, batch_size))
        dataset = index_batches.enumerate().interleave(
            lambda step, index: step_dataset(step, tf.gather(paths, tf.maximum(index, 0)),
                                             tf.gather(labels, tf.maximum(index, 0)), index, read=True),
            cycle_length=2, num_parallel_calls=2, deterministic=True)
    else:
        tfds, builder = _builder(source)
        parts = tfds.even_splits(source.split, n=process_count)
        offset = sum(builder.info.splits[part].num_examples for part in parts[:process_index])
        records = builder.as_dataset(split=parts[process_index], decoders={"image": tfds.decode.SkipDecoding()})
        dataset = records.batch(batch_size).enumerate().interleave(
            lambda step, batch: step_dataset(step, batch["image"], tf.cast(batch["label"], tf.int32),
                                             offset + step * batch_size + tf.range(tf.size(batch["label"],
                                                                                       out_type=tf.int64)),
                                             read=False),
            cycle_length=2, num_parallel_calls=2, deterministic=True)
    name, skipped, served = _namer(source), _Skipped(), 0
    for rows, views, labels, index in _iterate(tf, dataset, settings):
        present = np.flatnonzero(index >= 0)
        for row in np.setdiff1d(present, rows):
            skipped.add(name(index[row]), "left out of the evaluation")
        yield _full_batch(rows, views[:, 0], labels, index, batch_size, settings.image_size)
        served += 1
    for _ in range(num_batches - served):  # a shorter tfds part: padding batches
        yield _full_batch([], None, None, [], batch_size, settings.image_size)


def load_in_memory(source: StreamSource, settings: StreamSettings, *, batch_size: int = 256) -> ImageDataset:
    """The whole split in memory as central crops at ``settings.image_size`` (every process the whole
    split): for a folder small enough to hold, whose random crops are then cut on the device."""
    batches = list(eval_batches(source, settings, batch_size=batch_size))
    keep = np.concatenate([b["mask"] for b in batches])
    images = np.concatenate([b["image"] for b in batches])[keep]
    labels = np.concatenate([b["label"] for b in batches])[keep]
    return ImageDataset(images=images, labels=labels, num_classes=source.num_classes, name=source.dataset)


def _full_batch(rows, images, labels, index, batch_size, image_size):
    batch = {"image": np.zeros((batch_size, image_size, image_size, 3), np.uint8),
             "label": np.zeros(batch_size, np.int32), "mask": np.zeros(batch_size, bool),
             "id": np.full(batch_size, -1, np.int64)}
    batch["id"][:len(index)] = index
    if len(rows):
        batch["image"][rows], batch["label"][rows], batch["mask"][rows] = images, labels, True
    return batch


# ----------------------------------------------------------------------------- shared
def _step_dataset(tf, step, inputs, labels, index, *, read: bool, cut: Callable, size: int, views: int,
                  image_size: int, parallel: int):
    """A dataset of exactly one element for one batch: ``(rows [m], views [m, V, S, S, 3], labels [m],
    index [size])``, the m <= size rows whose image could be read (``index`` < 0: padding, skipped)."""
    rows = tf.range(tf.size(index, out_type=tf.int64))
    examples = tf.data.Dataset.from_tensor_slices((rows, inputs, labels, index)).filter(
        lambda row, x, label, i: tf.logical_or(i >= 0, not read))

    def decode_one(row, x, label, _):
        return row, cut(tf.io.read_file(x) if read else x, step, row), label

    decoded = examples.map(decode_one, num_parallel_calls=parallel, deterministic=True).ignore_errors()
    nothing = tf.data.Dataset.from_tensors((tf.zeros([0], tf.int64), tf.zeros([0, views, image_size, image_size, 3],
                                            tf.uint8), tf.zeros([0], tf.int32)))
    one = decoded.batch(size).concatenate(nothing).take(1)
    return one.map(lambda r, v, label: (r, v, label, index))


def _iterate(tf, dataset, settings: StreamSettings) -> Iterator[Any]:
    options = tf.data.Options()
    options.deterministic = True
    options.threading.max_intra_op_parallelism = 1  # parallel over images, one thread per image
    if settings.workers:
        options.threading.private_threadpool_size = settings.workers
    return dataset.with_options(options).prefetch(settings.prefetch).as_numpy_iterator()


def _parallel(tf, settings: StreamSettings) -> int:
    return settings.workers or tf.data.AUTOTUNE


def _tf():
    """TensorFlow, kept off any accelerator (JAX owns them)."""
    from rl_repr.data.images.tfds import _import_tfds  # noqa: PLC0415

    _import_tfds()
    return require("tensorflow")


def _builder(source: StreamSource):
    from rl_repr.data.images.tfds import _import_tfds, _prepared_builder  # noqa: PLC0415

    return _import_tfds(), _prepared_builder(source.dataset, source.data_dir)


def _namer(source: StreamSource) -> Callable[[int], str]:
    """Example index -> what a warning calls it (a folder's file path)."""
    if source.folder is not None:
        return lambda i: source.folder.paths[int(i)] if i >= 0 else "a padding row"
    return lambda i: f"a record of {source.dataset!r} split {source.split!r}"


class _Skipped:
    """Counts unreadable images and names each in a warning."""

    def __init__(self):
        self.count = 0

    def add(self, name: str, effect: str) -> None:
        self.count += 1
        logger.warning(f"Skipped unreadable image {name} ({self.count} so far in this stream; {effect}); "
                       "re-encode or delete the file.")
