"""Generated labelled images for tests and smoke runs of any recipe, offline.

Each class has a fixed random smooth template; an example is its class template,
shifted by a few pixels, with per-pixel noise. A linear probe can separate the classes,
so an end-to-end run produces meaningful (if easy) numbers at any image size.
"""
from __future__ import annotations

import numpy as np

from rl_repr.data.images.digits import ImageDataset


def make_synthetic_images(num_examples: int, image_shape: tuple[int, int, int], *,
                          num_classes: int = 10, seed: int = 0, name: str = "synthetic") -> ImageDataset:
    """``num_examples`` uint8 images of ``image_shape`` (H, W, C) in ``num_classes`` classes."""
    height, width, channels = (int(s) for s in image_shape)
    if num_examples < 1 or min(height, width, channels) < 1 or num_classes < 1:
        raise ValueError(f"make_synthetic_images needs positive sizes, got num_examples={num_examples}, "
                         f"image_shape={image_shape}, num_classes={num_classes}.")
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 1, (num_classes, max(2, height // 4), max(2, width // 4), channels))
    templates = np.repeat(np.repeat(coarse, -(-height // coarse.shape[1]), 1), -(-width // coarse.shape[2]), 2)
    templates = templates[:, :height, :width]
    labels = (np.arange(num_examples) % num_classes).astype(np.int32)
    shifts = rng.integers(-2, 3, size=(num_examples, 2))
    images = np.stack([np.roll(templates[c], tuple(s), axis=(0, 1)) for c, s in zip(labels, shifts)])
    images = np.clip(images + rng.normal(0, 0.1, images.shape), 0, 1)
    return ImageDataset(images=np.round(images * 255).astype(np.uint8), labels=labels,
                        num_classes=num_classes, name=name)
