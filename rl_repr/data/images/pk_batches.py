"""Class splits and PK batches for metric learning (Hermans, Beyer & Leibe 2017, "In Defense
of the Triplet Loss for Person Re-Identification", arXiv:1703.07737).

A metric is learned on some classes and judged on others it never saw. ``load_class_split``
partitions a labelled image set by class (training classes / held-out classes) and
``pk_batch_indices`` draws the rows of one PK batch: P classes x K images of each, so every
anchor has positives and negatives inside the batch for online mining.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from rl_repr.core.extras import require
from rl_repr.data.images.class_augmentation import augment_classes
from rl_repr.data.images.digits import ImageDataset

ml_collections = require("ml_collections")

__all__ = ["ClassSplit", "load_class_split", "training_set", "pk_batch_indices"]

# config.extra_classes: 'none', 'glyphs' (rl_repr.data.images.rendered_glyphs: printed letters),
# 'strokes' (rl_repr.data.images.stroke_characters: made-up handwritten characters) or both.
EXTRA_CLASSES = ("none", "glyphs", "strokes", "glyphs+strokes")


@dataclasses.dataclass(frozen=True)
class ClassSplit:
    """Training images of the training classes; held-out images of the held-out classes; and
    ``seen``: the training classes' images in the other evaluation splits (None if there are
    none), which shows how much of what the metric does on its own classes carries over."""

    train: ImageDataset
    heldout: ImageDataset
    seen: ImageDataset | None = None


def _select(dataset: ImageDataset, keep: np.ndarray) -> ImageDataset:
    return ImageDataset(images=dataset.images[keep], labels=dataset.labels[keep],
                        num_classes=dataset.num_classes, name=dataset.name)


def load_class_split(config: ml_collections.ConfigDict) -> ClassSplit:
    """Loads ``config.dataset`` and splits it by class (never downloads).

    Held-out classes: ``config.eval_classes``, or every id with ``id % eval_every_nth_class
    == 0``. Training set: ``config.train_split`` minus the held-out classes and minus classes
    with fewer than ``min_images_per_class`` images. Held-out set: the held-out classes'
    images of every split in ``config.eval_splits``. No image of a held-out class reaches
    the training set, labelled or not.
    """
    from rl_repr.data.images.tfds import load_image_dataset  # noqa: PLC0415 (TF only for tfds sets)

    splits = {}
    for split in {config.train_split, *config.eval_splits}:
        extra = {} if config.dataset == "digits" else {"image_size": config.image_size or None}
        splits[split] = load_image_dataset(config.dataset, split, config.data_dir or None, **extra)
    num_classes = splits[config.train_split].num_classes
    heldout = np.array(config.eval_classes or range(0, num_classes, config.eval_every_nth_class))
    train = splits[config.train_split]
    ids, counts = np.unique(train.labels[train.labels >= 0], return_counts=True)
    trainable = np.setdiff1d(ids[counts >= config.min_images_per_class], heldout)

    def gather(names, classes):
        parts = [_select(splits[s], np.isin(splits[s].labels, classes)) for s in names]
        return ImageDataset(images=np.concatenate([d.images for d in parts]),
                            labels=np.concatenate([d.labels for d in parts]), num_classes=num_classes,
                            name=train.name) if parts else None

    return ClassSplit(train=_select(train, np.isin(train.labels, trainable)),
                      heldout=gather(config.eval_splits, heldout),
                      seen=gather([s for s in config.eval_splits if s != config.train_split], trainable))


def training_set(config: ml_collections.ConfigDict, train: ImageDataset) -> ImageDataset:
    """The images the PK batches draw from: ``train`` (the training classes' images), enlarged
    with more classes as configured.

    * ``config.class_augmentation`` ('none' | 'rotations' | 'rotations_flips'): each training
      class turned by 90/180/270 degrees (and mirrored) becomes a class of its own
      (``rl_repr.data.images.class_augmentation``; Santoro et al. 2016, Vinyals et al. 2016);
      ``config.class_augmentation_drop`` lists new class ids to leave out (near-symmetric
      duplicates such as 0 or 1 turned by 180 degrees: id ``y + t * num_classes``).
    * ``config.extra_classes`` ('none' | 'glyphs' | 'strokes' | 'glyphs+strokes'), 8x8x1 images
      (the digits' format) with ids after every other class:
      'glyphs': ``config.glyph_images_per_class`` rendered images of each of
      ``config.glyph_characters`` (``rl_repr.data.images.rendered_glyphs``), one class per letter;
      'strokes': ``config.stroke_classes`` made-up handwritten characters,
      ``config.stroke_images_per_class`` images each, control points moved by
      ``config.stroke_point_jitter`` and bent by ``config.stroke_warp``
      (``rl_repr.data.images.stroke_characters``).

    Only training images are transformed and only letters and random pen trajectories are
    drawn, so nothing of the held-out classes enters training. Returns ``[N', H, W, C]`` uint8
    images with int32 labels.
    """
    enlarged = augment_classes(train, config.class_augmentation, drop_classes=tuple(config.class_augmentation_drop))
    sources = [] if config.extra_classes == "none" else config.extra_classes.split("+")
    if sources and enlarged.image_shape != (8, 8, 1):
        raise ValueError(f"config.extra_classes={config.extra_classes!r} draws 8x8 grey images but "
                         f"{train.name!r} has {enlarged.image_shape}; use 'none' for this dataset.")
    for source in sources:
        if source == "glyphs":
            from rl_repr.data.images.rendered_glyphs import render_glyphs  # noqa: PLC0415 (PIL only when used)

            extra = render_glyphs(config.glyph_characters, config.glyph_images_per_class, seed=config.seed,
                                  label_offset=enlarged.num_classes)
        else:
            from rl_repr.data.images.stroke_characters import render_stroke_characters  # noqa: PLC0415

            extra = render_stroke_characters(config.stroke_classes, config.stroke_images_per_class,
                                             seed=config.seed, label_offset=enlarged.num_classes,
                                             point_jitter=config.stroke_point_jitter,
                                             warp=config.stroke_warp)
        enlarged = ImageDataset(images=np.concatenate([enlarged.images, extra.images]),
                                labels=np.concatenate([enlarged.labels, extra.labels]),
                                num_classes=extra.num_classes, name=f"{enlarged.name}+{source}")
    return enlarged


def pk_batch_indices(labels: np.ndarray, classes_per_batch: int, examples_per_class: int, *,
                     seed: int, step: int) -> np.ndarray:
    """Rows of step ``step``'s PK batch (Hermans et al. 2017): ``[P * K]``, class-major.

    P distinct classes drawn uniformly, then K distinct images of each (with replacement
    only for a class that has fewer than K). A pure function of ``(seed, step)``, so a
    resumed run draws the batches an uninterrupted run would have drawn.
    """
    if np.ndim(labels) != 1:
        raise ValueError(f"pk_batch_indices: labels has shape {np.shape(labels)}; pass one label per image, [N].")
    classes = np.unique(labels)
    if len(classes) < classes_per_batch:
        raise ValueError(f"config.classes_per_batch={classes_per_batch} exceeds the {len(classes)} "
                         "training classes; lower it or train on more classes.")
    rng = np.random.default_rng((seed, step))
    rows = []
    for cls in rng.choice(classes, classes_per_batch, replace=False):
        members = np.flatnonzero(labels == cls)
        rows.append(rng.choice(members, examples_per_class, replace=len(members) < examples_per_class))
    return np.concatenate(rows)
