"""Class augmentation: rotated and mirrored images of a class become new classes.

Santoro et al. 2016 ("One-shot Learning with Memory-Augmented Neural Networks") and Vinyals
et al. 2016 ("Matching Networks for One Shot Learning") enlarge Omniglot's training alphabet
by declaring every character rotated by 90, 180 and 270 degrees a class of its own. A
metric trained on more classes has to learn more ways in which classes differ, which is what
transfers to classes it never saw. Here the same is done for an image set whose classes are
few (the digits 0-4): transform ``t = 4 * f + k`` maps an image ``x`` to
``rot90(flip(x) if f else x, k)`` and its class ``y`` to ``y + t * num_classes``, so the
original classes keep their ids (``t = 0``) and every new class gets an id of its own.
Only the training classes' images are transformed; the held-out classes are never touched.
"""
from __future__ import annotations

import numpy as np

from rl_repr.data.images.digits import ImageDataset

__all__ = ["CLASS_AUGMENTATIONS", "num_transforms", "transform_images", "augment_classes"]

# 'none': the classes as they come; 'rotations': x 4 (0, 90, 180, 270 degrees);
# 'rotations_flips': x 8 (the same on the left-right mirror image too).
CLASS_AUGMENTATIONS = ("none", "rotations", "rotations_flips")


def num_transforms(mode: str) -> int:
    """How many classes each original class becomes under ``mode`` (1, 4 or 8)."""
    if mode not in CLASS_AUGMENTATIONS:
        raise ValueError(f"class augmentation {mode!r} is unknown; use one of {CLASS_AUGMENTATIONS}.")
    return {"none": 1, "rotations": 4, "rotations_flips": 8}[mode]


def transform_images(images: np.ndarray, transform: int) -> np.ndarray:
    """Transform ``t = 4 * f + k`` of ``images [N, H, W, C]``: ``rot90(flip_lr(x) if f else x, k)``
    (counter-clockwise, as ``np.rot90``), same shape for square images."""
    if images.ndim != 4 or images.shape[1] != images.shape[2]:
        raise ValueError(f"transform_images: images have shape {images.shape}; pass square images [N, H, W, C].")
    if not 0 <= transform < 8:
        raise ValueError(f"transform_images: transform={transform}; pass 0..7 (4 * flip + quarter turns).")
    flipped = images[:, :, ::-1] if transform >= 4 else images
    return np.ascontiguousarray(np.rot90(flipped, k=transform % 4, axes=(1, 2)))


def augment_classes(dataset: ImageDataset, mode: str, *, drop_classes: tuple[int, ...] = ()) -> ImageDataset:
    """Every image under every transform of ``mode``, each (class, transform) a class.

    ``[N, H, W, C]`` -> ``[T * N - dropped, H, W, C]`` with ``T = num_transforms(mode)``; image
    ``x`` of class ``y`` under transform ``t`` gets label ``y + t * dataset.num_classes``
    (``num_classes`` becomes ``T * dataset.num_classes``). ``drop_classes`` lists new label
    ids to leave out, e.g. the near-duplicates 0 and 1 turned by 180 degrees (which would
    otherwise be a second class with the same images as the first). ``mode='none'`` returns
    the dataset unchanged.
    """
    count = num_transforms(mode)
    if count == 1:
        return dataset
    images = np.concatenate([transform_images(dataset.images, t) for t in range(count)])
    labels = np.concatenate([dataset.labels + t * dataset.num_classes for t in range(count)]).astype(np.int32)
    keep = ~np.isin(labels, np.asarray(drop_classes, dtype=np.int32))
    return ImageDataset(images=images[keep], labels=labels[keep], num_classes=count * dataset.num_classes,
                        name=f"{dataset.name}+{mode}")
