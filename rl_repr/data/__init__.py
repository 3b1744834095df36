"""Image data for rl_repr: datasets, on-device augmentation, batching.

Importing this package is cheap: the public names below are resolved on first use
(PEP 562 module ``__getattr__``), so ``import rl_repr.data`` pulls in neither
TensorFlow nor scikit-learn, and only ``rl_repr.data.tfds_images`` ever imports
TensorFlow (inside its functions). Submodules can be imported directly too:

    from rl_repr.data import augment, batching, digits, tfds_images
    from rl_repr.data import load_image_dataset, two_views, AugmentConfig

Text corpora for word2vec live in ``rl_repr.data.text``.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> submodule that defines it
_LAZY_EXPORTS = {
    "ImageDataset": "digits",
    "load_digits": "digits",
    "load_tfds_images": "tfds_images",
    "iterate_tfds_batches": "tfds_images",
    "load_image_dataset": "tfds_images",
    "AugmentConfig": "augment",
    "augment_image": "augment",
    "augment_batch": "augment",
    "two_views": "augment",
    "digits_augment_config": "augment",
    "simclr_augment_config": "augment",
    "global_batch_from_process_local": "batching",
    "sample_batch_indices": "batching",
    "epoch_permutation_batches": "batching",
}

__all__ = sorted(_LAZY_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _LAZY_EXPORTS:
        module = importlib.import_module(f"{__name__}.{_LAZY_EXPORTS[name]}")
        value = getattr(module, name)
        globals()[name] = value  # later look-ups skip this hook
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY_EXPORTS))
