"""Features of a frozen encoder: run its eval-mode apply over a dataset in fixed-size batches."""
from __future__ import annotations

from typing import Callable

import jax
import numpy as np


def embed(apply_fn: Callable[[jax.Array], jax.Array], images: np.ndarray, *,
          batch_size: int = 512) -> np.ndarray:
    """Runs ``apply_fn`` (a jitted, eval-mode encoder) over ``images`` in batches.

    The last batch is padded to ``batch_size`` so the function compiles once.
    Returns a float32 numpy array ``[N, ...]``.
    """
    outputs = []
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size]
        pad = batch_size - len(chunk)
        if pad:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], pad, axis=0)])
        out = np.asarray(apply_fn(chunk), dtype=np.float32)
        outputs.append(out[:batch_size - pad])
    return np.concatenate(outputs)
