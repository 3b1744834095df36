"""The bundled offline image dataset: scikit-learn's handwritten digits.

scikit-learn ships the 1797 8x8 grey-level digits of the UCI "Optical Recognition
of Handwritten Digits" set (Alpaydin & Kaynak 1998) inside the package, so this
loader never touches the network. It is the default dataset of the SimCLR demo.

Split (fixed, so every run and every process sees the same partition):
    test  = images whose index i satisfies i % 5 == 0   (360 images)
    train = all other images                            (1437 images)

Pixels: scikit-learn stores counts in 0..16; we map them to uint8 0..255 by
``round(x * 255 / 16)`` so that every image dataset in ``rl_repr.data`` shares the
[N, H, W, C] uint8 layout that ``rl_repr.data.images.augment`` divides by 255.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from rl_repr.core.extras import require

DIGITS_NUM_CLASSES = 10
_DIGITS_TEST_EVERY = 5  # test = every 5th image: a 20% split, stratified by acquisition order.
_DIGITS_MAX_VALUE = 16.0  # scikit-learn's digits count 4x4-block pixels: 0..16.


@dataclasses.dataclass(frozen=True)
class ImageDataset:
    """An in-memory labelled image set.

    Attributes:
        images: [N, H, W, C] uint8 in 0..255 (C = 1 for grey-level, 3 for RGB).
        labels: [N] int32 class indices in [0, num_classes) (-1 marks an unlabelled
            example, e.g. STL-10's "unlabelled" split).
        num_classes: number of classes.
        name: dataset name, e.g. "digits" or "cifar10".
    """

    images: np.ndarray
    labels: np.ndarray
    num_classes: int
    name: str

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.images.dtype != np.uint8:
            raise ValueError(
                f"ImageDataset {self.name!r} got images of shape {self.images.shape} and dtype "
                f"{self.images.dtype}; pass a [N, H, W, C] uint8 array (add a channel axis to "
                "grey-level images and convert floats with np.round(x * 255).astype(np.uint8))."
            )
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError(
                f"ImageDataset {self.name!r} got labels of shape {self.labels.shape} for "
                f"{self.images.shape[0]} images; pass one integer label per image."
            )
        if self.labels.dtype != np.int32:
            raise ValueError(
                f"ImageDataset {self.name!r} got labels of dtype {self.labels.dtype}; "
                "convert them with labels.astype(np.int32)."
            )

    @property
    def num_examples(self) -> int:
        """N, the number of images."""
        return int(self.images.shape[0])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(H, W, C) of one image."""
        height, width, channels = self.images.shape[1:]
        return int(height), int(width), int(channels)


def counts_to_images(counts: np.ndarray) -> np.ndarray:
    """optdigits' ink counts ``[N, H, W]`` (0..16) -> read-only ``[N, H, W, 1]`` uint8 images,
    ``round(count * 255 / 16)``: how the digits, and the classes drawn like them, are stored."""
    images = np.round(np.asarray(counts) * (255.0 / _DIGITS_MAX_VALUE)).astype(np.uint8)[..., None]
    images.setflags(write=False)
    return images


@functools.lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """All 1797 digits as read-only ([1797, 8, 8, 1] uint8, [1797] int32)."""
    # Imported here so that `import rl_repr.data` stays cheap.
    sklearn_load_digits = require("sklearn.datasets").load_digits

    bunch = sklearn_load_digits()
    # The cache hands the same arrays to every caller; freezing them keeps one
    # caller's in-place edit from leaking into another's dataset.
    images = counts_to_images(bunch.images)
    labels = bunch.target.astype(np.int32)
    labels.setflags(write=False)
    return images, labels


def load_digits(split: str) -> ImageDataset:
    """scikit-learn's 8x8 digits as an ``ImageDataset`` (offline, bundled).

    Args:
        split: "train" (1437 images: index % 5 != 0) or "test" (360 images:
            index % 5 == 0).

    Returns:
        ImageDataset with images [N, 8, 8, 1] uint8 = round(count * 255 / 16),
        labels [N] int32 in 0..9, num_classes 10, name "digits". The arrays are
        read-only views shared between calls; copy them before editing in place.
    """
    images, labels = _digits_arrays()
    is_test = np.arange(images.shape[0]) % _DIGITS_TEST_EVERY == 0
    if split == "test":
        keep = is_test
    elif split == "train":
        keep = ~is_test
    else:
        raise ValueError(f"Unknown digits split {split!r}; use 'train' or 'test'.")
    split_images, split_labels = images[keep], labels[keep]
    split_images.setflags(write=False)
    split_labels.setflags(write=False)
    return ImageDataset(
        images=split_images, labels=split_labels, num_classes=DIGITS_NUM_CLASSES, name="digits"
    )
