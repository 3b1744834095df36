"""Weighted k-nearest-neighbour accuracy on frozen features (the kNN monitor of InstDisc/MoCo)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def knn_accuracy(train_features: np.ndarray, train_labels: np.ndarray, test_features: np.ndarray,
                 test_labels: np.ndarray, *, k: int = 20, temperature: float = 0.07,
                 num_classes: int | None = None, batch_size: int = 1024) -> float:
    """Weighted k-nearest-neighbour accuracy with cosine similarity (Wu et al. 2018).

    Each test point takes its ``k`` most cosine-similar training points; neighbour ``j``
    votes for its label with weight ``exp(s_j / temperature)``; the class with the largest
    total weight is the prediction. This is the kNN monitor of InstDisc/MoCo/solo-learn.

    Shapes: train_features [N, d], train_labels [N], test_features [M, d], test_labels [M].
    Returns the top-1 accuracy in [0, 1].
    """
    if k < 1 or k > len(train_features):
        raise ValueError(f"knn k={k} must be between 1 and the number of training points "
                         f"({len(train_features)}).")
    num_classes = int(num_classes or max(train_labels.max(), test_labels.max()) + 1)
    train = _l2_normalize(jnp.asarray(train_features, jnp.float32))
    train_onehot = jax.nn.one_hot(jnp.asarray(train_labels), num_classes)

    @jax.jit
    def predict(queries):
        sims = _l2_normalize(queries) @ train.T                 # [m, N]
        top_sims, top_idx = jax.lax.top_k(sims, k)              # [m, k]
        weights = jnp.exp(top_sims / temperature)[..., None]    # [m, k, 1]
        votes = jnp.sum(weights * train_onehot[top_idx], axis=1)
        return jnp.argmax(votes, axis=-1)

    preds = np.concatenate([np.asarray(predict(jnp.asarray(test_features[i:i + batch_size], jnp.float32)))
                            for i in range(0, len(test_features), batch_size)])
    return float(np.mean(preds == np.asarray(test_labels)))


def _l2_normalize(x: jax.Array) -> jax.Array:
    return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, axis=-1, keepdims=True), 1e-12))
